//! The 16-byte heartbeat every node's agent sends the orchestrator (format: docs/heartbeat.md).

use core::fmt;

/// Length of a heartbeat.
pub const LEN: usize = 16;
/// Format version in byte 0.
pub const VERSION: u8 = 1;
/// "No service" in the busiest-service field.
pub const NO_SERVICE: u16 = 0xffff;

bitflags::bitflags! {
    /// Conditions the agent saw during the interval.
    #[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
    pub struct HeartbeatFlags: u8 {
        /// The traffic manager's queue never drained (every depth sample was above zero).
        const STANDING_QUEUE = 0x01;
        /// A service's mean execution time was more than 20% above its moving average.
        const OVERLOAD = 0x02;
        /// Frames were dropped during the interval.
        const DROPPING = 0x04;
    }
}

/// One heartbeat, decoded.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Heartbeat {
    /// What the agent saw.
    pub flags: HeartbeatFlags,
    /// The node.
    pub node: u16,
    /// Wrapping sequence number (gaps show lost heartbeats).
    pub sequence: u16,
    /// Mean traffic-manager queue depth over the interval, frames (saturating).
    pub queue_depth: u16,
    /// Link utilisation in basis points (1/100 of a percent): the busiest direction of the
    /// busiest port.
    pub link_utilisation: u16,
    /// The service that used the most CPU during the interval ([`NO_SERVICE`] when none ran).
    pub busiest_service: u16,
    /// Its execution-time moving average, nanoseconds (log-linear on the wire: 12 significant
    /// bits, up to about 134 ms).
    pub busiest_ema_ns: u64,
    /// Its share of the node's cores, percent.
    pub busiest_cpu_percent: u8,
    /// How many services were overloaded (saturating).
    pub overloaded_services: u8,
}

/// Why 16 bytes are not a heartbeat.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum HeartbeatError {
    /// Not 16 bytes.
    BadLength,
    /// A version this code does not read.
    BadVersion,
}

impl fmt::Display for HeartbeatError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            HeartbeatError::BadLength => "a heartbeat is 16 bytes",
            HeartbeatError::BadVersion => "unknown heartbeat version",
        })
    }
}

impl Heartbeat {
    /// The wire form.
    pub fn encode(&self) -> [u8; LEN] {
        let mut out = [0u8; LEN];
        out[0] = VERSION;
        out[1] = self.flags.bits();
        out[2..4].copy_from_slice(&self.node.to_le_bytes());
        out[4..6].copy_from_slice(&self.sequence.to_le_bytes());
        out[6..8].copy_from_slice(&self.queue_depth.to_le_bytes());
        out[8..10].copy_from_slice(&self.link_utilisation.to_le_bytes());
        out[10..12].copy_from_slice(&self.busiest_service.to_le_bytes());
        out[12..14].copy_from_slice(&encode_time(self.busiest_ema_ns).to_le_bytes());
        out[14] = self.busiest_cpu_percent;
        out[15] = self.overloaded_services;
        out
    }

    /// Reads a heartbeat; unknown flag bits are kept.
    pub fn decode(bytes: &[u8]) -> Result<Self, HeartbeatError> {
        let bytes: &[u8; LEN] = bytes.try_into().map_err(|_| HeartbeatError::BadLength)?;
        if bytes[0] != VERSION {
            return Err(HeartbeatError::BadVersion);
        }
        let word = |i: usize| u16::from_le_bytes([bytes[i], bytes[i + 1]]);
        Ok(Heartbeat {
            flags: HeartbeatFlags::from_bits_retain(bytes[1]),
            node: word(2),
            sequence: word(4),
            queue_depth: word(6),
            link_utilisation: word(8),
            busiest_service: word(10),
            busiest_ema_ns: decode_time(word(12)),
            busiest_cpu_percent: bytes[14],
            overloaded_services: bytes[15],
        })
    }
}

/// Nanoseconds as 4 bits of exponent and 12 of mantissa: `mantissa << exponent`, exact below
/// 4096 ns, within 1/2048 above, saturating at `4095 << 15`.
pub fn encode_time(ns: u64) -> u16 {
    let bits = u64::BITS - ns.leading_zeros();
    let exponent = bits.saturating_sub(12);
    if exponent > 15 {
        return 0xffff;
    }
    ((exponent as u16) << 12) | (ns >> exponent) as u16
}

/// The inverse of [`encode_time`] (rounded down to the kept bits).
pub fn decode_time(field: u16) -> u64 {
    u64::from(field & 0x0fff) << (field >> 12)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_at_the_documented_offsets() {
        let beat = Heartbeat {
            flags: HeartbeatFlags::STANDING_QUEUE | HeartbeatFlags::OVERLOAD,
            node: 0x0102,
            sequence: 0x0304,
            queue_depth: 0x0506,
            link_utilisation: 7500,
            busiest_service: 9,
            busiest_ema_ns: 1500,
            busiest_cpu_percent: 80,
            overloaded_services: 1,
        };
        let bytes = beat.encode();
        assert_eq!(
            bytes,
            [1, 0x03, 0x02, 0x01, 0x04, 0x03, 0x06, 0x05, 0x4c, 0x1d, 9, 0, 0xdc, 0x05, 80, 1]
        );
        assert_eq!(Heartbeat::decode(&bytes), Ok(beat));
        assert_eq!(
            Heartbeat::decode(&bytes[..15]),
            Err(HeartbeatError::BadLength)
        );
        let mut other = bytes;
        other[0] = 2;
        assert_eq!(Heartbeat::decode(&other), Err(HeartbeatError::BadVersion));
    }

    #[test]
    fn times_keep_twelve_significant_bits() {
        for ns in [0, 1, 4095, 4096, 4097, 123_456, 1_000_000, 134_152_192] {
            let back = decode_time(encode_time(ns));
            assert!(back <= ns && ns - back <= ns / 2048, "{ns} -> {back}");
        }
        assert_eq!(decode_time(encode_time(4095)), 4095);
        assert_eq!(encode_time(u64::MAX), 0xffff);
        assert_eq!(decode_time(0xffff), 4095 << 15);
    }
}
