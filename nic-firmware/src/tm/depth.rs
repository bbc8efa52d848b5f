//! Queue depth over time: periodic samples of the frames waiting in the traffic manager,
//! summarised per interval (the standing-queue signal of E3 section 3.4).

/// The depth samples of one interval.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct DepthSummary {
    /// Samples taken.
    pub samples: u32,
    /// Smallest total depth seen: above zero means the queue never drained (a standing queue).
    pub min: u32,
    /// Largest total depth seen.
    pub max: u32,
    /// Sum of the samples, for the mean.
    pub sum: u64,
}

impl DepthSummary {
    /// Adds a sample.
    pub fn record(&mut self, depth: u32) {
        self.min = if self.samples == 0 {
            depth
        } else {
            self.min.min(depth)
        };
        self.max = self.max.max(depth);
        self.sum += u64::from(depth);
        self.samples = self.samples.saturating_add(1);
    }

    /// Mean depth over the interval (0 without samples).
    pub fn mean(&self) -> u32 {
        if self.samples == 0 {
            0
        } else {
            (self.sum / u64::from(self.samples)) as u32
        }
    }

    /// Whether the queue stayed non-empty at every sample of the interval.
    pub fn standing(&self) -> bool {
        self.samples > 0 && self.min > 0
    }
}

/// Samples at a fixed period and keeps the summary of the interval in progress.
#[derive(Debug)]
pub struct DepthMonitor {
    period_ns: u64,
    next_sample_ns: u64,
    current: DepthSummary,
}

impl DepthMonitor {
    /// A monitor sampling every `period_ns`.
    pub fn new(period_ns: u64) -> Self {
        DepthMonitor {
            period_ns: period_ns.max(1),
            next_sample_ns: 0,
            current: DepthSummary::default(),
        }
    }

    /// Whether a sample is due at `now_ns`.
    pub fn due(&self, now_ns: u64) -> bool {
        now_ns >= self.next_sample_ns
    }

    /// Records `depth` as the sample taken at `now_ns`.
    pub fn sample(&mut self, now_ns: u64, depth: u32) {
        self.current.record(depth);
        self.next_sample_ns = now_ns.saturating_add(self.period_ns);
    }

    /// Ends the interval: returns its summary and starts a new one.
    pub fn take_interval(&mut self) -> DepthSummary {
        core::mem::take(&mut self.current)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn summarises_an_interval() {
        let mut monitor = DepthMonitor::new(10);
        for (t, depth) in [(0, 3), (10, 5), (20, 1)] {
            assert!(monitor.due(t));
            monitor.sample(t, depth);
            assert!(!monitor.due(t + 9));
        }
        let summary = monitor.take_interval();
        assert_eq!((summary.samples, summary.min, summary.max), (3, 1, 5));
        assert_eq!(summary.mean(), 3);
        assert!(summary.standing());
        assert_eq!(monitor.take_interval(), DepthSummary::default());
    }

    #[test]
    fn a_drained_queue_is_not_standing() {
        let mut summary = DepthSummary::default();
        assert!(!summary.standing());
        summary.record(4);
        summary.record(0);
        assert!(!summary.standing());
        assert_eq!(summary.mean(), 2);
    }
}
