//! SIGINT and SIGTERM: the first stops the build as cargo does, a second exits at once.

use std::sync::atomic::{AtomicI32, Ordering};

use anyhow::{Context, Result};
use cargo_backend::Stop;

/// The signal that interrupted this run (0: none yet).
pub static SIGNAL: AtomicI32 = AtomicI32::new(0);

/// Handles SIGINT and SIGTERM on a thread of their own: the first one stops the build (the
/// scheduler through `stop`, the builders in flight through Nix's interrupt); a second one
/// exits at once.
pub fn handle_signals(stop: Stop) -> Result<()> {
    use signal_hook::consts::{SIGINT, SIGTERM};
    let mut signals = signal_hook::iterator::Signals::new([SIGINT, SIGTERM]).context("handling SIGINT and SIGTERM")?;
    std::thread::Builder::new()
        .name("cargo-nix-signals".into())
        .spawn(move || {
            for sig in signals.forever() {
                if SIGNAL.compare_exchange(0, sig, Ordering::SeqCst, Ordering::SeqCst).is_err() {
                    eprintln!("error: {} again: exiting at once", signal_name(sig));
                    std::process::exit(128 + sig);
                }
                stop.request();
                nix_rs::interrupt();
            }
        })
        .context("starting the signal-handling thread")?;
    Ok(())
}

pub fn signal_name(sig: i32) -> &'static str {
    match sig {
        signal_hook::consts::SIGINT => "SIGINT",
        signal_hook::consts::SIGTERM => "SIGTERM",
        _ => "a signal",
    }
}
