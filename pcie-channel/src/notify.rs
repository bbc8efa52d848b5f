//! Optional notification: how a sender wakes a receiver that sleeps instead of polling
//! (docs/pcie-channel.md §4.4). Polling is the default and costs nothing here.
//!
//! The receiver that wants to sleep arms the *waiting* word of its side's liveness line (bit 0
//! set, bits 1.. count its waits), then re-checks its rings; a sender with a [`Notify`] hook
//! reads the peer's waiting word after each publication and rings the hook when it is armed,
//! once per wait (it remembers the word it rang for). The hook is an eventfd on Linux
//! ([`crate::Doorbell`]); a board would implement it over its doorbell register.
//!
//! Memory-ordering pair (no lost wake-up):
//! - W1 the receiver stores its waiting word, then a SeqCst fence, then loads the producer
//!   indices (C1) once more before it sleeps.
//! - W2 the sender stores the producer index (P1), then a SeqCst fence, then loads the peer's
//!   waiting word.
//!
//! Of the two fences one comes first in their single total order: either the receiver's re-check
//! sees the new producer index, or the sender sees the waiting word and rings.

use core::fmt;

/// Wakes the peer's receiver (an eventfd, a doorbell register). Called from the sender's
/// publication path only when the peer said it is waiting.
pub trait Notify: Sync {
    /// Rings once. A failure is counted by the sender ([`crate::SendStats::notify_errors`]);
    /// the receiver's wait has a timeout, so a lost ring delays, never loses, a message.
    fn notify(&self) -> Result<(), NotifyError>;
}

/// A notification that could not be delivered: the OS error code (`errno` on Linux), or 0
/// where there is none.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct NotifyError {
    /// The OS error code, 0 if unknown.
    pub code: i32,
}

impl fmt::Display for NotifyError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "could not ring the peer's doorbell (OS error {})",
            self.code
        )
    }
}
