//! Copying unit outputs back from a build store that is not on this machine (`--store
//! ssh-ng://…`) into the local store, while the build runs.
//!
//! The outputs target/ links to (the roots, and the workspace members') must be in the local
//! store before they are installed. Copied after the build, their closures (debug info names
//! every source path, so those come too) took a third of a remote build's time. A copier
//! thread copies each wanted output as soon as its unit is built, over the build store's own
//! connection, which the scheduler's workers do not use (each has its own,
//! [`crate::connections::extra_stores`]): one session for all the copying, overlapping the
//! builds. What the copier could not copy is copied (and its error reported) after the build.

use std::collections::BTreeSet;

use crossbeam_channel::{Sender, unbounded};
use nix_rs::{Store, StorePath};

/// Runs `build` with a copier from `from` to `to` running beside it; `build` gets the sender
/// for outputs to copy. Returns `build`'s result and the outputs the copier copied.
pub fn while_building<R>(
    from: &Store,
    to: &Store,
    build: impl FnOnce(&Sender<StorePath>) -> R,
) -> (R, BTreeSet<StorePath>) {
    let (tx, rx) = unbounded::<StorePath>();
    std::thread::scope(|s| {
        let copier = s.spawn(move || {
            let mut copied = BTreeSet::new();
            for out in rx {
                // A failure is retried after the build, where it is reported.
                if from.copy_closure_to(to, &out).is_ok() {
                    copied.insert(out);
                }
            }
            copied
        });
        let result = build(&tx);
        drop(tx);
        (result, copier.join().unwrap_or_default())
    })
}
