//! How many connections a store is opened with: one per scheduler worker.
//!
//! Nix's daemon stores (`daemon`, `unix://…`) keep a pool of at most `max-connections`
//! connections, 1 unless the URI says otherwise, and a realise holds its connection for the
//! whole build. With one connection the scheduler's `-j N` workers would queue on it and build
//! one unit at a time; with one per worker they build N at once.
//!
//! Not for `ssh-ng://` and `ssh://`: there Nix 2.26 answers `max-connections > 1` by starting
//! an SSH master connection (`ssh -M`), which hung in the loopback tests (tests/remote.rs),
//! even when the host key is wrong: `SSHMaster::startMaster` holds its state lock while
//! `isMasterRunning` takes it again (seen in gdb). Those are opened once more per worker instead
//! ([`extra_stores`]), each store with Nix's single connection (its own `ssh` session and
//! remote `nix-daemon --stdio`), so N workers build N units at once; planning and copying
//! back keep the first store's one session, free while the workers build
//! ([`crate::copy_back`]). Local stores have no such setting (Nix warns
//! about unknown ones), so nothing is added for them either.
//!
//! Those SSH sessions are shared ([`ssh_multiplexing`]): Nix up to 2.33 drops an `ssh-ng`
//! connection after every path it copies from it (NixOS/nix#6950, fixed by NixOS/nix#14998),
//! so copying the outputs back opened a new SSH session per unit, a handshake each.

use std::path::Path;

/// The store parameters to open `uri` with for `jobs` workers: `max-connections = jobs` for a
/// store with a connection pool whose URI does not set it itself, else nothing.
pub fn store_params(uri: &str, jobs: usize) -> Vec<(&'static str, String)> {
    let base = uri.split_once('?').map_or(uri, |(b, _)| b);
    let pooled = base == "daemon" || base.starts_with("unix://");
    if pooled && !sets_max_connections(uri) && jobs > 1 {
        vec![("max-connections", jobs.to_string())]
    } else {
        Vec::new()
    }
}

/// Whether `uri`'s query sets `max-connections`.
fn sets_max_connections(uri: &str) -> bool {
    let query = uri.split_once('?').map_or("", |(_, q)| q);
    query.split('&').any(|kv| kv.split('=').next() == Some("max-connections"))
}

/// Whether `uri` names an SSH store (`ssh-ng://…` or `ssh://…`).
fn is_ssh(uri: &str) -> bool {
    uri.split_once("://").is_some_and(|(scheme, _)| matches!(scheme, "ssh-ng" | "ssh"))
}

/// How many more times to open `uri` for `jobs` workers: one store per worker for SSH stores
/// with more than one worker (see the module docs), none for the others.
pub fn extra_stores(uri: &str, jobs: usize) -> usize {
    if is_ssh(uri) && jobs > 1 { jobs } else { 0 }
}

/// The options SSH needs for multiplexing one session: `ControlMaster=auto` with its socket in
/// `control_dir`, kept for 2 s after the last connection closes.
fn control_opts(control_dir: &Path) -> String {
    format!("-oControlMaster=auto -oControlPath={}/ssh-%C -oControlPersist=2", control_dir.display())
}

/// The `NIX_SSHOPTS` to run with when the store is `uri` and `NIX_SSHOPTS` is `current`, for
/// every SSH session Nix opens to that host to share one (an SSH master whose socket is in
/// `control_dir`, a directory only this user can write): `current` plus the multiplexing
/// options, or `None` to leave things as they are:
/// - not an `ssh-ng://` or `ssh://` store;
/// - the URI sets `max-connections`, with which Nix starts a master of its own;
/// - `current` already chooses (`Control…` options, `-S`, `-M`): the user's choice is kept;
/// - `control_dir` does not fit: Nix splits `NIX_SSHOPTS` at whitespace, and a socket path
///   (`ssh-` and a 40-character hash, plus the 17 characters ssh adds while it makes the
///   socket) must fit the 108 bytes of a Unix socket address.
pub fn ssh_multiplexing(uri: &str, current: Option<&str>, control_dir: &Path) -> Option<String> {
    if !is_ssh(uri) || sets_max_connections(uri) {
        return None;
    }
    let current = current.unwrap_or("").trim();
    let chooses = current.split_whitespace().any(|w| {
        let lower = w.to_ascii_lowercase();
        lower.contains("control") || w.starts_with("-S") || w == "-M"
    });
    let dir = control_dir.to_str()?;
    if chooses || dir.is_empty() || dir.contains(char::is_whitespace) || dir.len() + "/ssh-".len() + 40 + 17 >= 108 {
        return None;
    }
    let opts = control_opts(control_dir);
    Some(if current.is_empty() { opts } else { format!("{current} {opts}") })
}

#[cfg(test)]
mod tests {
    use super::{extra_stores, ssh_multiplexing, store_params};
    use std::path::Path;

    #[test]
    fn ssh_stores_share_one_session() {
        let dir = Path::new("/run/user/1000/cargo-nix-locks");
        let opts = "-oControlMaster=auto -oControlPath=/run/user/1000/cargo-nix-locks/ssh-%C -oControlPersist=2";
        assert_eq!(ssh_multiplexing("ssh-ng://me@host?ssh-key=/k", None, dir).as_deref(), Some(opts));
        assert_eq!(ssh_multiplexing("ssh://host", Some("  "), dir).as_deref(), Some(opts));
        assert_eq!(
            ssh_multiplexing("ssh-ng://host", Some("-p 2222 -oBatchMode=yes"), dir),
            Some(format!("-p 2222 -oBatchMode=yes {opts}"))
        );
        for other in ["auto", "daemon", "local?root=/r", "/nix/store", "file:///c", "s3://b", "unix:///s"] {
            assert_eq!(ssh_multiplexing(other, None, dir), None, "{other}");
        }
    }

    #[test]
    fn ssh_multiplexing_keeps_other_choices() {
        let dir = Path::new("/tmp/cargo-nix-locks-0");
        assert_eq!(ssh_multiplexing("ssh-ng://h?max-connections=4", None, dir), None, "Nix's own master");
        assert_eq!(ssh_multiplexing("ssh-ng://h?a=1&max-connections=1", None, dir), None);
        for user in ["-oControlMaster=no", "-o ControlPath=/x/%C", "-S /x/s", "-M", "-o controlpersist=yes"] {
            assert_eq!(ssh_multiplexing("ssh-ng://h", Some(user), dir), None, "{user}");
        }
        assert_eq!(ssh_multiplexing("ssh-ng://h", None, Path::new("/tmp/a b")), None, "split at whitespace");
        let long = format!("/tmp/{}", "d".repeat(50));
        assert_eq!(ssh_multiplexing("ssh-ng://h", None, Path::new(&long)), None, "no room for the socket");
        assert!(ssh_multiplexing("ssh-ng://h", None, Path::new(&long[..40])).is_some());
    }

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
