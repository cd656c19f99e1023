//! Interrupting Nix operations in progress (Ctrl-C), with Nix's own machinery.
//!
//! Nix stops work on a user interrupt by setting a process-wide flag that every long-running
//! loop checks (`checkInterrupt()`); a build goal that sees it throws `nix::Interrupted`, and
//! unwinding the goal kills its builder's process group and releases its output locks. The
//! `nix` CLI sets that flag from a signal-handling thread (`nix::unix::triggerInterrupt()`) and
//! wakes its main thread with SIGUSR1 so that a `poll()` waiting for builder output returns.
//! The C API's initialisation installs none of this (it leaves signals to the embedding
//! program), so [`interrupt`] does both steps for the threads that are inside
//! [`Store::realise`](crate::Store::realise).

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Mutex, MutexGuard};
use std::time::Duration;

static INTERRUPTED: AtomicBool = AtomicBool::new(false);
static NEXT_TOKEN: AtomicU64 = AtomicU64::new(0);
/// Threads inside a call that may block in Nix waiting for a builder, by token.
static BLOCKED: Mutex<BTreeMap<u64, libc::pthread_t>> = Mutex::new(BTreeMap::new());
/// Whether a thread is waking the threads in `BLOCKED`.
static WAKER_RUNNING: AtomicBool = AtomicBool::new(false);

fn blocked() -> MutexGuard<'static, BTreeMap<u64, libc::pthread_t>> {
    BLOCKED.lock().unwrap_or_else(|p| p.into_inner())
}

/// Interrupts the Nix operations in progress in this process and makes later ones fail, as
/// Ctrl-C does for the `nix` CLI. Meant for a signal-handling thread (e.g. on SIGINT or
/// SIGTERM); it is not async-signal-safe, so do not call it from a signal handler itself.
///
/// On every supported Nix (2.26–2.35; no release has a C function for this, so nix-rs calls
/// the C++ function the `nix` CLI calls, `nix::unix::triggerInterrupt()`, declared in a header
/// Nix installs and unchanged across those releases; tested in CI on 2.26):
/// - Nix's interrupt flag is set (`nix::unix::triggerInterrupt()`), so every builder that a
///   [`Store::realise`](crate::Store::realise) of this process is running is killed (its whole
///   process group, as Nix does on Ctrl-C), its temporary build directory is removed and its
///   output locks are released; nothing is registered for it. That realise returns
///   [`Error::Interrupted`](crate::Error::Interrupted).
/// - Threads waiting in Nix for builder output are woken with `SIGUSR1`. If `SIGUSR1` has its
///   default action (which would end the process) or is ignored, nix-rs first installs a
///   handler that does nothing, as the `nix` CLI does; a handler the program installed itself
///   is kept.
/// - Other Nix calls (store queries, copies, adding sources) fail with Nix's "interrupted by
///   the user" error the next time they check the flag.
///
/// There is no way back: the flag stays set for the life of the process (Nix offers no reset
/// that is safe while other threads are inside Nix). Calling it again does no harm.
pub fn interrupt() {
    INTERRUPTED.store(true, Ordering::SeqCst);
    trigger_nix_interrupt();
    start_waker();
}

/// Whether [`interrupt`] has been called in this process.
pub fn is_interrupted() -> bool {
    INTERRUPTED.load(Ordering::SeqCst)
}

fn trigger_nix_interrupt() {
    if crate::init().is_err() {
        return;
    }
    install_wake_handler();
    // SAFETY: triggerInterrupt only stores to an atomic and runs the registered interrupt
    // callbacks, each inside a C++ try/catch (signals.cc), so no exception leaves it; it is
    // safe to call from any thread once libutil is initialised (done just above).
    unsafe { nix_sys::cxx::triggerInterrupt() };
}

/// Gives SIGUSR1 a handler that does nothing, unless the program has its own (Nix 2.26–2.35
/// wake a thread blocked in `poll()` with SIGUSR1 on Linux: `NIX_SIG_MULTI_INT`).
fn install_wake_handler() {
    extern "C" fn wake(_: libc::c_int) {}
    // SAFETY: sigaction with a NULL new action only reads the current one into `old`; the new
    // action is a zeroed sigaction with an empty mask and a handler that is async-signal-safe
    // (it does nothing). SA_RESTART keeps most interrupted system calls going; poll(), which is
    // what must return, is never restarted (signal(7)).
    unsafe {
        let mut old: libc::sigaction = std::mem::zeroed();
        if libc::sigaction(libc::SIGUSR1, std::ptr::null(), &mut old) != 0 {
            return;
        }
        if old.sa_sigaction != libc::SIG_DFL && old.sa_sigaction != libc::SIG_IGN {
            return;
        }
        let mut act: libc::sigaction = std::mem::zeroed();
        act.sa_sigaction = wake as extern "C" fn(libc::c_int) as libc::sighandler_t;
        act.sa_flags = libc::SA_RESTART;
        libc::sigemptyset(&mut act.sa_mask);
        libc::sigaction(libc::SIGUSR1, &act, std::ptr::null_mut());
    }
}

/// Wakes the blocked threads until none is left: a thread may be about to enter `poll()` when
/// the first signal arrives, so one signal is not enough.
fn start_waker() {
    if WAKER_RUNNING.swap(true, Ordering::SeqCst) {
        return;
    }
    let spawned = std::thread::Builder::new().name("nix-rs-interrupt".into()).spawn(|| {
        loop {
            {
                let threads = blocked();
                if threads.is_empty() {
                    WAKER_RUNNING.store(false, Ordering::SeqCst);
                    return;
                }
                for &t in threads.values() {
                    // SAFETY: `t` is a live thread: it removes itself from BLOCKED (under this
                    // lock) before it returns from the call it registered for. SIGUSR1 has a
                    // handler (install_wake_handler ran before this thread started) or the
                    // program's own.
                    unsafe { libc::pthread_kill(t, libc::SIGUSR1) };
                }
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    });
    if spawned.is_err() {
        WAKER_RUNNING.store(false, Ordering::SeqCst);
    }
}

/// Registers the current thread as one that [`interrupt`] must wake, until dropped.
pub(crate) struct Blocking(u64);

impl Blocking {
    pub(crate) fn enter() -> Blocking {
        let token = NEXT_TOKEN.fetch_add(1, Ordering::Relaxed);
        // SAFETY: pthread_self has no preconditions.
        let me = unsafe { libc::pthread_self() };
        blocked().insert(token, me);
        Blocking(token)
    }
}

impl Drop for Blocking {
    fn drop(&mut self) {
        blocked().remove(&self.0);
    }
}
