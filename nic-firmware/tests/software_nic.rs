//! The software NIC end to end: raw frames in, raw frames out, on real threads.

use std::time::Duration;

use microservices::engines::SoftwareEngines;
use microservices::services::Echo;
use microservices::ServiceId;
use nic_firmware::counters::{DropReason, Layer};
use nic_firmware::demux::Addresses;
use nic_firmware::platform::host::SoftwareNic;
use nic_firmware::platform::{DatagramMeta, Endpoint};
use nic_firmware::tm::steering::Steering;
use nic_firmware::wire::{self, fixtures, EthernetFrame, Ipv4Packet, UdpPacket};
use nic_firmware::Config;

const WAIT: Duration = Duration::from_secs(10);

fn addresses() -> Addresses {
    Addresses {
        nic_ip: fixtures::NIC_IP,
        host_ip: Some(fixtures::HOST_IP),
    }
}

fn start(cores: usize, steering: Steering) -> SoftwareNic {
    let mut config = Config::new(addresses(), &SoftwareEngines)
        .with_service(7001, Box::new(Echo::new(ServiceId(1))));
    config.steering = steering;
    SoftwareNic::start(config, cores, &[fixtures::NIC_MAC]).expect("software NIC starts")
}

/// `frame` padded with zeros to the Ethernet minimum, as the NIC sends it.
fn padded(frame: &[u8]) -> Vec<u8> {
    let mut out = frame.to_vec();
    out.resize(out.len().max(60), 0);
    out
}

#[test]
fn answers_a_request_with_the_exact_reply_frame() {
    let nic = start(2, Steering::RoundRobin);
    assert!(nic.wire(0).send(&fixtures::UDP_REQUEST_FRAME));
    let reply = nic.wire(0).receive(WAIT).expect("a reply");
    assert_eq!(reply, padded(&fixtures::UDP_REPLY_FRAME));
    let counters = nic.stop();
    assert_eq!(counters.rx_frames[0], 1);
    assert_eq!(counters.tx_frames[0], 1);
    assert_eq!(counters.service_requests, 1);
    assert_eq!(counters.total_dropped(), 0);
}

#[test]
fn answers_arp_and_ping() {
    let nic = start(1, Steering::RoundRobin);
    nic.wire(0).send(&fixtures::ARP_REQUEST_FRAME);
    assert_eq!(
        nic.wire(0).receive(WAIT).expect("an ARP reply"),
        padded(&fixtures::ARP_REPLY_FRAME)
    );
    nic.wire(0).send(&fixtures::ICMP_ECHO_REQUEST_FRAME);
    assert_eq!(
        nic.wire(0).receive(WAIT).expect("an echo reply"),
        padded(&fixtures::ICMP_ECHO_REPLY_FRAME)
    );
    let counters = nic.stop();
    assert_eq!((counters.arp_replies, counters.echo_replies), (1, 1));
}

#[test]
fn resets_tcp_to_the_nic() {
    let nic = start(1, Steering::RoundRobin);
    nic.wire(0).send(&fixtures::TCP_SYN_FRAME);
    let reply = nic.wire(0).receive(WAIT).expect("a reset");
    let ip = Ipv4Packet::parse(EthernetFrame::parse(&reply).unwrap().payload).unwrap();
    let tcp = wire::TcpPacket::parse(ip.payload, ip.source(), ip.destination()).unwrap();
    let repr = tcp.repr();
    assert_eq!(repr.flags, wire::TcpFlags::RST | wire::TcpFlags::ACK);
    assert_eq!((repr.source_port, repr.destination_port), (80, 40002));
    assert_eq!(repr.acknowledgment, 0x0102_0305);
    assert_eq!(nic.stop().tcp_resets, 1);
}

#[test]
fn host_traffic_goes_over_the_host_path_and_back() {
    let nic = start(2, Steering::FlowAffine);
    nic.wire(0).send(&fixtures::UDP_TO_HOST_FRAME);
    let (meta, payload) = nic.host().receive(WAIT).expect("a datagram for the host");
    assert_eq!(payload, b"to the host");
    assert_eq!(
        meta.remote,
        Endpoint {
            ip: fixtures::PEER_IP,
            port: 40001
        }
    );
    assert_eq!(
        meta.local,
        Endpoint {
            ip: fixtures::HOST_IP,
            port: 9000
        }
    );
    // The host answers; the NIC sends it to the MAC the request came from.
    let answer = DatagramMeta {
        remote: meta.remote,
        local: meta.local,
        flow: meta.flow,
    };
    assert!(nic.host().send(answer, b"from the host"));
    let frame = nic
        .wire(0)
        .receive(WAIT)
        .expect("the host's answer on the wire");
    let ethernet = EthernetFrame::parse(&frame).unwrap();
    assert_eq!(ethernet.header.destination, fixtures::PEER_MAC);
    assert_eq!(ethernet.header.source, fixtures::NIC_MAC);
    let ip = Ipv4Packet::parse(ethernet.payload).unwrap();
    assert_eq!(
        (ip.source(), ip.destination()),
        (fixtures::HOST_IP, fixtures::PEER_IP)
    );
    let udp = UdpPacket::parse(ip.payload, ip.source(), ip.destination()).unwrap();
    assert_eq!((udp.source_port(), udp.destination_port()), (9000, 40001));
    assert_eq!(udp.payload, b"from the host");
    let counters = nic.stop();
    assert_eq!((counters.to_host, counters.from_host), (1, 1));
}

#[test]
fn bad_frames_are_counted_by_reason_and_good_ones_still_served() {
    let nic = start(2, Steering::RoundRobin);
    let mut bad_checksum = fixtures::UDP_REQUEST_FRAME;
    bad_checksum[24] ^= 0xff;
    let mut fragment = fixtures::UDP_REQUEST_FRAME;
    fragment[20] = 0x20; // more fragments
                         // Keep the header checksum right so that only the fragment bit is wrong.
    fragment[24..26].fill(0);
    let sum = wire::checksum::Checksum::new()
        .add_bytes(&fragment[14..34])
        .finish();
    fragment[24..26].copy_from_slice(&sum.to_be_bytes());
    let mut closed = fixtures::UDP_REQUEST_FRAME;
    closed[36..38].copy_from_slice(&7002u16.to_be_bytes());
    closed[40..42].fill(0); // no UDP checksum
    for frame in [
        &fixtures::UDP_REQUEST_FRAME[..30],
        &bad_checksum[..],
        &fragment[..],
        &closed[..],
        &[][..],
    ] {
        assert!(nic.wire(0).send(frame));
    }
    nic.wire(0).send(&fixtures::UDP_REQUEST_FRAME);
    assert_eq!(
        nic.wire(0)
            .receive(WAIT)
            .expect("the good request is served"),
        padded(&fixtures::UDP_REPLY_FRAME)
    );
    // All six were received before the reply; wait until all are processed.
    let deadline = std::time::Instant::now() + WAIT;
    while nic.runtime().counters().processed < 6 && std::time::Instant::now() < deadline {
        std::thread::yield_now();
    }
    let counters = nic.stop();
    for reason in [
        DropReason::Malformed(Layer::Ipv4, wire::Error::Truncated),
        DropReason::Malformed(Layer::Ipv4, wire::Error::BadChecksum),
        DropReason::Malformed(Layer::Ipv4, wire::Error::Fragmented),
        DropReason::Malformed(Layer::Ethernet, wire::Error::Truncated),
        DropReason::PortClosed,
    ] {
        assert_eq!(counters.dropped(reason), 1, "{reason}");
    }
    assert_eq!(counters.total_dropped(), 5);
}

#[test]
fn serves_many_requests_on_every_core_without_losing_one() {
    let nic = start(2, Steering::RoundRobin);
    let mut sent = 0;
    let mut received = 0;
    for _ in 0..2000 {
        if nic.wire(0).send(&fixtures::UDP_REQUEST_FRAME) {
            sent += 1;
        }
        while nic.wire(0).from_nic.pop().is_some() {
            received += 1;
        }
    }
    while received < sent {
        nic.wire(0).receive(WAIT).expect("every request answered");
        received += 1;
    }
    let counters = nic.stop();
    assert_eq!(counters.service_requests, sent);
    assert_eq!(counters.total_dropped(), 0);
}
