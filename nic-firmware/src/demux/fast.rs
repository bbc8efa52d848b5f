//! The demux's fast path: the frame the runtime sees most, a UDP datagram for the NIC IP
//! without IPv4 options, unicast to the receiving port's MAC, recognised at fixed offsets with
//! both checksums verified (the IPv4 header's, and the UDP one over the whole datagram; the
//! two share the sum of the addresses).
//!
//! [`nic_udp`] answers `Some` only for a frame on which the general
//! [`try_classify`](super::try_classify) gives [`Verdict::Nic`](super::Verdict::Nic), with
//! the same [`Datagram`]; for every other frame (ARP, ICMP, TCP, IP options, broadcast, the
//! host IP, anything malformed) it answers `None`, and the caller runs the general
//! classifier, which deals with the frame and names the reason of a drop. It never panics.

use zerocopy::{FromBytes, Immutable, KnownLayout, Unaligned};

use super::Datagram;
use crate::platform::Endpoint;
use crate::wire::checksum::Checksum;
use crate::wire::ethernet::EthernetHeader;
use crate::wire::ipv4::{self, IpProtocol, Ipv4Address, Ipv4Header};
use crate::wire::udp::{self, UdpHeader};
use crate::wire::{EtherType, MacAddress};

/// The headers of a UDP frame without IPv4 options, as they lie on the wire.
#[derive(FromBytes, KnownLayout, Immutable, Unaligned)]
#[repr(C)]
struct UdpFrameHeaders {
    ethernet: EthernetHeader,
    ip: Ipv4Header,
    udp: UdpHeader,
}

/// Version 4, a 20-byte header: the first byte of an IPv4 header without options.
const VERSION_4_NO_OPTIONS: u8 = 0x45;
/// The flags and fragment offset bits that make a packet a fragment.
const MORE_FRAGMENTS_AND_OFFSET: u16 = 0x3fff;

/// The UDP datagram `frame` carries for the NIC IP `nic_ip`, if `frame` is one the fast path
/// takes (see the module doc); `None` sends the frame to the general classifier.
#[inline]
pub fn nic_udp(frame: &[u8], port_mac: MacAddress, nic_ip: Ipv4Address) -> Option<Datagram<'_>> {
    let (headers, _) = UdpFrameHeaders::ref_from_prefix(frame).ok()?;
    let UdpFrameHeaders { ethernet, ip, udp } = headers;
    let for_this_port = ethernet.destination == port_mac;
    let is_ipv4 = ethernet.ethertype.get() == u16::from(EtherType::Ipv4);
    let plain_header = ip.version_ihl == VERSION_4_NO_OPTIONS;
    let whole = ip.flags_fragment.get() & MORE_FRAGMENTS_AND_OFFSET == 0;
    let for_nic = ip.destination == nic_ip && ip.protocol == u8::from(IpProtocol::Udp);
    if !(for_this_port && is_ipv4 && plain_header && whole && for_nic) {
        return None;
    }
    // The IPv4 total length covers the header and a UDP header, and lies inside the frame;
    // the UDP length covers its header and lies inside the IPv4 payload (as the general
    // parse demands: link padding after either is ignored).
    let ip_bytes = frame.get(core::mem::size_of::<EthernetHeader>()..)?;
    let total_len = usize::from(ip.total_length.get());
    let udp_len = usize::from(udp.length.get());
    let ip_payload_len = total_len.checked_sub(ipv4::HEADER_LEN)?;
    if total_len > ip_bytes.len() || udp_len < udp::HEADER_LEN || udp_len > ip_payload_len {
        return None;
    }
    let datagram = ip_bytes.get(ipv4::HEADER_LEN..ipv4::HEADER_LEN + udp_len)?;
    // Both checksums, the addresses summed once for the header and the pseudo-header.
    let (header_bytes, _) = ip_bytes.split_first_chunk::<{ ipv4::HEADER_LEN }>()?;
    let (before_addresses, addresses) = header_bytes.split_at(12);
    let address_sum = Checksum::new().add_bytes(addresses);
    if !address_sum.add_bytes(before_addresses).verifies() {
        return None;
    }
    if udp.checksum.get() != 0 {
        let sum = address_sum
            .add_u16(u16::from(u8::from(IpProtocol::Udp)))
            .add_u16(udp_len as u16)
            .add_bytes(datagram);
        if !sum.verifies() {
            return None;
        }
    }
    Some(Datagram {
        source_mac: ethernet.source,
        source: Endpoint {
            ip: ip.source,
            port: udp.source_port.get(),
        },
        destination: Endpoint {
            ip: ip.destination,
            port: udp.destination_port.get(),
        },
        payload: datagram.get(udp::HEADER_LEN..).unwrap_or_default(),
    })
}

#[cfg(test)]
mod tests {
    use alloc::vec::Vec;

    use super::*;
    use crate::demux::{try_classify, Addresses, Verdict};
    use crate::testing::fix_checksums;
    use crate::wire::fixtures;

    const MAC: MacAddress = fixtures::NIC_MAC;
    const ADDRESSES: Addresses = Addresses {
        nic_ip: fixtures::NIC_IP,
        host_ip: Some(fixtures::HOST_IP),
    };

    fn fast(frame: &[u8]) -> Option<Datagram<'_>> {
        nic_udp(frame, MAC, ADDRESSES.nic_ip)
    }

    /// The property: whatever the fast path takes, the general classifier gives the same
    /// datagram for.
    fn agrees(frame: &[u8]) -> bool {
        match fast(frame) {
            None => true,
            Some(datagram) => try_classify(frame, MAC, &ADDRESSES) == Ok(Verdict::Nic(datagram)),
        }
    }

    #[test]
    fn takes_the_request_fixture_as_the_general_path_does() {
        let datagram = fast(&fixtures::UDP_REQUEST_FRAME).expect("the fast path takes it");
        assert_eq!(datagram.source_mac, fixtures::PEER_MAC);
        assert_eq!(datagram.source, Endpoint::new(fixtures::PEER_IP, 40000));
        assert_eq!(datagram.destination, Endpoint::new(fixtures::NIC_IP, 7001));
        assert_eq!(datagram.payload, b"hello, e3");
        assert!(agrees(&fixtures::UDP_REQUEST_FRAME));
        // Link padding after the datagram is not data.
        let mut padded = fixtures::UDP_REQUEST_FRAME.to_vec();
        padded.resize(60, 0xee);
        assert_eq!(fast(&padded).map(|d| d.payload), Some(&b"hello, e3"[..]));
        assert!(agrees(&padded));
        // No checksum (zero) is allowed, as in the general parse.
        let mut unchecked = fixtures::UDP_REQUEST_FRAME;
        unchecked[40..42].fill(0);
        assert!(fast(&unchecked).is_some());
        assert!(agrees(&unchecked));
    }

    #[test]
    fn leaves_everything_else_to_the_general_path() {
        let others: [&[u8]; 6] = [
            &fixtures::UDP_WITH_OPTIONS_FRAME,
            &fixtures::UDP_TO_HOST_FRAME,
            &fixtures::ARP_REQUEST_FRAME,
            &fixtures::ICMP_ECHO_REQUEST_FRAME,
            &fixtures::TCP_SYN_FRAME,
            &fixtures::UDP_REQUEST_FRAME[..41],
        ];
        for frame in others {
            assert_eq!(fast(frame), None, "{frame:02x?}");
        }
        let mut broadcast = fixtures::UDP_REQUEST_FRAME;
        broadcast[..6].fill(0xff);
        assert_eq!(fast(&broadcast), None);
        assert!(matches!(
            try_classify(&broadcast, MAC, &ADDRESSES),
            Ok(Verdict::Nic(_))
        ));
    }

    #[test]
    fn refuses_every_malformed_variant_of_the_fixture() {
        // The request with link padding (a 60-byte frame, 9 bytes after the datagram), so
        // that a length a little too long still lies inside the frame.
        let mut frame = fixtures::UDP_REQUEST_FRAME.to_vec();
        frame.resize(60, 0);
        let set = |f: &mut Vec<u8>, at: usize, value: u16| {
            f[at..at + 2].copy_from_slice(&value.to_be_bytes());
        };
        let mut cases: Vec<(&str, Vec<u8>)> = Vec::new();
        // Each change but the checksums' own is made with both checksums fixed after it, so
        // that only the check it is about can refuse the frame.
        let mut with = |name, fixed: bool, change: &dyn Fn(&mut Vec<u8>)| {
            let mut bytes = frame.clone();
            change(&mut bytes);
            if fixed {
                fix_checksums(&mut bytes);
            }
            cases.push((name, bytes));
        };
        with("other MAC", true, &|f| f[5] ^= 1);
        with("IPv6 EtherType", true, &|f| set(f, 12, 0x86dd));
        with("version 6", true, &|f| f[14] = 0x65);
        with("header too short", true, &|f| f[14] = 0x44);
        with("IPv4 checksum", false, &|f| f[25] ^= 1);
        with("total length past the frame", true, &|f| set(f, 16, 47));
        with("total length short of the UDP length", true, &|f| {
            set(f, 16, 36)
        });
        with("total length under the headers", true, &|f| set(f, 16, 27));
        with("more fragments", true, &|f| f[20] |= 0x20);
        with("fragment offset", true, &|f| f[21] |= 1);
        with("other destination", true, &|f| f[33] ^= 1);
        with("TCP", true, &|f| f[23] = 6);
        with("UDP checksum", false, &|f| f[41] ^= 1);
        with("UDP data", false, &|f| f[50] ^= 1);
        with("UDP length past the packet", true, &|f| set(f, 38, 18));
        // Without a checksum: only the length check can refuse it.
        with("UDP length under its header", false, &|f| {
            set(f, 38, 7);
            set(f, 40, 0);
        });
        with("truncated", true, &|f| f.truncate(41));
        for (name, bytes) in &cases {
            assert_eq!(fast(bytes), None, "{name}");
            let general = try_classify(bytes, MAC, &ADDRESSES);
            assert!(
                !matches!(general, Ok(Verdict::Nic(_))),
                "{name}: {general:?}"
            );
        }
        // And the fixing alone leaves a frame both paths take.
        let mut fixed = frame.clone();
        fix_checksums(&mut fixed);
        assert!(fast(&fixed).is_some() && agrees(&fixed));
    }

    /// A small deterministic generator (xorshift), so that failures reproduce.
    struct Bytes(u64);

    impl Bytes {
        fn next(&mut self) -> u64 {
            self.0 ^= self.0 << 13;
            self.0 ^= self.0 >> 7;
            self.0 ^= self.0 << 17;
            self.0
        }

        fn below(&mut self, n: usize) -> usize {
            (self.next() % n as u64) as usize
        }
    }

    #[test]
    fn agrees_with_the_general_path_on_mutated_frames() {
        let mut padded = fixtures::UDP_REQUEST_FRAME.to_vec();
        padded.resize(60, 0);
        let seeds: [Vec<u8>; 6] = [
            fixtures::UDP_REQUEST_FRAME.to_vec(),
            padded,
            fixtures::UDP_WITH_OPTIONS_FRAME.to_vec(),
            fixtures::UDP_TO_HOST_FRAME.to_vec(),
            fixtures::ICMP_ECHO_REQUEST_FRAME.to_vec(),
            crate::testing::request_to_nic(40000, 7002, &[1, 1, 0, 7, 0, 0, 0]),
        ];
        let mut random = Bytes(0x9e37_79b9_7f4a_7c15);
        let (mut taken, mut refused) = (0, 0);
        for round in 0..20_000 {
            let mut frame = seeds[round % seeds.len()].clone();
            for _ in 0..=random.below(3) {
                let (at, value) = match random.below(6) {
                    // A byte of the headers or the data.
                    0 | 1 => (random.below(frame.len().max(1)), random.next() as u8),
                    // A length field, near its true value.
                    2 => {
                        let at = [17, 39][random.below(2)];
                        let near = frame.get(at).map_or(0, |&b| b.wrapping_add(254));
                        (at, near.wrapping_add(random.below(5) as u8))
                    }
                    // The version and header length.
                    3 => (14, [0x45, 0x46, 0x44, 0x55][random.below(4)]),
                    4 => {
                        frame.truncate(random.below(frame.len() + 1));
                        continue;
                    }
                    _ => {
                        frame.resize(frame.len() + random.below(20), random.next() as u8);
                        continue;
                    }
                };
                if let Some(byte) = frame.get_mut(at) {
                    *byte = value;
                }
            }
            if random.below(2) == 0 {
                fix_checksums(&mut frame);
            }
            assert!(agrees(&frame), "round {round}: {frame:02x?}");
            if fast(&frame).is_some() {
                taken += 1;
            } else if matches!(try_classify(&frame, MAC, &ADDRESSES), Ok(Verdict::Nic(_))) {
                // The general path alone takes broadcast frames and IPv4 options.
                let broadcast = frame[..6] == [0xff; 6];
                assert!(
                    broadcast || frame[14] != 0x45,
                    "round {round}: {frame:02x?}"
                );
            } else {
                refused += 1;
            }
        }
        assert!(
            taken > 1000 && refused > 1000,
            "{taken} taken, {refused} refused"
        );
    }
}
