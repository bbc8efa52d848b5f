//! Per-service execution statistics: the interval mean and its exponential moving average,
//! and the overload test of E3 section 3.4 (mean more than 20% above the average).

/// Weight of a new interval in the moving average: 1/8.
pub const EMA_SHIFT: u32 = 3;
/// Fewest requests in an interval for its mean to count (fewer is noise).
pub const MIN_REQUESTS: u64 = 8;

/// What one service did during one interval, and what the agent made of it.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ServiceInterval {
    /// Requests handled.
    pub requests: u64,
    /// Nanoseconds spent in the service.
    pub busy_ns: u64,
    /// Mean execution time per request (0 without requests).
    pub mean_ns: u64,
    /// The moving average before this interval.
    pub ema_ns: u64,
    /// Whether the mean exceeded the average by more than 20%.
    pub overloaded: bool,
}

/// The running statistics of one service slot.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ServiceStatistics {
    generation: u32,
    last_requests: u64,
    last_busy_cycles: u64,
    ema_ns: u64,
    primed: bool,
}

impl ServiceStatistics {
    /// Closes an interval given the slot's generation and cumulative counters (requests, busy
    /// cycles) and how to turn this interval's cycles into nanoseconds; returns what happened
    /// in it. A new generation (another service in the slot) starts afresh: its first interval
    /// is empty.
    pub fn close_interval(
        &mut self,
        generation: u32,
        requests: u64,
        busy_cycles: u64,
        cycles_to_ns: impl Fn(u64) -> u64,
    ) -> ServiceInterval {
        if generation != self.generation {
            *self = ServiceStatistics {
                generation,
                last_requests: requests,
                last_busy_cycles: busy_cycles,
                ..ServiceStatistics::default()
            };
            return ServiceInterval::default();
        }
        let delta_requests = requests.wrapping_sub(self.last_requests);
        let delta_busy = cycles_to_ns(busy_cycles.wrapping_sub(self.last_busy_cycles));
        self.last_requests = requests;
        self.last_busy_cycles = busy_cycles;
        let mean_ns = delta_busy.checked_div(delta_requests).unwrap_or(0);
        let ema_ns = self.ema_ns;
        let mut overloaded = false;
        if delta_requests >= MIN_REQUESTS {
            if self.primed {
                // mean > 1.2 * ema, in integers.
                overloaded = mean_ns.saturating_mul(5) > ema_ns.saturating_mul(6);
                self.ema_ns = ema_ns - (ema_ns >> EMA_SHIFT) + (mean_ns >> EMA_SHIFT);
            } else {
                self.ema_ns = mean_ns;
                self.primed = true;
            }
        }
        ServiceInterval {
            requests: delta_requests,
            busy_ns: delta_busy,
            mean_ns,
            ema_ns,
            overloaded,
        }
    }

    /// The current moving average.
    pub fn ema_ns(&self) -> u64 {
        self.ema_ns
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn steady_load_is_not_overload() {
        let mut stats = ServiceStatistics::default();
        let (mut requests, mut busy) = (0, 0);
        for _ in 0..20 {
            requests += 100;
            busy += 100 * 1000;
            let interval = stats.close_interval(0, requests, busy, |c| c);
            assert_eq!(interval.mean_ns, 1000);
            assert!(!interval.overloaded);
        }
        assert_eq!(stats.ema_ns(), 1000);
    }

    #[test]
    fn a_slowdown_over_twenty_percent_is_overload() {
        let mut stats = ServiceStatistics::default();
        stats.close_interval(0, 100, 100_000, |c| c);
        let fine = stats.close_interval(0, 200, 100_000 + 119_000, |c| c);
        assert!(!fine.overloaded, "19% slower is within bounds");
        let slow = stats.close_interval(0, 300, 219_000 + 125_000, |c| c);
        assert!(slow.overloaded);
        assert!(slow.ema_ns < slow.mean_ns);
    }

    #[test]
    fn cycles_become_nanoseconds() {
        let mut stats = ServiceStatistics::default();
        let interval = stats.close_interval(0, 10, 30_000, |cycles| cycles / 3);
        assert_eq!(interval.busy_ns, 10_000);
        assert_eq!(interval.mean_ns, 1_000);
    }

    #[test]
    fn a_new_generation_starts_afresh() {
        let mut stats = ServiceStatistics::default();
        stats.close_interval(0, 100, 100_000, |c| c);
        assert_eq!(stats.ema_ns(), 1000);
        let first = stats.close_interval(1, 200, 300_000, |c| c);
        assert_eq!(first, ServiceInterval::default());
        assert_eq!(stats.ema_ns(), 0);
        let second = stats.close_interval(1, 300, 500_000, |c| c);
        assert_eq!((second.requests, second.mean_ns), (100, 2000));
    }

    #[test]
    fn few_requests_do_not_move_the_average() {
        let mut stats = ServiceStatistics::default();
        stats.close_interval(0, 100, 100_000, |c| c);
        let quiet = stats.close_interval(0, 103, 100_000 + 3 * 50_000, |c| c);
        assert!(!quiet.overloaded);
        assert_eq!(stats.ema_ns(), 1000);
        assert_eq!(quiet.requests, 3);
    }
}
