//! The jobserver this process offers the builders Nix forks from it, as cargo gives rustc and
//! build scripts its own: a pipe holding `jobs - 1` tokens (cargo's count: the first job runs
//! on an implicit token), which rustc's codegen threads take and give back. Without it every
//! rustc makes its own jobserver of 32 tokens, so two units on two cores could run dozens of
//! LLVM threads at once, and a small unit on the critical path shares the cores with all of
//! a large unit's threads.
//!
//! The builder finds it without anything in the derivation (whose bytes are each unit's
//! identity): this process keeps a memfd named [`cargo_nix_unit::jobserver::MARKER`] open,
//! holding `/proc/<pid>/fd/<n>` of the pipe's read end; a builder whose parent is this process
//! (a local store, no sandbox) finds it among its parent's descriptors (see
//! [`cargo_nix_unit::jobserver`]).
//!
//! The scheduler takes tokens from the same pipe, as cargo's job queue does: a unit starts on
//! the implicit token when none is running, and each further unit needs a token
//! ([`Offer::try_take`]), given back when it is no longer needed ([`Offer::give_back`]). So
//! with `-j N` there are never more than N threads compiling, units and codegen threads
//! together, however rustc's codegen threads and the scheduler share them out.

use std::fs::File;
use std::io::{Read, Write};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::os::unix::fs::OpenOptionsExt;

/// An offered jobserver; withdrawn (descriptors closed) when dropped.
#[derive(Debug)]
pub struct Offer {
    _read: OwnedFd,
    write: File,
    /// The pipe's read end opened again, non-blocking (its own open file description, so
    /// the builders' blocking reads are not affected): [`Offer::try_take`].
    taker: File,
    _memfd: File,
}

impl Offer {
    /// A pipe with `tokens` tokens, offered through the memfd.
    pub fn new(tokens: usize) -> std::io::Result<Offer> {
        let mut fds = [0; 2];
        // SAFETY: `fds` is a valid array of two descriptors for pipe2 to fill.
        if unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) } != 0 {
            return Err(std::io::Error::last_os_error());
        }
        // SAFETY: pipe2 succeeded, so both descriptors are open and owned by nobody else.
        let (read, write) = unsafe { (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])) };
        // A pipe holds 64 KiB: far more tokens than anyone asks for.
        let mut pipe = File::from(write);
        pipe.write_all(&vec![b'|'; tokens.min(4096)])?;
        // The pipe, and the job count (`-j`: the tokens and the one every process has), which
        // build scripts see as `NUM_JOBS`.
        let offer = format!("/proc/{}/fd/{}\njobs {}\n", std::process::id(), read.as_raw_fd(), tokens + 1);
        let memfd = crate::offer::memfd(cargo_nix_unit::jobserver::MARKER, &offer)?;
        let taker = std::fs::OpenOptions::new()
            .read(true)
            .custom_flags(libc::O_NONBLOCK)
            .open(format!("/proc/self/fd/{}", read.as_raw_fd()))?;
        Ok(Offer { _read: read, write: pipe, taker, _memfd: memfd })
    }

    /// Takes a token if one is free now (without waiting).
    pub fn try_take(&self) -> bool {
        let mut token = [0u8; 1];
        matches!((&self.taker).read(&mut token), Ok(1))
    }

    /// Gives `n` taken tokens back.
    pub fn give_back(&self, n: usize) {
        // The pipe had room for them before they were taken; a failure here only means fewer
        // codegen threads for the rest of this build.
        let _ = (&self.write).write_all(&vec![b'|'; n]);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn builders_of_this_process_find_the_offer_and_its_tokens() {
        let offer = Offer::new(3).unwrap();
        let flags = cargo_nix_unit::jobserver::offered_by(std::process::id()).expect("the offer is found");
        // Cargo's form: two descriptors opened on the offered pipe, which children inherit.
        let auth = flags.rsplit("--jobserver-auth=").next().unwrap();
        assert!(flags.starts_with("-j --jobserver-fds="), "{flags}");
        let (read, _) = auth.split_once(',').unwrap_or_else(|| panic!("not the R,W form: {flags}"));
        // Opened as a client opens it: exactly the three tokens are there.
        let mut pipe =
            std::fs::OpenOptions::new().read(true).write(true).open(format!("/proc/self/fd/{read}")).unwrap();
        // SAFETY: fcntl on a descriptor `pipe` owns; O_NONBLOCK affects this open file only.
        unsafe { libc::fcntl(pipe.as_raw_fd(), libc::F_SETFL, libc::O_NONBLOCK) };
        let mut buf = [0u8; 8];
        assert_eq!(pipe.read(&mut buf).unwrap(), 3);
        assert!(pipe.read(&mut buf).is_err(), "no fourth token");
        pipe.write_all(b"|||").unwrap();
        // The scheduler's side: the same three tokens, taken without waiting, then given back.
        assert!((0..3).all(|_| offer.try_take()));
        assert!(!offer.try_take(), "no fourth token, and no waiting for one");
        offer.give_back(2);
        assert_eq!(pipe.read(&mut buf).unwrap(), 2);
        drop(offer);
        assert_eq!(cargo_nix_unit::jobserver::offered_by(std::process::id()), None, "withdrawn when dropped");
    }
}
