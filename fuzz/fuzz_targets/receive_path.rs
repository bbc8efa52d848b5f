//! Arbitrary frames through the NIC runtime's whole receive path: traffic manager, demux,
//! services (KVS, Count, the agent's commands), replies. Nothing may panic, every frame is
//! accounted for (run, parked, or refused by the traffic manager for a full core queue), and
//! every frame the NIC sends parses as a valid frame.
//!
//! Input: a flags byte, then frames as `u16 length (LE), bytes`. Flag bit 0 asks the target to
//! fix the IPv4, UDP, ICMP and TCP checksums of each frame before sending it, so that the
//! fuzzer also reaches the layers behind the checksums.
#![no_main]

use std::sync::OnceLock;

use libfuzzer_sys::fuzz_target;
use microservices::engines::SoftwareEngines;
use microservices::services::count::{Count, CountConfig};
use microservices::services::kvs::{Kvs, KvsConfig};
use microservices::ServiceId;
use nic_firmware::agent::AgentConfig;
use nic_firmware::counters::{CounterTotals, DropReason};
use nic_firmware::demux::Addresses;
use nic_firmware::platform::host::{SoftwareBoard, Wire};
use nic_firmware::tm::steering::Steering;
use nic_firmware::wire::checksum::Checksum;
use nic_firmware::wire::{fixtures, EthernetFrame, Ipv4Packet};
use nic_firmware::{Config, Runtime};

struct Nic {
    runtime: Runtime<SoftwareBoard>,
    wire: Wire,
}

fn nic() -> &'static Nic {
    static NIC: OnceLock<Nic> = OnceLock::new();
    NIC.get_or_init(|| {
        let addresses = Addresses {
            nic_ip: fixtures::NIC_IP,
            host_ip: Some(fixtures::HOST_IP),
        };
        let mut config = Config::new(addresses, &SoftwareEngines)
            .with_service(7001, Box::new(Kvs::new(ServiceId(1), KvsConfig { capacity: 64, seed: 1 })))
            .with_service(7002, Box::new(Count::new(ServiceId(2), CountConfig { items: 64 })));
        config.frames = 1024;
        config.steering = Steering::FlowAffine;
        config.agent = Some(AgentConfig::new(1, 7000));
        let (board, mut wires, _host) = SoftwareBoard::new(2, &[fixtures::NIC_MAC], 256);
        let runtime = Runtime::new(config, board).expect("runtime starts");
        Nic {
            runtime,
            wire: wires.remove(0),
        }
    })
}

/// Recomputes the checksums of an IPv4 frame in place (whatever its other fields say).
fn fix_checksums(frame: &mut [u8]) {
    if frame.len() < 34 || frame[12..14] != [0x08, 0x00] {
        return;
    }
    let header_len = usize::from(frame[14] & 0x0f) * 4;
    if header_len < 20 || 14 + header_len > frame.len() {
        return;
    }
    frame[24..26].fill(0);
    let sum = Checksum::new().add_bytes(&frame[14..14 + header_len]).finish();
    frame[24..26].copy_from_slice(&sum.to_be_bytes());
    let total = usize::from(u16::from_be_bytes([frame[16], frame[17]]));
    let end = (14 + total).min(frame.len());
    let l4 = 14 + header_len;
    if end <= l4 {
        return;
    }
    let (source, destination) = (&frame[26..30], &frame[30..34]);
    let pseudo = |protocol: u8, len: usize| {
        Checksum::new()
            .add_bytes(source)
            .add_bytes(destination)
            .add_u16(u16::from(protocol))
            .add_u16(len as u16)
    };
    let (offset, start) = match frame[23] {
        1 => (2, Checksum::new()),
        6 => (16, pseudo(6, end - l4)),
        17 => (6, pseudo(17, end - l4)),
        _ => return,
    };
    if l4 + offset + 2 > end {
        return;
    }
    frame[l4 + offset..l4 + offset + 2].fill(0);
    let sum = start.add_bytes(&frame[l4..end]).finish();
    frame[l4 + offset..l4 + offset + 2].copy_from_slice(&sum.to_be_bytes());
}

fuzz_target!(|data: &[u8]| {
    let Some((&flags, mut rest)) = data.split_first() else {
        return;
    };
    let nic = nic();
    let before = nic.runtime.counters();
    let mut sent = 0u64;
    while rest.len() >= 2 {
        let len = usize::from(u16::from_le_bytes([rest[0], rest[1]])).min(rest.len() - 2);
        let mut frame = rest[2..2 + len].to_vec();
        rest = &rest[2 + len..];
        if flags & 1 != 0 {
            fix_checksums(&mut frame);
        }
        if nic.wire.send(&frame) {
            sent += 1;
        }
    }
    // Run both cores until every frame is accounted for.
    let mut cores = [nic.runtime.core(0).unwrap(), nic.runtime.core(1).unwrap()];
    for _ in 0..1000 {
        let work: usize = cores.iter_mut().map(|core| core.poll()).sum();
        if work == 0 && nic.wire.to_nic.is_empty() {
            break;
        }
    }
    drop(cores);
    let after = nic.runtime.counters();
    assert_eq!(after.rx_frames[0] - before.rx_frames[0], sent);
    // Under flow-affine steering a flow whose core queue is full is dropped (counted) while
    // the other core is short of work, rather than left blocking the port.
    let refused = |c: &CounterTotals| c.dropped(DropReason::CoreQueueFull);
    let handled = after.processed - before.processed
        + (nic.runtime.parked() as u64)
        + (refused(&after) - refused(&before));
    assert!(
        handled >= sent,
        "{sent} sent, {handled} processed, parked or refused by the traffic manager"
    );
    while let Some((_, frame)) = nic.wire.from_nic.pop() {
        let ethernet = EthernetFrame::parse(&frame).expect("the NIC sends whole frames");
        assert_eq!(ethernet.header.source, fixtures::NIC_MAC);
        if ethernet.ethertype() == nic_firmware::wire::EtherType::Ipv4 {
            Ipv4Packet::parse(ethernet.payload).expect("the NIC sends valid IPv4");
        }
    }
});
