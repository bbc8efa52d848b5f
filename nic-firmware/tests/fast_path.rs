//! The demux's two paths through the whole runtime: requests the fast path takes (UDP for the
//! NIC IP without IP options, unicast to the port) and requests only the general classifier
//! takes (IP options, broadcast) get the same replies; every malformed variant of the fast
//! path's kind of frame is dropped under the reason the general classifier names, in a burst
//! whose good requests are still answered in order.

use microservices::engines::SoftwareEngines;
use microservices::services::Echo;
use microservices::ServiceId;
use nic_firmware::counters::{DropReason, Layer};
use nic_firmware::demux::Addresses;
use nic_firmware::platform::host::{SoftwareBoard, Wire};
use nic_firmware::platform::Endpoint;
use nic_firmware::testing::{fix_checksums, parse_udp_frame, request_to_nic};
use nic_firmware::wire::{self, fixtures};
use nic_firmware::{Config, Runtime};

const ECHO_PORT: u16 = 7001;

fn runtime() -> (Runtime<SoftwareBoard>, Wire) {
    let addresses = Addresses {
        nic_ip: fixtures::NIC_IP,
        host_ip: Some(fixtures::HOST_IP),
    };
    let config = Config::new(addresses, &SoftwareEngines)
        .with_service(ECHO_PORT, Box::new(Echo::new(ServiceId(1))));
    let (board, mut wires, _host) = SoftwareBoard::new(1, &[fixtures::NIC_MAC], 256);
    let runtime = Runtime::new(config, board).expect("runtime starts");
    (runtime, wires.remove(0))
}

/// Sends `frames` as one burst and runs core 0 until all are processed; returns what it sent.
fn exchange(runtime: &Runtime<SoftwareBoard>, wire: &Wire, frames: &[Vec<u8>]) -> Vec<Vec<u8>> {
    for frame in frames {
        assert!(wire.send(frame));
    }
    let before = runtime.counters().processed;
    let mut core = runtime.core(0).expect("core 0");
    while runtime.counters().processed < before + frames.len() as u64 {
        core.poll();
    }
    drop(core);
    let mut sent = Vec::new();
    while let Some((_, frame)) = wire.from_nic.pop() {
        sent.push(frame);
    }
    sent
}

fn client(port: u16) -> Endpoint {
    Endpoint::new(fixtures::PEER_IP, port)
}

/// The data of the reply to `client` in `frames`, with the reply's addressing checked.
fn answer_to(frames: &[Vec<u8>], port: u16) -> Vec<u8> {
    let replies: Vec<Vec<u8>> = frames
        .iter()
        .filter_map(|frame| parse_udp_frame(frame))
        .filter(|(mac, from, to, _)| {
            *mac == fixtures::PEER_MAC
                && *from == Endpoint::new(fixtures::NIC_IP, ECHO_PORT)
                && *to == client(port)
        })
        .map(|(_, _, _, data)| data)
        .collect();
    assert_eq!(replies.len(), 1, "one reply to client port {port}");
    replies[0].clone()
}

#[test]
fn both_paths_answer_alike() {
    let (runtime, wire) = runtime();
    let plain = request_to_nic(40000, ECHO_PORT, b"hello, e3");
    let mut broadcast = request_to_nic(40001, ECHO_PORT, b"hello, e3");
    broadcast[..6].fill(0xff);
    // The options fixture, from another client port.
    let mut options = fixtures::UDP_WITH_OPTIONS_FRAME.to_vec();
    options[38..40].copy_from_slice(&40002u16.to_be_bytes());
    fix_checksums(&mut options);
    let sent = exchange(&runtime, &wire, &[plain, broadcast, options]);
    assert_eq!(sent.len(), 3);
    for port in [40000, 40001, 40002] {
        assert_eq!(answer_to(&sent, port), b"\0hello, e3", "client port {port}");
    }
    // The fast path's reply is the fixture, byte for byte.
    assert_eq!(sent[0][..52], fixtures::UDP_REPLY_FRAME);
    let counters = runtime.counters();
    assert_eq!(counters.service_requests, 3);
    assert_eq!(counters.total_dropped(), 0);
}

#[test]
fn malformed_frames_of_the_fast_kind_are_dropped_by_reason_between_good_ones() {
    let (runtime, wire) = runtime();
    let good = |port: u16| request_to_nic(port, ECHO_PORT, b"a request for the echo");
    let set = |f: &mut Vec<u8>, at: usize, value: u16| {
        f[at..at + 2].copy_from_slice(&value.to_be_bytes());
    };
    let malformed = |reason, fixed: bool, change: &dyn Fn(&mut Vec<u8>)| {
        let mut frame = good(1);
        frame.resize(80, 0); // link padding, so that lengths a little too long stay inside
        change(&mut frame);
        if fixed {
            fix_checksums(&mut frame);
        }
        (reason, frame)
    };
    let ipv4 = |error| DropReason::Malformed(Layer::Ipv4, error);
    let udp = |error| DropReason::Malformed(Layer::Udp, error);
    let cases = [
        malformed(ipv4(wire::Error::BadChecksum), false, &|f| f[25] ^= 1),
        malformed(udp(wire::Error::BadChecksum), false, &|f| f[50] ^= 1),
        malformed(udp(wire::Error::BadChecksum), false, &|f| f[41] ^= 1),
        malformed(ipv4(wire::Error::Fragmented), true, &|f| f[20] |= 0x20),
        malformed(ipv4(wire::Error::Fragmented), true, &|f| f[21] = 1),
        malformed(ipv4(wire::Error::BadLength), true, &|f| set(f, 16, 67)),
        malformed(ipv4(wire::Error::BadHeaderLength), true, &|f| f[14] = 0x44),
        malformed(ipv4(wire::Error::BadVersion), true, &|f| f[14] = 0x65),
        malformed(udp(wire::Error::BadLength), true, &|f| set(f, 38, 31)),
        malformed(udp(wire::Error::BadLength), true, &|f| {
            set(f, 38, 7);
            set(f, 40, 0);
        }),
        malformed(udp(wire::Error::Truncated), true, &|f| set(f, 16, 27)),
        malformed(DropReason::NotOurMac, true, &|f| f[5] ^= 1),
        malformed(DropReason::NotOurAddress, true, &|f| f[33] ^= 0x40),
        malformed(DropReason::PortClosed, true, &|f| set(f, 36, 7009)),
        malformed(DropReason::UnknownProtocol, true, &|f| f[23] = 99),
    ];
    // Good requests before, between and after the bad frames, in one burst.
    let mut frames = vec![good(40000)];
    for (index, (_, frame)) in cases.iter().enumerate() {
        frames.push(frame.clone());
        if index % 5 == 4 {
            frames.push(good(40001 + index as u16));
        }
    }
    frames.push(good(40100));
    let sent = exchange(&runtime, &wire, &frames);
    let ports: Vec<u16> = sent
        .iter()
        .filter_map(|frame| parse_udp_frame(frame))
        .map(|(_, _, to, data)| {
            assert_eq!(data, b"\0a request for the echo");
            to.port
        })
        .collect();
    assert_eq!(
        ports,
        [40000, 40005, 40010, 40015, 40100],
        "in arrival order"
    );
    let counters = runtime.counters();
    let mut expected: Vec<(DropReason, u64)> = Vec::new();
    for (reason, _) in &cases {
        match expected.iter_mut().find(|(r, _)| r == reason) {
            Some((_, n)) => *n += 1,
            None => expected.push((*reason, 1)),
        }
    }
    for (reason, n) in expected {
        assert_eq!(counters.dropped(reason), n, "{reason}");
    }
    assert_eq!(counters.total_dropped(), cases.len() as u64);
    assert_eq!(counters.service_requests, 5);
}
