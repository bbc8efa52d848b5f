//! The host path over the real PCIe channel: the NIC side in the runtime, the host side built
//! from the same crate, both on one shared region in this process.

use std::collections::HashMap;

use microservices::engines::SoftwareEngines;
use nic_firmware::demux::Addresses;
use nic_firmware::host_path::ChannelHostPath;
use nic_firmware::platform::host::SoftwareBoard;
use nic_firmware::platform::Endpoint;
use nic_firmware::testing::{parse_udp_frame, udp_frame};
use nic_firmware::wire::fixtures;
use nic_firmware::{Config, Runtime};
use pcie_channel::message::{MessageHeader, HEADER_BYTES};
use pcie_channel::{EngineSet, Geometry, Loopback};

fn addresses() -> Addresses {
    Addresses {
        nic_ip: fixtures::NIC_IP,
        host_ip: Some(fixtures::HOST_IP),
    }
}

fn host(port: u16) -> Endpoint {
    Endpoint::new(fixtures::HOST_IP, port)
}

fn client(port: u16) -> Endpoint {
    Endpoint::new(fixtures::PEER_IP, port)
}

#[test]
fn datagrams_cross_the_channel_both_ways_in_flow_order() {
    let geometry = Geometry::DEFAULT;
    let loopback = Loopback::new(geometry).unwrap();
    let engines = EngineSet::first(geometry.engines as usize);
    let path = ChannelHostPath::new(
        loopback.nic().sender(engines).unwrap(),
        loopback.nic().receiver().unwrap(),
    );
    let mut host_sender = loopback.host().sender(engines).unwrap();
    let mut host_receiver = loopback.host().receiver().unwrap();
    let (board, wires) = SoftwareBoard::with_host_path(1, &[fixtures::NIC_MAC], 512, path);
    let runtime = Runtime::new(Config::new(addresses(), &SoftwareEngines), board).unwrap();
    let wire = &wires[0];
    let mut core = runtime.core(0).unwrap();

    // 4 clients, 50 datagrams each, interleaved: the host sees each client's in order.
    for sequence in 0..50u32 {
        for client_port in 41000..41004 {
            let frame = udp_frame(
                fixtures::PEER_MAC,
                fixtures::NIC_MAC,
                client(client_port),
                host(9000),
                &sequence.to_le_bytes(),
            );
            assert!(wire.send(&frame));
        }
        while core.poll() > 0 {}
    }
    let mut next: HashMap<u16, u32> = HashMap::new();
    let mut message = [0u8; 2048];
    let mut flows = HashMap::new();
    while let Some((flow, len)) = host_receiver.recv_into(&mut message).unwrap() {
        let (header, payload) = MessageHeader::parse(&message[..len]).unwrap();
        let MessageHeader::UdpRequest(addressing) = header else {
            panic!("not a UDP request: {header:?}");
        };
        assert_eq!(addressing.dst_ip.octets(), fixtures::HOST_IP.0);
        assert_eq!(addressing.dst_port, 9000);
        let sequence = u32::from_le_bytes(payload.try_into().unwrap());
        let expected = next.entry(addressing.src_port).or_insert(0);
        assert_eq!(sequence, *expected, "client {}", addressing.src_port);
        *expected += 1;
        flows.insert(addressing.src_port, (flow, addressing));
    }
    assert_eq!(next.values().copied().collect::<Vec<_>>(), [50; 4]);
    assert_eq!(runtime.counters().to_host, 200);

    // The host answers each client once; the NIC sends the answers to the client's MAC.
    for (&port, &(flow, addressing)) in &flows {
        let mut out = [0u8; 64];
        let len = MessageHeader::UdpReply(addressing.reply())
            .encode(&port.to_le_bytes(), &mut out)
            .unwrap();
        host_sender.send(flow, &out[..len]).unwrap();
    }
    // And sends garbage, which the NIC skips and counts.
    host_sender.send(7, b"not a message header").unwrap();
    let mut request = [0u8; HEADER_BYTES + 2];
    MessageHeader::UdpRequest(flows[&41000].1)
        .encode(&[1, 2], &mut request)
        .unwrap();
    host_sender.send(7, &request).unwrap();
    while core.poll() > 0 {}
    let mut answered = Vec::new();
    while let Some((_, frame)) = wire.from_nic.pop() {
        let (mac, source, destination, data) = parse_udp_frame(&frame).expect("a UDP frame");
        assert_eq!(mac, fixtures::PEER_MAC);
        assert_eq!(source, host(9000));
        assert_eq!(data, destination.port.to_le_bytes());
        answered.push(destination.port);
    }
    answered.sort();
    assert_eq!(answered, [41000, 41001, 41002, 41003]);
    let (drops, received, sent) = runtime
        .with_host_path(|path| {
            path.as_ref()
                .map(|p| (p.drops(), p.receive_stats(), p.send_stats()))
        })
        .unwrap();
    assert_eq!((drops.malformed, drops.wrong_kind), (1, 1));
    assert_eq!((received.messages, received.corrupt), (6, 0));
    assert!(sent.messages >= 200, "{sent:?}");
    assert_eq!(runtime.counters().from_host, 4);
}
