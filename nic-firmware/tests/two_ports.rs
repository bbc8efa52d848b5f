//! A NIC with two ports of different MACs (each port's MAC shared with the host, E3 section
//! 3.2): each port answers ARP, ping and service requests from its own MAC, accepts unicast
//! frames only for its own MAC, and the host's replies leave from the MAC of the port they
//! leave by.

use microservices::engines::SoftwareEngines;
use microservices::services::kvs::{self, Kvs, KvsConfig};
use microservices::services::Echo;
use microservices::ServiceId;
use nic_firmware::counters::DropReason;
use nic_firmware::demux::Addresses;
use nic_firmware::platform::host::{HostEnd, SoftwareBoard, Wire};
use nic_firmware::platform::{DatagramMeta, Endpoint};
use nic_firmware::testing::{parse_udp_frame, udp_frame};
use nic_firmware::tm::BURST;
use nic_firmware::wire::{
    fixtures, ArpOperation, ArpRepr, EtherType, EthernetFrame, EthernetRepr, Ipv4Address,
    MacAddress,
};
use nic_firmware::{Config, Runtime};

const KVS_PORT: u16 = 7001;
/// Port 0's MAC.
const MAC_0: MacAddress = fixtures::NIC_MAC;
/// Port 1's MAC.
const MAC_1: MacAddress = MacAddress([0x52, 0x54, 0x00, 0x12, 0x34, 0x57]);

/// Nothing sent on either port.
const NOTHING: [Vec<Vec<u8>>; 2] = [Vec::new(), Vec::new()];

struct Nic {
    runtime: Runtime<SoftwareBoard>,
    wires: Vec<Wire>,
    host: HostEnd,
}

fn nic() -> Nic {
    let addresses = Addresses {
        nic_ip: fixtures::NIC_IP,
        host_ip: Some(fixtures::HOST_IP),
    };
    let kvs = Kvs::new(ServiceId(1), KvsConfig::default());
    let config = Config::new(addresses, &SoftwareEngines).with_service(KVS_PORT, Box::new(kvs));
    let (board, wires, host) = SoftwareBoard::new(2, &[MAC_0, MAC_1], 64);
    let runtime = Runtime::new(config, board).expect("runtime starts");
    Nic {
        runtime,
        wires,
        host,
    }
}

impl Nic {
    /// Polls both cores until neither has anything left to do.
    fn settle(&self) {
        let mut cores = [self.runtime.core(0).unwrap(), self.runtime.core(1).unwrap()];
        while cores.iter_mut().map(|core| core.poll()).sum::<usize>() != 0 {}
    }

    /// What the NIC sent on each port since the last call.
    fn sent(&self) -> [Vec<Vec<u8>>; 2] {
        [0, 1].map(|port| {
            std::iter::from_fn(|| self.wires[port].from_nic.pop().map(|(_, frame)| frame)).collect()
        })
    }

    /// Sends `frame` on `port`'s wire and returns what the NIC sent on each port.
    fn exchange(&self, port: usize, frame: &[u8]) -> [Vec<Vec<u8>>; 2] {
        assert!(self.wires[port].send(frame));
        self.settle();
        self.sent()
    }
}

/// An ARP request from the peer for `target`, broadcast.
fn arp_request(target: Ipv4Address) -> Vec<u8> {
    let mut frame = vec![0u8; 42];
    let ethernet = EthernetRepr {
        source: fixtures::PEER_MAC,
        destination: MacAddress::BROADCAST,
        ethertype: EtherType::Arp,
    };
    let arp = ArpRepr {
        operation: ArpOperation::Request,
        sender_mac: fixtures::PEER_MAC,
        sender_ip: fixtures::PEER_IP,
        target_mac: MacAddress([0; 6]),
        target_ip: target,
    };
    let rest = ethernet.emit(&mut frame).unwrap();
    arp.emit(rest).unwrap();
    frame
}

/// The one frame sent, on the port expected, with its Ethernet source checked.
fn only_frame(sent: [Vec<Vec<u8>>; 2], port: usize, source: MacAddress) -> Vec<u8> {
    assert!(sent[1 - port].is_empty(), "a frame left by the other port");
    let [frame] = &sent[port][..] else {
        panic!("{} frames on port {port}, not one", sent[port].len());
    };
    let ethernet = EthernetFrame::parse(frame).expect("a whole frame");
    assert_eq!(ethernet.header.source, source);
    assert_eq!(ethernet.header.destination, fixtures::PEER_MAC);
    frame.clone()
}

#[test]
fn each_port_answers_arp_with_its_own_mac() {
    let nic = nic();
    for (port, mac) in [(0, MAC_0), (1, MAC_1)] {
        for target in [fixtures::NIC_IP, fixtures::HOST_IP] {
            let reply = only_frame(nic.exchange(port, &arp_request(target)), port, mac);
            let ethernet = EthernetFrame::parse(&reply).unwrap();
            assert_eq!(ethernet.ethertype(), EtherType::Arp);
            let arp = ArpRepr::parse(ethernet.payload).unwrap();
            assert_eq!(arp.operation, ArpOperation::Reply);
            assert_eq!(
                (arp.sender_mac, arp.sender_ip),
                (mac, target),
                "port {port}"
            );
            assert_eq!(arp.target_mac, fixtures::PEER_MAC);
        }
    }
    assert_eq!(nic.runtime.counters().arp_replies, 4);
    assert_eq!(nic.runtime.port_mac(1), Some(MAC_1));
}

#[test]
fn a_request_on_port_1_is_answered_from_port_1s_mac() {
    let nic = nic();
    let client = Endpoint::new(fixtures::PEER_IP, 40000);
    let service = Endpoint::new(fixtures::NIC_IP, KVS_PORT);
    let put = udp_frame(
        fixtures::PEER_MAC,
        MAC_1,
        client,
        service,
        &kvs::request::put(b"port", b"one"),
    );
    let reply = only_frame(nic.exchange(1, &put), 1, MAC_1);
    let (to_mac, from, to, data) = parse_udp_frame(&reply).expect("a UDP reply");
    assert_eq!((to_mac, from, to), (fixtures::PEER_MAC, service, client));
    assert_eq!(data[0], 0, "PUT succeeded");
    let get = udp_frame(
        fixtures::PEER_MAC,
        MAC_1,
        client,
        service,
        &kvs::request::get(b"port"),
    );
    let reply = only_frame(nic.exchange(1, &get), 1, MAC_1);
    assert!(parse_udp_frame(&reply).unwrap().3.ends_with(b"one"));
    // Ping on port 1 too.
    let mut ping = fixtures::ICMP_ECHO_REQUEST_FRAME;
    ping[..6].copy_from_slice(&MAC_1.0);
    only_frame(nic.exchange(1, &ping), 1, MAC_1);
    let counters = nic.runtime.counters();
    assert_eq!((counters.service_requests, counters.echo_replies), (2, 1));
    assert_eq!((counters.rx_frames[1], counters.tx_frames[1]), (3, 3));
    assert_eq!((counters.rx_frames[0], counters.tx_frames[0]), (0, 0));
}

#[test]
fn a_frame_for_port_0s_mac_arriving_on_port_1_is_dropped_and_counted() {
    let nic = nic();
    let request = udp_frame(
        fixtures::PEER_MAC,
        MAC_0,
        Endpoint::new(fixtures::PEER_IP, 40000),
        Endpoint::new(fixtures::NIC_IP, KVS_PORT),
        &kvs::request::get(b"anything"),
    );
    assert_eq!(nic.exchange(1, &request), NOTHING);
    let counters = nic.runtime.counters();
    assert_eq!(counters.dropped(DropReason::NotOurMac), 1);
    assert_eq!(counters.total_dropped(), 1);
    assert_eq!(counters.service_requests, 0);
    // The same frame on port 0 is served, from port 0's MAC.
    only_frame(nic.exchange(0, &request), 0, MAC_0);
}

#[test]
fn the_hosts_reply_leaves_from_the_mac_of_its_port() {
    let nic = nic();
    let client = Endpoint::new(fixtures::PEER_IP, 40001);
    let host_service = Endpoint::new(fixtures::HOST_IP, 9000);
    let request = udp_frame(
        fixtures::PEER_MAC,
        MAC_1,
        client,
        host_service,
        b"to the host",
    );
    assert_eq!(nic.exchange(1, &request), NOTHING);
    let (meta, payload) = nic.host.to_host.pop().expect("forwarded to the host");
    assert_eq!(payload, b"to the host");
    let answer = DatagramMeta {
        remote: meta.remote,
        local: meta.local,
        flow: meta.flow,
    };
    assert!(nic.host.send(answer, b"from the host"));
    nic.settle();
    let reply = only_frame(nic.sent(), 1, MAC_1);
    let (_, from, to, data) = parse_udp_frame(&reply).unwrap();
    assert_eq!(
        (from, to, &data[..]),
        (host_service, client, &b"from the host"[..])
    );
    let counters = nic.runtime.counters();
    assert_eq!((counters.to_host, counters.from_host), (1, 1));
}

const ECHO_PORT: u16 = 7002;

/// A request to Echo from the peer's UDP port `client`, addressed to `mac`.
fn echo_request(mac: MacAddress, client: u16) -> Vec<u8> {
    udp_frame(
        fixtures::PEER_MAC,
        mac,
        Endpoint::new(fixtures::PEER_IP, client),
        Endpoint::new(fixtures::NIC_IP, ECHO_PORT),
        b"ping",
    )
}

/// Polls the lone core of `runtime` `polls` times, topping the wire of every port in
/// `saturated` up to two bursts before each poll; returns the replies each port sent.
fn poll_saturated(
    runtime: &Runtime<SoftwareBoard>,
    wires: &[Wire],
    saturated: &[usize],
    polls: usize,
) -> [usize; 2] {
    let frames = [echo_request(MAC_0, 40000), echo_request(MAC_1, 40001)];
    let mut core = runtime.core(0).unwrap();
    let mut replies = [0; 2];
    for _ in 0..polls {
        for &port in saturated {
            while wires[port].to_nic.len() < 2 * BURST {
                assert!(wires[port].send(&frames[port]));
            }
        }
        core.poll();
        for (port, count) in replies.iter_mut().enumerate() {
            while wires[port].from_nic.pop().is_some() {
                *count += 1;
            }
        }
    }
    replies
}

/// One core and two ports, port 0 handing it a full burst at every poll: port 1 is still
/// received from and answered, and with both ports saturated the core serves them alike
/// (no port goes first at every poll).
#[test]
fn a_lone_core_serves_port_1_while_port_0_is_saturated() {
    let config = Config::new(
        Addresses {
            nic_ip: fixtures::NIC_IP,
            host_ip: None,
        },
        &SoftwareEngines,
    )
    .with_service(ECHO_PORT, Box::new(Echo::new(ServiceId(2))));
    let (board, wires, _host) = SoftwareBoard::new(1, &[MAC_0, MAC_1], 4 * BURST);
    let runtime = Runtime::new(config, board).expect("runtime starts");
    let requests = 8;
    for _ in 0..requests {
        assert!(wires[1].send(&echo_request(MAC_1, 40001)));
    }
    let [on_0, on_1] = poll_saturated(&runtime, &wires, &[0], 16);
    assert_eq!(on_1, requests, "port 1's requests were answered");
    assert!(on_0 > 0);
    // Both saturated: each port gets at least 40% of the replies.
    let [on_0, on_1] = poll_saturated(&runtime, &wires, &[0, 1], 64);
    let total = on_0 + on_1;
    assert!(total >= 32 * BURST, "{total} replies in 64 polls");
    for (port, replies) in [on_0, on_1].into_iter().enumerate() {
        assert!(
            replies * 10 >= total * 4,
            "port {port}: {replies} of {total} replies"
        );
    }
    assert_eq!(runtime.counters().total_dropped(), 0);
}
