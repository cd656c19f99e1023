//! Finding the jobserver that the `cargo nix` running this build offers its builders, to hand
//! it to rustc and build scripts as cargo hands them its own (`CARGO_MAKEFLAGS`): rustc's
//! codegen threads then share one budget instead of each rustc making its own (of 32 tokens).
//!
//! Nothing of it is in the derivation, whose every byte is part of the unit's identity: a
//! per-run path there would change every unit's hash. Instead the builder looks at its parent.
//! With a local store and no sandbox, Nix forks the builder from the `cargo nix` process
//! itself, which keeps open a memfd named [`MARKER`] whose content is the path of its jobserver
//! pipe as `/proc/<its pid>/fd/<n>` (see `cargo_backend::jobserver`). Anywhere else (a daemon's
//! build, a sandbox with its own PID namespace, another user's builder that may not read the
//! parent's `/proc` entries) nothing is found, and rustc makes its own jobserver as before.
//! rustc's output does not depend on how many threads it gets.

use std::path::Path;

/// The name of the memfd that offers the jobserver (`/memfd:<MARKER> (deleted)` in `/proc`).
pub const MARKER: &str = "cargo-nix-jobserver";

/// The `CARGO_MAKEFLAGS` value for the jobserver the process `pid` offers, if it offers one
/// that this process can open.
pub fn offered_by(pid: u32) -> Option<String> {
    let text = crate::offer::read(pid, MARKER)?;
    let fifo = parse_offer(&text, pid)?;
    // Opened as rustc will open it (both ways): if this fails, rustc would warn.
    std::fs::OpenOptions::new().read(true).write(true).open(Path::new(&fifo)).ok()?;
    Some(makeflags(&fifo))
}

/// The jobserver the parent of this process offers (see [`offered_by`]).
pub fn offered_by_parent() -> Option<String> {
    offered_by(std::os::unix::process::parent_id())
}

/// The pipe path in an offer of process `pid`: exactly `/proc/<pid>/fd/<n>` (a trailing
/// newline allowed), so an offer can only name a descriptor of the process that makes it.
pub fn parse_offer(text: &str, pid: u32) -> Option<String> {
    let path = text.strip_suffix('\n').unwrap_or(text);
    let fd = path.strip_prefix(&format!("/proc/{pid}/fd/"))?;
    (!fd.is_empty() && fd.len() <= 10 && fd.bytes().all(|b| b.is_ascii_digit())).then(|| path.to_owned())
}

/// `CARGO_MAKEFLAGS` naming `fifo` (GNU make's `fifo:` form, which rustc's jobserver reads).
pub fn makeflags(fifo: &str) -> String {
    format!("-j --jobserver-fds=fifo:{fifo} --jobserver-auth=fifo:{fifo}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_offer_names_only_a_descriptor_of_its_own_process() {
        assert_eq!(parse_offer("/proc/42/fd/7\n", 42).as_deref(), Some("/proc/42/fd/7"));
        assert_eq!(parse_offer("/proc/42/fd/12", 42).as_deref(), Some("/proc/42/fd/12"));
        for bad in ["/proc/43/fd/7", "/proc/42/fd/", "/proc/42/fd/7/../../1/fd/3", "/tmp/fifo", "", "/proc/42/fd/7 x"] {
            assert_eq!(parse_offer(bad, 42), None, "{bad}");
        }
        assert_eq!(
            makeflags("/proc/42/fd/7"),
            "-j --jobserver-fds=fifo:/proc/42/fd/7 --jobserver-auth=fifo:/proc/42/fd/7"
        );
    }

    #[test]
    fn a_process_without_an_offer_offers_nothing() {
        // This test process makes no memfd of that name; pid 0 has no /proc entry.
        assert_eq!(offered_by(std::process::id()), None);
        assert_eq!(offered_by(0), None);
    }
}
