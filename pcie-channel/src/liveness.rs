//! Liveness: each side bumps its own heartbeat counter; a [`PeerWatch`] turns a counter that
//! stops moving for longer than a timeout into a disconnection. Time is injected by the
//! caller (no clock in `no_std`).

use crate::header::SideState;

/// What a [`PeerWatch`] concluded at its last observation.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PeerStatus {
    /// The heartbeat moved within the timeout (or the watch has just started).
    Alive,
    /// The heartbeat has not moved since `since` (the time it last moved), longer than the
    /// timeout.
    Stalled {
        /// Time of the last movement, in the caller's clock.
        since: u64,
    },
    /// The peer's state word says it stopped or failed (or holds garbage).
    Down(SideState),
}

impl PeerStatus {
    /// Whether the peer counts as connected.
    pub fn is_alive(self) -> bool {
        matches!(self, PeerStatus::Alive)
    }
}

/// Watches the peer's heartbeat counter against a timeout, in whatever unit `now` is given.
#[derive(Clone, Copy, Debug)]
pub struct PeerWatch {
    timeout: u64,
    last_value: u64,
    last_change: Option<u64>,
}

impl PeerWatch {
    /// A watch that declares the peer stalled after `timeout` units without a heartbeat.
    pub const fn new(timeout: u64) -> PeerWatch {
        PeerWatch {
            timeout,
            last_value: 0,
            last_change: None,
        }
    }

    /// The configured timeout.
    pub const fn timeout(&self) -> u64 {
        self.timeout
    }

    /// Takes one observation of the peer's `heartbeat` and `state` at time `now`. The first
    /// observation starts the clock. Time going backwards counts as no time passing.
    pub fn observe(&mut self, heartbeat: u64, state: SideState, now: u64) -> PeerStatus {
        match self.last_change {
            Some(_) if heartbeat == self.last_value => {}
            _ => {
                self.last_value = heartbeat;
                self.last_change = Some(now);
            }
        }
        match state {
            SideState::Ready | SideState::Absent => {}
            other => return PeerStatus::Down(other),
        }
        let since = self.last_change.unwrap_or(now);
        if now.saturating_sub(since) > self.timeout {
            PeerStatus::Stalled { since }
        } else {
            PeerStatus::Alive
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_moving_heartbeat_is_alive_and_a_still_one_stalls_after_the_timeout() {
        let mut watch = PeerWatch::new(100);
        assert_eq!(watch.observe(5, SideState::Ready, 1000), PeerStatus::Alive);
        assert_eq!(watch.observe(5, SideState::Ready, 1100), PeerStatus::Alive);
        assert_eq!(
            watch.observe(5, SideState::Ready, 1101),
            PeerStatus::Stalled { since: 1000 }
        );
        assert_eq!(watch.observe(6, SideState::Ready, 1200), PeerStatus::Alive);
        assert_eq!(watch.observe(6, SideState::Ready, 50), PeerStatus::Alive);
    }

    #[test]
    fn a_peer_that_says_it_stopped_is_down() {
        let mut watch = PeerWatch::new(100);
        assert_eq!(
            watch.observe(1, SideState::Failed, 0),
            PeerStatus::Down(SideState::Failed)
        );
        assert_eq!(
            watch.observe(2, SideState::Unknown(77), 1),
            PeerStatus::Down(SideState::Unknown(77))
        );
    }
}
