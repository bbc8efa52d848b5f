//! Frames the test switch sends and reads, built and checked with the firmware's own `wire`
//! module (the same emit and parse code the NIC runs, tested there byte by byte).

use nic_firmware::wire::checksum::Checksum;
use nic_firmware::wire::ipv4::Ipv4Header;
use nic_firmware::wire::{
    ethernet, ipv4, udp, EtherType, EthernetFrame, EthernetRepr, IpProtocol, Ipv4Address,
    Ipv4Packet, Ipv4Repr, MacAddress, UdpPacket, UdpRepr,
};
use zerocopy::byteorder::network_endian::U16;
use zerocopy::FromBytes;

/// One end of a UDP flow on the wire.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Station {
    /// Its MAC.
    pub mac: MacAddress,
    /// Its IPv4 address.
    pub ip: Ipv4Address,
    /// Its UDP port.
    pub port: u16,
}

/// A UDP datagram read off the wire.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Datagram {
    /// Source MAC.
    pub source_mac: MacAddress,
    /// Destination MAC.
    pub destination_mac: MacAddress,
    /// Source IP and port.
    pub source: (Ipv4Address, u16),
    /// Destination IP and port.
    pub destination: (Ipv4Address, u16),
    /// The UDP data.
    pub payload: Vec<u8>,
}

/// An Ethernet/IPv4/UDP frame from `from` to `to` carrying `payload`.
pub fn udp(from: Station, to: Station, payload: &[u8]) -> Vec<u8> {
    let udp_len = udp::HEADER_LEN + payload.len();
    let mut frame = vec![0u8; ethernet::HEADER_LEN + ipv4::HEADER_LEN + udp_len];
    let l4 = ethernet::HEADER_LEN + ipv4::HEADER_LEN;
    frame[l4 + udp::HEADER_LEN..].copy_from_slice(payload);
    UdpRepr {
        source_port: from.port,
        destination_port: to.port,
    }
    .emit_in_place(&mut frame[l4..], payload.len(), from.ip, to.ip)
    .expect("a UDP datagram that fits");
    let ip = EthernetRepr {
        source: from.mac,
        destination: to.mac,
        ethertype: EtherType::Ipv4,
    }
    .emit(&mut frame)
    .expect("an Ethernet header that fits");
    Ipv4Repr {
        source: from.ip,
        destination: to.ip,
        protocol: IpProtocol::Udp,
        payload_len: udp_len,
        ttl: 64,
    }
    .emit(ip)
    .expect("an IPv4 header that fits");
    frame
}

/// The UDP datagram in `frame`, if it is a well-formed Ethernet/IPv4/UDP frame.
pub fn parse_udp(frame: &[u8]) -> Option<Datagram> {
    let ethernet = EthernetFrame::parse(frame).ok()?;
    if ethernet.ethertype() != EtherType::Ipv4 {
        return None;
    }
    let ip = Ipv4Packet::parse(ethernet.payload).ok()?;
    if ip.protocol() != IpProtocol::Udp {
        return None;
    }
    let udp = UdpPacket::parse(ip.payload, ip.source(), ip.destination()).ok()?;
    Some(Datagram {
        source_mac: ethernet.header.source,
        destination_mac: ethernet.header.destination,
        source: (ip.source(), udp.source_port()),
        destination: (ip.destination(), udp.destination_port()),
        payload: udp.payload.to_vec(),
    })
}

/// Recomputes the IPv4 header checksum (over the header and its options) of an Ethernet/IPv4
/// frame whose header was changed, as a router does after decrementing the TTL. `None`, and
/// the frame untouched, when it holds no whole IPv4 header (too short, or a header-length
/// field below 20 bytes or past the end).
pub fn refresh_ipv4_checksum(frame: &mut [u8]) -> Option<()> {
    let ip = frame.get_mut(ethernet::HEADER_LEN..)?;
    let (header, _) = Ipv4Header::ref_from_prefix(ip).ok()?;
    let header_len = usize::from(header.version_ihl & 0x0f) * 4;
    if header_len < ipv4::HEADER_LEN || header_len > ip.len() {
        return None;
    }
    let (header, _) = Ipv4Header::mut_from_prefix(ip).ok()?;
    header.checksum = U16::ZERO;
    let sum = Checksum::new().add_bytes(&ip[..header_len]).finish();
    let (header, _) = Ipv4Header::mut_from_prefix(ip).ok()?;
    header.checksum = U16::new(sum);
    Some(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A UDP frame between two stations on 10.0.0.0/24.
    fn sample() -> Vec<u8> {
        let [from, to] = [(1, 1000), (2, 2000)].map(|(last, port)| Station {
            mac: MacAddress([0x02, 0, 0, 0, 0, last]),
            ip: Ipv4Address([10, 0, 0, last]),
            port,
        });
        udp(from, to, b"data")
    }

    #[test]
    fn a_changed_header_verifies_again_after_its_checksum_is_refreshed() {
        let frame = sample();
        let mut changed = frame.clone();
        changed[ethernet::HEADER_LEN + 8] -= 1; // The TTL.
        assert!(
            parse_udp(&changed).is_none(),
            "a stale checksum does not verify"
        );
        refresh_ipv4_checksum(&mut changed).unwrap();
        assert_eq!(parse_udp(&changed), parse_udp(&frame));
        // Refreshing an intact header changes nothing.
        let mut same = frame.clone();
        refresh_ipv4_checksum(&mut same).unwrap();
        assert_eq!(same, frame);
    }

    #[test]
    fn a_frame_without_a_whole_ipv4_header_is_left_alone() {
        let frame = sample();
        assert_eq!(refresh_ipv4_checksum(&mut frame.clone()[..30]), None);
        for ihl in [0x44, 0x4f] {
            let mut bad = frame.clone();
            bad[ethernet::HEADER_LEN] = ihl;
            let before = bad.clone();
            assert_eq!(refresh_ipv4_checksum(&mut bad), None, "{ihl:#x}");
            assert_eq!(bad, before);
        }
    }
}
