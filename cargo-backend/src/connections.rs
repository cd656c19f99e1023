//! How many connections a store is opened with: one per scheduler worker.
//!
//! Nix's daemon stores (`daemon`, `unix://…`) keep a pool of at most `max-connections`
//! connections, 1 unless the URI says otherwise, and a realise holds its connection for the
//! whole build. With one connection the scheduler's `-j N` workers would queue on it and build
//! one unit at a time; with one per worker they build N at once.
//!
//! Not for `ssh-ng://` and `ssh://`: there Nix 2.26 answers `max-connections > 1` by starting
//! an SSH master connection (`ssh -M`), which hung in the loopback tests (tests/remote.rs),
//! even when the host key is wrong. Those are opened once more per worker instead
//! ([`extra_stores`]), each store with Nix's single connection (its own `ssh` session and
//! remote `nix-daemon --stdio`), so N workers build N units at once; planning and copying
//! back keep the first store's one session, free while the workers build
//! ([`crate::copy_back`]). Local stores have no such setting (Nix warns
//! about unknown ones), so nothing is added for them either.

/// The store parameters to open `uri` with for `jobs` workers: `max-connections = jobs` for a
/// store with a connection pool whose URI does not set it itself, else nothing.
pub fn store_params(uri: &str, jobs: usize) -> Vec<(&'static str, String)> {
    let (base, query) = uri.split_once('?').unwrap_or((uri, ""));
    let pooled = base == "daemon" || base.starts_with("unix://");
    let set_already = query.split('&').any(|kv| kv.split('=').next() == Some("max-connections"));
    if pooled && !set_already && jobs > 1 { vec![("max-connections", jobs.to_string())] } else { Vec::new() }
}

/// How many more times to open `uri` for `jobs` workers: one store per worker for SSH stores
/// with more than one worker (see the module docs), none for the others.
pub fn extra_stores(uri: &str, jobs: usize) -> usize {
    let scheme = uri.split("://").next().unwrap_or("");
    if uri.contains("://") && matches!(scheme, "ssh-ng" | "ssh") && jobs > 1 { jobs } else { 0 }
}

#[cfg(test)]
mod tests {
    use super::{extra_stores, store_params};

    #[test]
    fn ssh_stores_get_a_store_per_worker() {
        assert_eq!(extra_stores("ssh-ng://user@host?store=/x", 4), 4);
        assert_eq!(extra_stores("ssh://host", 2), 2);
        assert_eq!(extra_stores("ssh-ng://host", 1), 0);
        assert_eq!(extra_stores("ssh-ng://host", 0), 0);
        for other in ["auto", "daemon", "local", "unix:///s", "file:///cache", "/some/dir"] {
            assert_eq!(extra_stores(other, 4), 0, "{other}");
        }
    }

    #[test]
    fn one_connection_per_worker_for_pooled_stores_only() {
        let four = vec![("max-connections", "4".to_owned())];
        assert_eq!(store_params("daemon", 4), four);
        assert_eq!(store_params("unix:///run/nix/socket", 4), four);
        assert_eq!(store_params("unix:///run/nix/socket?trusted=1", 4), four);
        for other in
            ["auto", "local", "local?root=/r", "/some/dir", "file:///cache", "dummy://", "ssh-ng://host", "ssh://h"]
        {
            assert!(store_params(other, 4).is_empty(), "{other}");
        }
        assert!(store_params("daemon", 1).is_empty(), "one worker needs no more than the default");
        assert!(store_params("daemon?max-connections=2", 4).is_empty(), "the URI's own choice is kept");
        assert!(store_params("daemon?foo=1&max-connections=8", 4).is_empty());
        assert_eq!(store_params("daemon?my-max-connections=2", 4), four);
    }
}
