//! Test helpers for the runtime's own tests and the software NIC: the client's side of the wire
//! (building and reading UDP frames). The service those tests run is `microservices`'
//! diagnostic `Echo`, the one the host node's tests run too.

use alloc::vec;
use alloc::vec::Vec;

use crate::platform::Endpoint;
use crate::wire::checksum::Checksum;
use crate::wire::{
    EtherType, EthernetFrame, EthernetRepr, IpProtocol, Ipv4Packet, Ipv4Repr, MacAddress,
    UdpPacket, UdpRepr,
};

/// A UDP frame from `source` at `source_mac` to `destination` at `destination_mac`, checksums
/// and all, as a client on the network would send it.
pub fn udp_frame(
    source_mac: MacAddress,
    destination_mac: MacAddress,
    source: Endpoint,
    destination: Endpoint,
    payload: &[u8],
) -> Vec<u8> {
    let mut frame = vec![0u8; 42 + payload.len()];
    frame[42..].copy_from_slice(payload);
    let ethernet = EthernetRepr {
        source: source_mac,
        destination: destination_mac,
        ethertype: EtherType::Ipv4,
    };
    let ip = Ipv4Repr {
        source: source.ip,
        destination: destination.ip,
        protocol: IpProtocol::Udp,
        payload_len: 8 + payload.len(),
        ttl: 64,
    };
    let udp = UdpRepr {
        source_port: source.port,
        destination_port: destination.port,
    };
    let built = ethernet
        .emit(&mut frame)
        .and_then(|rest| ip.emit(rest))
        .and_then(|rest| udp.emit_in_place(rest, payload.len(), source.ip, destination.ip));
    assert!(built.is_ok(), "test frame too large: {built:?}");
    frame
}

/// A request from the fixture peer's UDP port `client` to the NIC's UDP port `port` (the
/// addresses of [`fixtures`](crate::wire::fixtures)).
pub fn request_to_nic(client: u16, port: u16, payload: &[u8]) -> Vec<u8> {
    use crate::wire::fixtures;
    udp_frame(
        fixtures::PEER_MAC,
        fixtures::NIC_MAC,
        Endpoint::new(fixtures::PEER_IP, client),
        Endpoint::new(fixtures::NIC_IP, port),
        payload,
    )
}

/// A UDP frame's addressing and data, after checking every header; `None` if it is not one.
pub fn parse_udp_frame(frame: &[u8]) -> Option<(MacAddress, Endpoint, Endpoint, Vec<u8>)> {
    let ethernet = EthernetFrame::parse(frame).ok()?;
    let ip = Ipv4Packet::parse(ethernet.payload).ok()?;
    let udp = UdpPacket::parse(ip.payload, ip.source(), ip.destination()).ok()?;
    Some((
        ethernet.header.destination,
        Endpoint {
            ip: ip.source(),
            port: udp.source_port(),
        },
        Endpoint {
            ip: ip.destination(),
            port: udp.destination_port(),
        },
        udp.payload.to_vec(),
    ))
}

/// Rewrites the IPv4 header checksum of an IPv4 `frame` (whatever its other fields say) and,
/// for UDP, the UDP checksum over as many bytes as the UDP length field says, so that a test
/// that changed a field sees only that change refused. Leaves alone what it cannot reach
/// (short frames, lengths past the end).
pub fn fix_checksums(frame: &mut [u8]) {
    let Some(&version_ihl) = frame.get(14) else {
        return;
    };
    let header_len = usize::from(version_ihl & 0x0f) * 4;
    let udp = 14 + header_len;
    if header_len < 20 || frame.len() < udp {
        return;
    }
    frame[24..26].fill(0);
    let sum = Checksum::new().add_bytes(&frame[14..udp]).finish();
    frame[24..26].copy_from_slice(&sum.to_be_bytes());
    let Some(length) = frame.get(udp + 4..udp + 6) else {
        return;
    };
    let udp_len = usize::from(u16::from_be_bytes([length[0], length[1]]));
    if frame[23] != 17 || udp_len < 8 || udp + udp_len > frame.len() {
        return;
    }
    frame[udp + 6..udp + 8].fill(0);
    let sum = Checksum::new()
        .add_bytes(&frame[26..34])
        .add_u16(17)
        .add_u16(udp_len as u16)
        .add_bytes(&frame[udp..udp + udp_len])
        .finish();
    // Zero means "no checksum": a computed zero is sent as all ones (RFC 768).
    let sum = if sum == 0 { 0xffff } else { sum };
    frame[udp + 6..udp + 8].copy_from_slice(&sum.to_be_bytes());
}
