//! KVS and Count served from raw frames, and a stateful service moved by orchestrator commands
//! without losing a request.

use std::time::Duration;

use microservices::engines::SoftwareEngines;
use microservices::services::count::{self, Count, CountConfig};
use microservices::services::kvs::{self, Kvs, KvsConfig};
use microservices::{ServiceId, ServiceKind};
use nic_firmware::agent::command::{self, Command, RouteTarget};
use nic_firmware::agent::heartbeat::{Heartbeat, HeartbeatFlags};
use nic_firmware::agent::AgentConfig;
use nic_firmware::counters::DropReason;
use nic_firmware::demux::Addresses;
use nic_firmware::platform::host::SoftwareNic;
use nic_firmware::platform::Endpoint;
use nic_firmware::testing::{parse_udp_frame, udp_frame};
use nic_firmware::wire::fixtures;
use nic_firmware::Config;

const WAIT: Duration = Duration::from_secs(10);
const AGENT_PORT: u16 = 7000;
const KVS_PORT: u16 = 7001;
const COUNT_PORT: u16 = 7002;

fn nic_endpoint(port: u16) -> Endpoint {
    Endpoint::new(fixtures::NIC_IP, port)
}

fn client(port: u16) -> Endpoint {
    Endpoint::new(fixtures::PEER_IP, port)
}

fn config() -> Config {
    let addresses = Addresses {
        nic_ip: fixtures::NIC_IP,
        host_ip: Some(fixtures::HOST_IP),
    };
    Config::new(addresses, &SoftwareEngines)
}

/// Sends `payload` from client port `from` to the NIC's `port`; returns the answer's data.
fn call(nic: &SoftwareNic, from: u16, port: u16, payload: &[u8]) -> Vec<u8> {
    let frame = udp_frame(
        fixtures::PEER_MAC,
        fixtures::NIC_MAC,
        client(from),
        nic_endpoint(port),
        payload,
    );
    assert!(nic.wire(0).send(&frame));
    let reply = nic.wire(0).receive(WAIT).expect("an answer");
    let (mac, source, destination, data) = parse_udp_frame(&reply).expect("a UDP answer");
    assert_eq!(mac, fixtures::PEER_MAC);
    assert_eq!((source, destination), (nic_endpoint(port), client(from)));
    data
}

fn command(nic: &SoftwareNic, request: u16, command: Command<'_>) -> Vec<u8> {
    let mut bytes = [0u8; 1500];
    let len = command::encode(request, &command, &mut bytes).unwrap();
    let answer = call(nic, 40000, AGENT_PORT, &bytes[..len]);
    assert_eq!(answer[0], command::VERSION);
    assert_eq!(u16::from_le_bytes([answer[2], answer[3]]), request);
    assert_eq!(
        answer[1], 0,
        "command {command:?} failed with status {}",
        answer[1]
    );
    answer[4..].to_vec()
}

#[test]
fn kvs_and_count_are_served_end_to_end_from_raw_frames() {
    let config = config()
        .with_service(
            KVS_PORT,
            Box::new(Kvs::new(ServiceId(1), KvsConfig::default())),
        )
        .with_service(
            COUNT_PORT,
            Box::new(Count::new(ServiceId(2), CountConfig { items: 1024 })),
        );
    let nic = SoftwareNic::start(config, 2, &[fixtures::NIC_MAC]).unwrap();

    assert_eq!(
        call(&nic, 40000, KVS_PORT, &kvs::request::put(b"answer", b"42")),
        [0, 1, 0, 0, 0, 0, 0, 0, 0]
    );
    let got = call(&nic, 40001, KVS_PORT, &kvs::request::get(b"answer"));
    assert_eq!(
        got,
        [&[0u8, 1, 0, 0, 0, 0, 0, 0, 0, 2, 0][..], b"42"].concat()
    );
    let missing = call(&nic, 40001, KVS_PORT, &kvs::request::get(b"nothing"));
    assert_ne!(missing[0], 0, "a missing key is an error status");

    assert_eq!(
        call(&nic, 40002, COUNT_PORT, &count::request::add(&[3, 5, 3])),
        [0, 2, 0]
    );
    let counts = call(&nic, 40002, COUNT_PORT, &count::request::get(&[3, 5, 9]));
    let expected: Vec<u8> = [0u8]
        .into_iter()
        .chain([2u64, 1, 0].iter().flat_map(|n| n.to_le_bytes()))
        .collect();
    assert_eq!(counts, expected);
    let bad = call(&nic, 40002, COUNT_PORT, &count::request::add(&[5000]));
    assert_eq!(bad, [microservices::ServiceError::BadField.code()]);

    let counters = nic.stop();
    assert_eq!(counters.service_requests, 6);
    assert_eq!(counters.total_dropped(), 0);
}

#[test]
fn a_kvs_moves_to_another_node_without_losing_a_request() {
    let mut old_config = config();
    old_config.agent = Some(AgentConfig::new(1, AGENT_PORT));
    let old = SoftwareNic::start(old_config, 2, &[fixtures::NIC_MAC]).unwrap();
    let mut new_config = config();
    new_config.agent = Some(AgentConfig::new(2, AGENT_PORT));
    let new = SoftwareNic::start(new_config, 1, &[fixtures::NIC_MAC]).unwrap();

    let deploy = Command::Deploy {
        service: 9,
        kind: ServiceKind::Kvs,
        port: KVS_PORT,
        config: &[],
    };
    command(&old, 1, deploy);
    for i in 0..50u32 {
        let key = format!("key-{i}");
        let answer = call(
            &old,
            41000,
            KVS_PORT,
            &kvs::request::put(key.as_bytes(), &i.to_le_bytes()),
        );
        assert_eq!(answer[0], 0);
    }

    // Stop: requests now wait on the old node.
    command(&old, 2, Command::Stop { service: 9 });
    let waiting = udp_frame(
        fixtures::PEER_MAC,
        fixtures::NIC_MAC,
        client(41001),
        nic_endpoint(KVS_PORT),
        &kvs::request::get(b"key-7"),
    );
    old.wire(0).send(&waiting);
    let deadline = std::time::Instant::now() + WAIT;
    while old.runtime().parked() == 0 && std::time::Instant::now() < deadline {
        std::thread::yield_now();
    }
    assert_eq!(old.runtime().parked(), 1);
    assert!(
        old.wire(0).from_nic.is_empty(),
        "a stopped service does not answer"
    );

    // Move the state in chunks.
    let mut state = Vec::new();
    loop {
        let chunk = command(
            &old,
            3,
            Command::Snapshot {
                service: 9,
                offset: state.len() as u32,
            },
        );
        let total = u32::from_le_bytes(chunk[..4].try_into().unwrap()) as usize;
        state.extend_from_slice(&chunk[4..]);
        if state.len() >= total {
            break;
        }
    }
    assert!(
        state.len() > command::CHUNK,
        "the state takes more than one chunk"
    );
    command(&new, 4, deploy);
    for (index, piece) in state.chunks(command::CHUNK).enumerate() {
        let restore = Command::Restore {
            service: 9,
            total: state.len() as u32,
            offset: (index * command::CHUNK) as u32,
            chunk: piece,
        };
        command(&new, 5, restore);
    }
    let moved = call(&new, 41002, KVS_PORT, &kvs::request::get(b"key-42"));
    assert_eq!(&moved[moved.len() - 4..], &42u32.to_le_bytes());

    // Re-route on the old node: the parked request goes to the host path.
    let to_host = Command::SetRoute {
        port: KVS_PORT,
        target: RouteTarget::Host,
    };
    command(&old, 6, to_host);
    let (meta, payload) = old
        .host()
        .receive(WAIT)
        .expect("the parked request, forwarded");
    assert_eq!(payload, kvs::request::get(b"key-7"));
    assert_eq!(meta.remote, client(41001));
    command(&old, 7, Command::Remove { service: 9 });

    let counters = old.stop();
    assert_eq!(counters.parked, 1);
    assert_eq!(counters.to_host, 1);
    assert_eq!(counters.total_dropped(), 0);
    new.stop();
}

#[test]
fn bad_commands_get_a_status_and_change_nothing() {
    let mut config = config();
    config.agent = Some(AgentConfig::new(1, AGENT_PORT));
    let nic = SoftwareNic::start(config, 1, &[fixtures::NIC_MAC]).unwrap();
    let unknown = call(&nic, 40000, AGENT_PORT, &[1, 2, 5, 0, 99, 0]);
    assert_eq!(
        unknown,
        [1, command::CommandError::UnknownService.code(), 5, 0]
    );
    let garbage = call(&nic, 40000, AGENT_PORT, &[0xff; 3]);
    assert_eq!(garbage[1], command::CommandError::Truncated.code());
    let unsupported = Command::Deploy {
        service: 1,
        kind: ServiceKind::Sql,
        port: 9,
        config: &[],
    };
    let mut bytes = [0u8; 64];
    let len = command::encode(8, &unsupported, &mut bytes).unwrap();
    let answer = call(&nic, 40000, AGENT_PORT, &bytes[..len]);
    assert_eq!(answer[1], command::CommandError::Unsupported.code());
    assert_eq!(
        nic.runtime().services().routes().count(),
        1,
        "only the agent's port"
    );
    nic.stop();
}

#[test]
fn heartbeats_report_the_busiest_service_to_the_controller() {
    let controller = Endpoint {
        ip: fixtures::PEER_IP,
        port: 5555,
    };
    let mut config = config().with_service(
        COUNT_PORT,
        Box::new(Count::new(ServiceId(4), CountConfig { items: 64 })),
    );
    config.gateway_mac = Some(fixtures::PEER_MAC);
    let mut agent = AgentConfig::new(77, AGENT_PORT);
    agent.controller = Some(controller);
    agent.heartbeat_interval_ns = 2_000_000;
    config.agent = Some(agent);
    let nic = SoftwareNic::start(config, 1, &[fixtures::NIC_MAC]).unwrap();

    // Keep the service busy and collect heartbeats until one names it.
    let mut last: Option<Heartbeat> = None;
    let deadline = std::time::Instant::now() + WAIT;
    while std::time::Instant::now() < deadline {
        let frame = udp_frame(
            fixtures::PEER_MAC,
            fixtures::NIC_MAC,
            client(40000),
            nic_endpoint(COUNT_PORT),
            &count::request::add(&[1, 2, 3]),
        );
        nic.wire(0).send(&frame);
        while let Some((_, frame)) = nic.wire(0).from_nic.pop() {
            let (_, source, destination, data) = parse_udp_frame(&frame).unwrap();
            if destination == controller {
                assert_eq!(source, nic_endpoint(AGENT_PORT));
                let beat = Heartbeat::decode(&data).expect("16 bytes");
                if let Some(previous) = last {
                    assert_eq!(beat.sequence, previous.sequence.wrapping_add(1));
                }
                last = Some(beat);
            }
        }
        if last.is_some_and(|b| b.busiest_service == 4 && b.busiest_ema_ns > 0) {
            break;
        }
        std::thread::sleep(Duration::from_micros(200));
    }
    let beat = last.expect("heartbeats on the wire");
    assert_eq!(beat.node, 77);
    assert_eq!(beat.busiest_service, 4);
    assert!(beat.busiest_ema_ns > 0);
    assert!(!beat.flags.contains(HeartbeatFlags::DROPPING));
    assert_eq!(
        nic.runtime()
            .agent()
            .unwrap()
            .last_heartbeat()
            .map(|b| b.node),
        Some(77)
    );
    nic.stop();
}

#[test]
fn heartbeats_find_a_controller_heard_from_without_a_gateway() {
    let controller = client(5555);
    let mut config = config();
    let mut agent = AgentConfig::new(78, AGENT_PORT);
    agent.controller = Some(controller);
    agent.heartbeat_interval_ns = 2_000_000;
    config.agent = Some(agent);
    let nic = SoftwareNic::start(config, 1, &[fixtures::NIC_MAC]).unwrap();
    let unroutable = || {
        nic.runtime()
            .counters()
            .dropped(DropReason::HostDatagramUnroutable)
    };
    // No gateway and nothing heard from the controller yet: its heartbeats have no next hop.
    let deadline = std::time::Instant::now() + WAIT;
    while unroutable() == 0 && std::time::Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(1));
    }
    assert!(unroutable() > 0, "heartbeats wait for a next hop");
    assert!(nic.wire(0).from_nic.pop().is_none());

    // The controller speaks to the agent (any datagram to the NIC IP would do): from now on
    // the NIC knows its MAC, and heartbeats reach it.
    let mut bytes = [0u8; 64];
    let len = command::encode(9, &Command::Stop { service: 1 }, &mut bytes).unwrap();
    let frame = udp_frame(
        fixtures::PEER_MAC,
        fixtures::NIC_MAC,
        controller,
        nic_endpoint(AGENT_PORT),
        &bytes[..len],
    );
    assert!(nic.wire(0).send(&frame));
    let mut beats = 0;
    while beats < 2 {
        let frame = nic.wire(0).receive(WAIT).expect("a heartbeat");
        let (mac, source, destination, data) = parse_udp_frame(&frame).unwrap();
        assert_eq!((mac, destination), (fixtures::PEER_MAC, controller));
        if data.len() == 16 {
            assert_eq!(source, nic_endpoint(AGENT_PORT));
            assert_eq!(Heartbeat::decode(&data).map(|b| b.node), Ok(78));
            beats += 1;
        }
    }
    nic.stop();
}

/// Sends one command to the agent; returns the answer's status.
fn command_status(nic: &SoftwareNic, request: u16, command: Command<'_>) -> u8 {
    let mut bytes = [0u8; 1500];
    let len = command::encode(request, &command, &mut bytes).unwrap();
    let answer = call(nic, 40000, AGENT_PORT, &bytes[..len]);
    assert_eq!(u16::from_le_bytes([answer[2], answer[3]]), request);
    answer[1]
}

#[test]
fn deploys_are_built_by_kind_checked_for_memory_and_counted() {
    use microservices::services::deploy::Params;
    use nic_firmware::agent::{DeployCounts, DEPLOY_RESERVE};

    let mut config = config();
    let mut agent = AgentConfig::new(1, AGENT_PORT);
    // A board with 8 MiB free: enough for a small Count, not for NAT's 32 MiB table.
    agent.free_memory = Some(|| DEPLOY_RESERVE + (8 << 20));
    config.agent = Some(agent);
    let nic = SoftwareNic::start(config, 1, &[fixtures::NIC_MAC]).unwrap();
    let deploy = |service, kind, port, config| Command::Deploy {
        service,
        kind,
        port,
        config,
    };

    let count = Params::Count { items: 100 }.encode();
    assert_eq!(
        command_status(&nic, 1, deploy(1, ServiceKind::Count, COUNT_PORT, &count)),
        0
    );
    assert_eq!(
        call(&nic, 40001, COUNT_PORT, &count::request::add(&[99])),
        [0, 1, 0]
    );
    let outside = call(&nic, 40001, COUNT_PORT, &count::request::add(&[100]));
    assert_eq!(outside, [microservices::ServiceError::BadField.code()]);
    // Empty parameters: the standard configuration (a Flow monitor is 128 KiB).
    assert_eq!(
        command_status(&nic, 2, deploy(2, ServiceKind::FlowMonitor, 7003, &[])),
        0
    );

    let no_memory = command::CommandError::NoMemory.code();
    assert_eq!(
        command_status(&nic, 3, deploy(3, ServiceKind::Nat, 7004, &[])),
        no_memory
    );
    let big_count = Params::Count { items: 1 << 24 }.encode();
    assert_eq!(
        command_status(&nic, 4, deploy(3, ServiceKind::Count, 7004, &big_count)),
        no_memory
    );
    let bad_field = command::CommandError::BadField.code();
    assert_eq!(
        command_status(&nic, 5, deploy(3, ServiceKind::Count, 7004, &[0, 0, 0, 0])),
        bad_field
    );
    assert_eq!(
        command_status(&nic, 6, deploy(3, ServiceKind::Kvs, 7004, &[1, 2, 3])),
        bad_field
    );
    assert_eq!(
        command_status(&nic, 7, deploy(3, ServiceKind::Sql, 7004, &[])),
        command::CommandError::Unsupported.code()
    );
    assert_eq!(
        command_status(&nic, 8, deploy(1, ServiceKind::Count, 7004, &[])),
        command::CommandError::DuplicateService.code()
    );

    assert_eq!(
        nic.runtime().agent().unwrap().deploy_counts(),
        DeployCounts {
            deployed: 2,
            no_memory: 2,
            refused: 4,
        }
    );
    // Nothing refused was installed: the agent's port and the two services' ports only.
    assert_eq!(nic.runtime().services().routes().count(), 3);
    nic.stop();
}
