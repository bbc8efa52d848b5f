//! Frames the test switch sends and reads, built and checked with the firmware's own `wire`
//! module (the same emit and parse code the NIC runs, tested there byte by byte).

use nic_firmware::wire::{
    ethernet, ipv4, udp, EtherType, EthernetFrame, EthernetRepr, IpProtocol, Ipv4Address,
    Ipv4Packet, Ipv4Repr, MacAddress, UdpPacket, UdpRepr,
};

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
