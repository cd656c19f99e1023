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
//! parent's `/proc` entries) nothing is found.
//!
//! Then the builder makes a jobserver of its own for the build ([`own`]): a FIFO in the build
//! directory holding one token fewer than Nix's `NIX_BUILD_CORES`, the cores Nix gives each
//! build, so that rustc runs as many threads as that. Without it rustc would make its own of 32
//! tokens, and two units built at once on a 2-core remote machine would run dozens of LLVM
//! threads. rustc's output does not depend on how many threads it gets.

use std::fs::File;
use std::os::fd::AsRawFd;
use std::path::Path;
use std::sync::Mutex;

/// The name of the memfd that offers the jobserver (`/memfd:<MARKER> (deleted)` in `/proc`).
pub const MARKER: &str = "cargo-nix-jobserver";

/// The `CARGO_MAKEFLAGS` value for the jobserver the process `pid` offers, if it offers one
/// that this process can open: its pipe opened here as two descriptors that this process's
/// children inherit ([`inherit`]).
pub fn offered_by(pid: u32) -> Option<String> {
    opened(&crate::offer::read(pid, MARKER)?, pid)
}

/// The jobserver named by the offer `text` of process `pid`, opened ([`inherit`]).
fn opened(text: &str, pid: u32) -> Option<String> {
    inherit(Path::new(&parse_offer(text, pid)?)).ok()
}

/// The jobserver the parent of this process offers (see [`offered_by`]), opened once.
pub fn offered_by_parent() -> Option<String> {
    static OFFERED: std::sync::OnceLock<Option<String>> = std::sync::OnceLock::new();
    OFFERED.get_or_init(|| opened(parent_offer()?, std::os::unix::process::parent_id())).clone()
}

/// The text of the parent's offer, read once (a scan of the parent's descriptors).
fn parent_offer() -> Option<&'static str> {
    static TEXT: std::sync::OnceLock<Option<String>> = std::sync::OnceLock::new();
    TEXT.get_or_init(|| crate::offer::from_parent(MARKER)).as_deref()
}

/// Descriptors handed to children in `CARGO_MAKEFLAGS`, kept open until this process exits
/// (the builder runs one unit and exits).
static KEPT: Mutex<Vec<File>> = Mutex::new(Vec::new());

/// Opens the jobserver pipe at `path` as two descriptors (a read end and a write end, each
/// opened read-write so that neither open waits for the other) that the children of this
/// process inherit, keeps them open, and returns the `CARGO_MAKEFLAGS` naming them.
pub fn inherit(path: &Path) -> std::io::Result<String> {
    let open = || -> std::io::Result<File> {
        let file = std::fs::OpenOptions::new().read(true).write(true).open(path)?;
        let fd = file.as_raw_fd();
        // SAFETY: fcntl on a descriptor `file` owns and keeps open for the call; clearing
        // FD_CLOEXEC only lets the children this process spawns inherit it.
        let cleared = unsafe {
            let flags = libc::fcntl(fd, libc::F_GETFD);
            flags >= 0 && libc::fcntl(fd, libc::F_SETFD, flags & !libc::FD_CLOEXEC) == 0
        };
        if !cleared {
            return Err(std::io::Error::last_os_error());
        }
        Ok(file)
    };
    let (read, write) = (open()?, open()?);
    let flags = makeflags(read.as_raw_fd(), write.as_raw_fd());
    KEPT.lock().unwrap_or_else(|e| e.into_inner()).extend([read, write]);
    Ok(flags)
}

/// The pipe path in an offer of process `pid`, its first line: exactly `/proc/<pid>/fd/<n>`,
/// so an offer can only name a descriptor of the process that makes it.
pub fn parse_offer(text: &str, pid: u32) -> Option<String> {
    let path = text.lines().next()?;
    let fd = path.strip_prefix(&format!("/proc/{pid}/fd/"))?;
    (!fd.is_empty() && fd.len() <= 10 && fd.bytes().all(|b| b.is_ascii_digit())).then(|| path.to_owned())
}

/// The job count an offer names (its `jobs <n>` line): `cargo nix -j`, which build scripts
/// see as `NUM_JOBS`, as under cargo.
pub fn offered_jobs(text: &str) -> Option<usize> {
    text.lines().find_map(|l| l.strip_prefix("jobs ")?.parse().ok()).filter(|&n| n > 0)
}

/// What build scripts see as `NUM_JOBS`: the job count the parent's offer names, else the
/// cores Nix gives the build (`NIX_BUILD_CORES`, or this machine's when it says 0 or nothing).
pub fn num_jobs() -> usize {
    parent_offer()
        .and_then(offered_jobs)
        .unwrap_or_else(|| own_tokens(std::env::var("NIX_BUILD_CORES").ok().as_deref()) + 1)
}

/// How many tokens a build's own jobserver holds: one fewer than the cores Nix gives the build
/// (`NIX_BUILD_CORES`; the one left is the implicit token every process has), or one fewer than
/// this machine's cores when Nix says 0 ("all") or nothing.
pub fn own_tokens(nix_build_cores: Option<&str>) -> usize {
    let cores = nix_build_cores.and_then(|c| c.trim().parse::<usize>().ok()).filter(|&c| c > 0);
    let cores = cores.unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get()));
    cores - 1
}

/// A jobserver of this build's own: a FIFO `jobserver` in `dir` holding `tokens` tokens, kept
/// open (and so its tokens kept) for as long as the returned file lives. Returns it with the
/// `CARGO_MAKEFLAGS` naming it ([`inherit`]).
pub fn own(dir: &Path, tokens: usize) -> std::io::Result<(File, String)> {
    use std::io::Write;
    use std::os::unix::ffi::OsStrExt;
    let fifo = dir.join("jobserver");
    let c_path = std::ffi::CString::new(fifo.as_os_str().as_bytes())
        .map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidInput, e))?;
    // SAFETY: `c_path` is a NUL-terminated path alive for the call.
    if unsafe { libc::mkfifo(c_path.as_ptr(), 0o600) } != 0 {
        return Err(std::io::Error::last_os_error());
    }
    // Read and write: opening does not wait for another end, and the tokens stay in the pipe
    // while this end is open.
    let mut file = std::fs::OpenOptions::new().read(true).write(true).open(&fifo)?;
    file.write_all(&vec![b'+'; tokens])?;
    Ok((file, inherit(&fifo)?))
}

/// `CARGO_MAKEFLAGS` naming the inherited descriptors `read` and `write`, as cargo's (the
/// `jobserver` crate's `configure_make` for a pipe): GNU make 4.3 reads only this form.
pub fn makeflags(read: i32, write: i32) -> String {
    format!("-j --jobserver-fds={read},{write} --jobserver-auth={read},{write}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_offer_names_only_a_descriptor_of_its_own_process() {
        assert_eq!(parse_offer("/proc/42/fd/7\n", 42).as_deref(), Some("/proc/42/fd/7"));
        assert_eq!(parse_offer("/proc/42/fd/12", 42).as_deref(), Some("/proc/42/fd/12"));
        assert_eq!(parse_offer("/proc/42/fd/7\njobs 3\n", 42).as_deref(), Some("/proc/42/fd/7"));
        assert_eq!(offered_jobs("/proc/42/fd/7\njobs 3\n"), Some(3));
        for bad in ["/proc/42/fd/7\n", "/proc/42/fd/7\njobs 0\n", "/proc/42/fd/7\njobs x\n"] {
            assert_eq!(offered_jobs(bad), None, "{bad}");
        }
        for bad in ["/proc/43/fd/7", "/proc/42/fd/", "/proc/42/fd/7/../../1/fd/3", "/tmp/fifo", "", "/proc/42/fd/7 x"] {
            assert_eq!(parse_offer(bad, 42), None, "{bad}");
        }
        assert_eq!(makeflags(7, 8), "-j --jobserver-fds=7,8 --jobserver-auth=7,8");
    }

    /// The two descriptors `CARGO_MAKEFLAGS` names.
    fn descriptors(flags: &str) -> (i32, i32) {
        let auth = flags.rsplit("--jobserver-auth=").next().unwrap();
        let (r, w) = auth.split_once(',').unwrap_or_else(|| panic!("not the R,W form: {flags}"));
        (r.parse().unwrap(), w.parse().unwrap())
    }

    /// A fresh jobserver FIFO of `tokens` tokens in a directory of its own, named `name`.
    fn fresh(name: &str, tokens: usize) -> (std::path::PathBuf, File, String) {
        let dir = std::env::temp_dir().join(format!("cargo-nix-unit-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let (file, flags) = own(&dir, tokens).unwrap();
        (dir, file, flags)
    }

    #[test]
    fn a_build_without_an_offer_gets_a_jobserver_of_nix_build_cores() {
        assert_eq!(own_tokens(Some("4")), 3);
        assert_eq!(own_tokens(Some("1")), 0);
        let all = std::thread::available_parallelism().unwrap().get() - 1;
        assert_eq!(own_tokens(Some("0")), all, "0 means all cores to Nix");
        assert_eq!(own_tokens(None), all);
        assert_eq!(own_tokens(Some("x")), all);

        let (dir, file, flags) = fresh("js", 3);
        let (r, w) = descriptors(&flags);
        assert_ne!(r, w);
        // Both are open here, and a child inherits them (no close-on-exec).
        for fd in [r, w] {
            // SAFETY: F_GETFD only reads the descriptor's flags.
            let fd_flags = unsafe { libc::fcntl(fd, libc::F_GETFD) };
            assert!(fd_flags >= 0 && fd_flags & libc::FD_CLOEXEC == 0, "descriptor {fd}: {fd_flags}");
        }
        // A client (as rustc does) takes the three tokens through the read end, and no fourth.
        use std::io::Read;
        use std::os::unix::fs::OpenOptionsExt;
        let mut client = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .custom_flags(libc::O_NONBLOCK)
            .open(format!("/proc/self/fd/{r}"))
            .unwrap();
        let mut buf = [0u8; 8];
        assert_eq!(client.read(&mut buf).unwrap(), 3);
        assert_eq!(&buf[..3], b"+++");
        assert_eq!(client.read(&mut buf).map_err(|e| e.kind()), Err(std::io::ErrorKind::WouldBlock));
        drop((client, file));
        std::fs::remove_dir_all(&dir).unwrap();
    }

    /// GNU make (4.3 on Debian 12, which refuses the `fifo:` form) runs jobs with the flags as
    /// a build script passes them (`MAKEFLAGS` = `CARGO_MAKEFLAGS`), as under cargo: two
    /// recipes at once with one token (and make's own implicit one), and no warning.
    #[test]
    fn gnu_make_takes_the_jobserver_from_the_flags() {
        let (dir, file, flags) = fresh("make", 1);
        // Each recipe waits (up to 10 s) for the other to have started: only with two jobs at
        // once do both finish.
        let wait = |me: &str, other: &str| {
            format!(
                "\ttouch {me}; i=0; while [ ! -e {other} ] && [ $$i -lt 100 ]; do sleep 0.1; i=$$((i+1)); done; test -e {other}\n"
            )
        };
        let makefile =
            format!("all: a b\na:\n{}b:\n{}", wait("a.started", "b.started"), wait("b.started", "a.started"));
        std::fs::write(dir.join("Makefile"), makefile).unwrap();
        let out = std::process::Command::new("make")
            .current_dir(&dir)
            .env("MAKEFLAGS", &flags)
            .output()
            .expect("GNU make on PATH (scripts/setup-nix installs it)");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(out.status.success(), "make with MAKEFLAGS={flags}: {}\n{stderr}", out.status);
        assert!(!stderr.contains("jobserver"), "make warned about the jobserver: {stderr}");
        drop(file);
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn a_process_without_an_offer_offers_nothing() {
        // This test process makes no memfd of that name; pid 0 has no /proc entry.
        assert_eq!(offered_by(std::process::id()), None);
        assert_eq!(offered_by(0), None);
    }
}
