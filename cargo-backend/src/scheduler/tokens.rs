//! The jobserver tokens the coordinator takes for the units it runs beyond the first, as
//! cargo's job queue does (see [`crate::jobserver`]).

use std::time::Duration;

use crate::jobserver::Offer;

/// How often the coordinator looks for a free token while a ready unit waits for one.
pub(super) const TOKEN_POLL: Duration = Duration::from_millis(5);

/// The jobserver tokens the coordinator holds; given back when dropped.
pub(super) struct Tokens<'a> {
    pub(super) offer: Option<&'a Offer>,
    pub(super) held: usize,
}

impl Tokens<'_> {
    /// Whether a unit may start while `running` others run: the first needs no token, each
    /// further one its own (taken now if free); always without a jobserver.
    pub(super) fn allow(&mut self, running: usize) -> bool {
        let Some(offer) = self.offer else { return true };
        if running == 0 || self.held >= running {
            return true;
        }
        if offer.try_take() {
            self.held += 1;
        }
        self.held >= running
    }

    /// Gives back the tokens `running` units do not need (the first runs without one).
    pub(super) fn keep_for(&mut self, running: usize) {
        let need = running.saturating_sub(1);
        if let Some(offer) = self.offer.filter(|_| self.held > need) {
            offer.give_back(self.held - need);
            self.held = need;
        }
    }
}

impl Drop for Tokens<'_> {
    fn drop(&mut self) {
        self.keep_for(0);
    }
}
