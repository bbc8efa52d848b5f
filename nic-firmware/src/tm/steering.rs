//! Steering policies: which core a frame goes to.
//!
//! Round-robin spreads requests evenly (E3's default); flow-affine keeps every frame of one
//! flow (same 5-tuple, either direction) on one core, so a stateful service sees a flow's
//! requests in order.

/// How the traffic manager picks a core for a frame.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Steering {
    /// Next core in turn, skipping full queues; idle cores also take from busy ones.
    #[default]
    RoundRobin,
    /// The core given by the flow hash, so that one flow stays in order on one core.
    FlowAffine,
}

/// The symmetric hash of an IPv4 frame's 5-tuple (addresses, protocol, and ports for TCP and
/// UDP), the same for both directions of a flow. Frames that are not IPv4, and fragments'
/// ports, hash on what is there; nothing here trusts or panics on the bytes.
pub fn flow_hash(frame: &[u8]) -> u32 {
    let byte = |i: usize| frame.get(i).copied().unwrap_or(0);
    let word = |i: usize| u16::from_be_bytes([byte(i), byte(i + 1)]);
    let quad = |i: usize| u32::from_be_bytes([byte(i), byte(i + 1), byte(i + 2), byte(i + 3)]);
    if word(12) != 0x0800 {
        return mix(u64::from(word(12)), 0, 0);
    }
    const IP: usize = 14;
    let header_len = usize::from(byte(IP) & 0x0f) * 4;
    let protocol = byte(IP + 9);
    let (source, destination) = (quad(IP + 12), quad(IP + 16));
    let (source_port, destination_port) = match protocol {
        6 | 17 => (word(IP + header_len), word(IP + header_len + 2)),
        _ => (0, 0),
    };
    flow_hash_of(source, source_port, destination, destination_port, protocol)
}

/// The hash [`flow_hash`] computes, from the 5-tuple itself (for datagrams the host sends).
pub fn flow_hash_of(
    source: u32,
    source_port: u16,
    destination: u32,
    destination_port: u16,
    protocol: u8,
) -> u32 {
    let a = (u64::from(source) << 16) | u64::from(source_port);
    let b = (u64::from(destination) << 16) | u64::from(destination_port);
    mix(a.min(b), a.max(b), protocol)
}

/// A multiply-xorshift mixer (the finaliser of SplitMix64) over the ordered end points.
fn mix(low: u64, high: u64, protocol: u8) -> u32 {
    let mut h = low.wrapping_mul(0x9e37_79b9_7f4a_7c15).rotate_left(31)
        ^ high
        ^ (u64::from(protocol) << 56);
    h ^= h >> 30;
    h = h.wrapping_mul(0xbf58_476d_1ce4_e5b9);
    h ^= h >> 27;
    h = h.wrapping_mul(0x94d0_49bb_1331_11eb);
    h ^= h >> 31;
    (h ^ (h >> 32)) as u32
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wire::fixtures;

    #[test]
    fn both_directions_hash_alike() {
        assert_eq!(
            flow_hash(&fixtures::UDP_REQUEST_FRAME),
            flow_hash(&fixtures::UDP_REPLY_FRAME)
        );
        assert_eq!(
            flow_hash(&fixtures::UDP_REQUEST_FRAME),
            flow_hash_of(
                fixtures::NIC_IP.to_bits(),
                7001,
                fixtures::PEER_IP.to_bits(),
                40000,
                17
            )
        );
    }

    #[test]
    fn ports_and_protocol_matter() {
        let base = flow_hash(&fixtures::UDP_REQUEST_FRAME);
        let mut other_port = fixtures::UDP_REQUEST_FRAME;
        other_port[35] ^= 1;
        assert_ne!(flow_hash(&other_port), base);
        let mut other_protocol = fixtures::UDP_REQUEST_FRAME;
        other_protocol[23] = 6;
        assert_ne!(flow_hash(&other_protocol), base);
    }

    #[test]
    fn spreads_flows_over_cores() {
        let mut per_core = [0u32; 4];
        for port in 0..4000u16 {
            let hash = flow_hash_of(0x0a00_0107, 30000 + port, 0x0a00_0002, 7001, 17);
            per_core[hash as usize % 4] += 1;
        }
        // Each core gets its share within 10%.
        assert!(
            per_core.iter().all(|&n| (900..=1100).contains(&n)),
            "{per_core:?}"
        );
    }

    #[test]
    fn any_bytes_hash_without_panicking() {
        for len in 0..=fixtures::UDP_WITH_OPTIONS_FRAME.len() {
            let _ = flow_hash(&fixtures::UDP_WITH_OPTIONS_FRAME[..len]);
        }
        let mut weird = fixtures::UDP_REQUEST_FRAME;
        weird[14] = 0x4f;
        let _ = flow_hash(&weird);
    }
}
