//! Demultiplexing by destination (E3 section 3.2): each port has one MAC, shared with the host;
//! one IP for the NIC and one for the host. A frame is classified once, against the MAC of the
//! port it arrived on, into a [`Verdict`]:
//!
//! | arriving | verdict |
//! |---|---|
//! | unicast to another MAC than the receiving port's | [`Verdict::Drop`] ([`DropReason::NotOurMac`]) |
//! | ARP request for the NIC IP, or for the host IP when the NIC fronts the host | [`Verdict::Arp`]: answer with the port's MAC |
//! | UDP to the NIC IP | [`Verdict::Nic`]: the service table picks by port |
//! | ICMP echo request to the NIC IP | [`Verdict::Echo`] |
//! | TCP to the NIC IP | [`Verdict::TcpReset`]: no TCP service listens on the NIC |
//! | UDP to the host IP | [`Verdict::Host`]: over the host path |
//! | anything else, or malformed | [`Verdict::Drop`] with the reason |
//!
//! Classification parses and checks every header it reads (checksums included) and never
//! panics; it does not touch shared state, so any core may run it. [`fast`] takes the common
//! case (UDP for the NIC IP without IP options) at fixed offsets, and leaves every other frame
//! to [`try_classify`].

pub mod fast;

use crate::counters::{DropReason, Layer};
use crate::platform::Endpoint;
use crate::wire::{
    self, ArpOperation, ArpRepr, EtherType, EthernetFrame, IcmpPacket, IcmpRepr, IpProtocol,
    Ipv4Address, Ipv4Packet, MacAddress, TcpPacket, TcpRepr, UdpPacket,
};

/// The IP addresses this NIC answers for. Its MACs are its ports' own ([`Port::mac`]): a frame
/// is for the NIC when it is addressed to the MAC of the port it arrived on, or broadcast.
///
/// [`Port::mac`]: crate::platform::Port::mac
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Addresses {
    /// The NIC's own IP.
    pub nic_ip: Ipv4Address,
    /// The host's IP when this NIC fronts the host (answers ARP for it and forwards its
    /// traffic over the host path); `None` for a NIC that does not.
    pub host_ip: Option<Ipv4Address>,
}

/// A UDP datagram as the demux hands it on.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Datagram<'a> {
    /// The MAC it came from (where a reply goes).
    pub source_mac: MacAddress,
    /// Sender.
    pub source: Endpoint,
    /// Receiver (the NIC IP or the host IP).
    pub destination: Endpoint,
    /// The UDP data.
    pub payload: &'a [u8],
}

/// What to do with a frame.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Verdict<'a> {
    /// An ARP request for an address we answer for.
    Arp(ArpRepr),
    /// An ICMP echo request to the NIC IP.
    Echo {
        /// The MAC it came from.
        source_mac: MacAddress,
        /// The pinging host.
        source: Ipv4Address,
        /// The request's identifier.
        identifier: u16,
        /// The request's sequence number.
        sequence: u16,
        /// The data to echo.
        data: &'a [u8],
    },
    /// A UDP datagram for the NIC.
    Nic(Datagram<'a>),
    /// A UDP datagram for the host.
    Host(Datagram<'a>),
    /// A TCP segment for the NIC IP, answered with a reset.
    TcpReset {
        /// The MAC it came from.
        source_mac: MacAddress,
        /// Sender.
        source: Ipv4Address,
        /// The segment.
        segment: TcpRepr,
        /// Its data length.
        payload_len: usize,
    },
    /// Dropped, for this reason.
    Drop(DropReason),
}

fn malformed(layer: Layer) -> impl Fn(wire::Error) -> DropReason {
    move |error| DropReason::Malformed(layer, error)
}

/// Classifies one frame received on a port whose MAC is `port_mac`.
#[inline]
pub fn classify<'a>(frame: &'a [u8], port_mac: MacAddress, addresses: &Addresses) -> Verdict<'a> {
    match try_classify(frame, port_mac, addresses) {
        Ok(verdict) => verdict,
        Err(reason) => Verdict::Drop(reason),
    }
}

/// [`classify`] with the drop reason as the error: what the packet path matches on, so that
/// the verdict is read where it was built instead of being moved into a [`Verdict::Drop`]-able
/// value first (a move the compiler makes piecewise, which stalls the loads that follow).
#[inline]
pub fn try_classify<'a>(
    frame: &'a [u8],
    port_mac: MacAddress,
    addresses: &Addresses,
) -> Result<Verdict<'a>, DropReason> {
    let ethernet = EthernetFrame::parse(frame).map_err(malformed(Layer::Ethernet))?;
    let destination = ethernet.header.destination;
    if destination != port_mac && destination != MacAddress::BROADCAST {
        return Err(DropReason::NotOurMac);
    }
    let source_mac = ethernet.header.source;
    match ethernet.ethertype() {
        EtherType::Arp => classify_arp(ethernet.payload, addresses),
        EtherType::Ipv4 => classify_ipv4(ethernet.payload, source_mac, addresses),
        EtherType::Other(_) => Err(DropReason::UnknownEtherType),
    }
}

fn classify_arp<'a>(bytes: &[u8], addresses: &Addresses) -> Result<Verdict<'a>, DropReason> {
    let arp = ArpRepr::parse(bytes).map_err(malformed(Layer::Arp))?;
    let ours = arp.target_ip == addresses.nic_ip || Some(arp.target_ip) == addresses.host_ip;
    if arp.operation == ArpOperation::Request && ours {
        Ok(Verdict::Arp(arp))
    } else {
        Err(DropReason::ArpNotForUs)
    }
}

#[inline]
fn classify_ipv4<'a>(
    bytes: &'a [u8],
    source_mac: MacAddress,
    addresses: &Addresses,
) -> Result<Verdict<'a>, DropReason> {
    let ip = Ipv4Packet::parse(bytes).map_err(malformed(Layer::Ipv4))?;
    let (source, destination) = (ip.source(), ip.destination());
    let for_nic = destination == addresses.nic_ip;
    if !for_nic && Some(destination) != addresses.host_ip {
        return Err(DropReason::NotOurAddress);
    }
    match ip.protocol() {
        IpProtocol::Udp => {
            let udp =
                UdpPacket::parse(ip.payload, source, destination).map_err(malformed(Layer::Udp))?;
            let datagram = Datagram {
                source_mac,
                source: Endpoint {
                    ip: source,
                    port: udp.source_port(),
                },
                destination: Endpoint {
                    ip: destination,
                    port: udp.destination_port(),
                },
                payload: udp.payload,
            };
            Ok(if for_nic {
                Verdict::Nic(datagram)
            } else {
                Verdict::Host(datagram)
            })
        }
        _ if !for_nic => Err(DropReason::HostNotUdp),
        IpProtocol::Icmp => {
            let icmp = IcmpPacket::parse(ip.payload).map_err(malformed(Layer::Icmp))?;
            match icmp.repr() {
                IcmpRepr::EchoRequest {
                    identifier,
                    sequence,
                    data,
                } => Ok(Verdict::Echo {
                    source_mac,
                    source,
                    identifier,
                    sequence,
                    data,
                }),
                _ => Err(DropReason::IcmpNotEcho),
            }
        }
        IpProtocol::Tcp => {
            let tcp =
                TcpPacket::parse(ip.payload, source, destination).map_err(malformed(Layer::Tcp))?;
            let segment = tcp.repr();
            if segment.flags.contains(wire::TcpFlags::RST) {
                // Never answer a reset with a reset (RFC 9293 section 3.10.7.1).
                return Err(DropReason::Malformed(Layer::Tcp, wire::Error::Unsupported));
            }
            Ok(Verdict::TcpReset {
                source_mac,
                source,
                segment,
                payload_len: tcp.payload.len(),
            })
        }
        IpProtocol::Other(_) => Err(DropReason::UnknownProtocol),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wire::fixtures;

    const MAC: MacAddress = fixtures::NIC_MAC;
    const FRONTING: Addresses = Addresses {
        nic_ip: fixtures::NIC_IP,
        host_ip: Some(fixtures::HOST_IP),
    };
    const ALONE: Addresses = Addresses {
        host_ip: None,
        ..FRONTING
    };

    #[test]
    fn udp_to_the_nic_goes_to_the_service_table() {
        let Verdict::Nic(datagram) = classify(&fixtures::UDP_REQUEST_FRAME, MAC, &FRONTING) else {
            panic!("not for the NIC");
        };
        assert_eq!(datagram.source_mac, fixtures::PEER_MAC);
        assert_eq!(datagram.source.ip, fixtures::PEER_IP);
        assert_eq!(datagram.source.port, 40000);
        assert_eq!(datagram.destination.port, 7001);
        assert_eq!(datagram.payload, b"hello, e3");
        assert!(matches!(
            classify(&fixtures::UDP_WITH_OPTIONS_FRAME, MAC, &FRONTING),
            Verdict::Nic(_)
        ));
    }

    #[test]
    fn udp_to_the_host_goes_to_the_host_path() {
        let Verdict::Host(datagram) = classify(&fixtures::UDP_TO_HOST_FRAME, MAC, &FRONTING) else {
            panic!("not for the host");
        };
        assert_eq!(datagram.destination.ip, fixtures::HOST_IP);
        assert_eq!(datagram.destination.port, 9000);
        assert_eq!(datagram.payload, b"to the host");
    }

    #[test]
    fn other_destinations_are_dropped() {
        assert_eq!(
            classify(&fixtures::UDP_TO_HOST_FRAME, MAC, &ALONE),
            Verdict::Drop(DropReason::NotOurAddress)
        );
        let other = Addresses {
            nic_ip: Ipv4Address::new(10, 9, 9, 9),
            ..ALONE
        };
        assert_eq!(
            classify(&fixtures::UDP_REQUEST_FRAME, MAC, &other),
            Verdict::Drop(DropReason::NotOurAddress)
        );
        let other_mac = MacAddress([2, 2, 2, 2, 2, 2]);
        assert_eq!(
            classify(&fixtures::UDP_REQUEST_FRAME, other_mac, &FRONTING),
            Verdict::Drop(DropReason::NotOurMac)
        );
    }

    #[test]
    fn arp_is_answered_for_the_nic_and_the_fronted_host() {
        let Verdict::Arp(request) = classify(&fixtures::ARP_REQUEST_FRAME, MAC, &ALONE) else {
            panic!("ARP for the NIC not answered");
        };
        assert_eq!(request.target_ip, fixtures::NIC_IP);
        let mut for_host = fixtures::ARP_REQUEST_FRAME;
        for_host[38..42].copy_from_slice(&fixtures::HOST_IP.0);
        assert!(matches!(
            classify(&for_host, MAC, &FRONTING),
            Verdict::Arp(_)
        ));
        assert_eq!(
            classify(&for_host, MAC, &ALONE),
            Verdict::Drop(DropReason::ArpNotForUs)
        );
        assert_eq!(
            classify(&fixtures::ARP_REPLY_FRAME, MAC, &FRONTING),
            Verdict::Drop(DropReason::NotOurMac)
        );
    }

    #[test]
    fn echo_requests_to_the_nic_are_answered() {
        let verdict = classify(&fixtures::ICMP_ECHO_REQUEST_FRAME, MAC, &FRONTING);
        assert_eq!(
            verdict,
            Verdict::Echo {
                source_mac: fixtures::PEER_MAC,
                source: fixtures::PEER_IP,
                identifier: 0x1234,
                sequence: 1,
                data: b"abcdefgh",
            }
        );
    }

    #[test]
    fn tcp_to_the_nic_is_reset_and_to_the_host_dropped() {
        assert!(matches!(
            classify(&fixtures::TCP_SYN_FRAME, MAC, &FRONTING),
            Verdict::TcpReset { .. }
        ));
        let mut to_host = fixtures::ICMP_ECHO_REQUEST_FRAME;
        to_host[30..34].copy_from_slice(&fixtures::HOST_IP.0);
        // Fix the IPv4 header checksum for the new destination.
        to_host[24..26].fill(0);
        let sum = wire::checksum::Checksum::new()
            .add_bytes(&to_host[14..34])
            .finish();
        to_host[24..26].copy_from_slice(&sum.to_be_bytes());
        assert_eq!(
            classify(&to_host, MAC, &FRONTING),
            Verdict::Drop(DropReason::HostNotUdp)
        );
    }

    #[test]
    fn malformed_frames_name_their_layer() {
        let mut bad_udp = fixtures::UDP_REQUEST_FRAME;
        bad_udp[50] ^= 1;
        assert_eq!(
            classify(&bad_udp, MAC, &FRONTING),
            Verdict::Drop(DropReason::Malformed(Layer::Udp, wire::Error::BadChecksum))
        );
        assert_eq!(
            classify(&fixtures::UDP_REQUEST_FRAME[..20], MAC, &FRONTING),
            Verdict::Drop(DropReason::Malformed(Layer::Ipv4, wire::Error::Truncated))
        );
        assert_eq!(
            classify(&[0u8; 3], MAC, &FRONTING),
            Verdict::Drop(DropReason::Malformed(
                Layer::Ethernet,
                wire::Error::Truncated
            ))
        );
        let mut ipv6 = fixtures::UDP_REQUEST_FRAME;
        ipv6[12..14].copy_from_slice(&[0x86, 0xdd]);
        assert_eq!(
            classify(&ipv6, MAC, &FRONTING),
            Verdict::Drop(DropReason::UnknownEtherType)
        );
    }
}
