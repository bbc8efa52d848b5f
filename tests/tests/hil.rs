//! Hardware-in-loop scenarios: the firmware image booted on emulated SmartNICs (QEMU `virt`),
//! with this test playing the top-of-rack switch on the NICs' ports. Each scenario runs under an
//! overall time limit (besides each step's own timeout) and asserts on what came back over the
//! wire (or the UART for a refusal or a fault, with its exit status).
//!
//! They need QEMU, so they are ignored by a plain `cargo test`; `cargo xtask hil` installs QEMU
//! if needed and runs them.

use std::net::Ipv4Addr;
use std::os::unix::fs::FileExt;
use std::path::PathBuf;
use std::sync::OnceLock;
use std::time::Duration;

use e3_tests::firmware::{self, Board, Image};
use e3_tests::frames::{self, Datagram, Station};
use e3_tests::host::HostSide;
use e3_tests::netns::Namespace;
use e3_tests::nic::{port_mac, port_mac_address, EmulatedNic, NicSpec, UartCounters};
use e3_tests::qemu;
use e3_tests::rack::{NicPlan, Rack, BOOT_TIMEOUT};
use e3_tests::switch::{FiveTuple, Forwarded, NextHop, Switch};
use microservices::services::count::request as count_request;
use microservices::services::deploy::{self, Params};
use microservices::services::kvs::request as kvs;
use microservices::{Service, ServiceError, ServiceId, ServiceKind};
use nic_firmware::agent::command::{self, Command, CommandError};
use nic_firmware::agent::heartbeat::Heartbeat;
use nic_firmware::boot_config::{BootConfig, ServiceBinding};
use nic_firmware::counters::{DropReason, Layer};
use nic_firmware::wire::{self, Ipv4Address, MacAddress};
use pcie_channel::descriptor::Descriptor;
use pcie_channel::layout::{Direction, Layout, CONSUMER_LINE};

/// Overall limit of a scenario that boots one NIC.
const SCENARIO_LIMIT: Duration = Duration::from_secs(180);
/// Overall limit of a scenario that boots two NICs and a host.
const TWO_NIC_LIMIT: Duration = Duration::from_secs(300);

/// Runs `body` as a scenario: a failure inside it fails the test, and so does running past
/// `limit`. Either way every QEMU it started is killed and reaped first (`e3_tests::scenario`),
/// so the next scenario starts on a quiet machine; the body's thread, when it is stuck, is left
/// behind with its NICs already gone.
fn scenario(limit: Duration, body: impl FnOnce() + Send + 'static) {
    match e3_tests::scenario::run(limit, body) {
        Ok(took) => eprintln!("scenario took {:.1} s", took.as_secs_f64()),
        Err(e3_tests::scenario::Failure::Panicked { payload, killed }) => {
            if killed > 0 {
                eprintln!("the scenario failed; killed the {killed} QEMUs it left running");
            }
            std::panic::resume_unwind(payload)
        }
        Err(timed_out) => panic!("{timed_out}"),
    }
}

fn image() -> &'static Image {
    static IMAGE: OnceLock<Image> = OnceLock::new();
    IMAGE.get_or_init(|| firmware::build(Board::QemuVirt).expect("building the firmware"))
}

fn bluefield_image() -> &'static Image {
    static IMAGE: OnceLock<Image> = OnceLock::new();
    IMAGE.get_or_init(|| firmware::build(Board::Bluefield).expect("building the firmware"))
}

fn qemu_binary() -> PathBuf {
    qemu::find().expect("qemu-system-aarch64 not found: run `cargo xtask hil`, which installs it")
}

fn rack(name: &str) -> Rack {
    Rack::new(name, &qemu_binary(), &image().elf).expect("a rack")
}

const HOST_IP: Ipv4Address = Ipv4Address([10, 0, 0, 1]);
const KVS_PORT: u16 = 7000;
const COUNT_PORT: u16 = 7001;
/// How long a reply may take.
const REPLY_TIMEOUT: Duration = Duration::from_secs(10);
/// How long a test waits to be sure no answer comes (replies take milliseconds).
const NO_ANSWER_WAIT: Duration = Duration::from_secs(3);

fn config(nic_ip: [u8; 4]) -> BootConfig {
    let mut services = heapless::Vec::new();
    for (kind, udp_port) in [
        (ServiceKind::Kvs, KVS_PORT),
        (ServiceKind::Count, COUNT_PORT),
    ] {
        services
            .push(ServiceBinding { kind, udp_port })
            .expect("two services fit");
    }
    BootConfig {
        nic_ip: Ipv4Addr::from(nic_ip),
        host_ip: Ipv4Addr::from(HOST_IP.0),
        mac: None,
        cores: None,
        services,
        agent_port: None,
        controller: None,
        gateway_mac: None,
    }
}

/// UDP port of the KVS the host runs (reached at the host IP through the NIC).
const HOST_KVS_PORT: u16 = 7100;

/// The host's services: a KVS in its standard configuration on [`HOST_KVS_PORT`], built by
/// the deploy factory as a NIC's would be.
fn host_services() -> Vec<(u16, Box<dyn Service>)> {
    let kvs = deploy::build_on_host(ServiceKind::Kvs, ServiceId(100), &[]).unwrap();
    vec![(HOST_KVS_PORT, kvs)]
}

/// A NIC with a channel to a host answering [`host_services`].
fn plan_with_host(nic_ip: [u8; 4], ports: usize) -> NicPlan {
    NicPlan {
        host: Some(host_services()),
        ..plan(nic_ip, ports)
    }
}

/// The host's KVS, reached through NIC `nic`'s port `via` (the host shares the NIC's MAC there).
fn host_server(rack: &Rack, nic: usize, via: usize) -> Station {
    Station {
        mac: rack.nics[nic].mac(via),
        ip: HOST_IP,
        port: HOST_KVS_PORT,
    }
}

fn plan(nic_ip: [u8; 4], ports: usize) -> NicPlan {
    NicPlan {
        config: config(nic_ip),
        ports,
        cores: 4,
        host: None,
        channel: None,
    }
}

/// A client on the far side of the switch.
fn client(n: u8, port: u16) -> Station {
    Station {
        mac: MacAddress([0x02, 0, 0, 0, 1, n]),
        ip: Ipv4Address([10, 0, 1, n]),
        port,
    }
}

/// Service `port` on NIC `nic` of `rack`, reached through its port `via`.
fn server(rack: &Rack, nic: usize, via: usize, port: u16) -> Station {
    Station {
        mac: rack.nics[nic].mac(via),
        ip: Ipv4Address(rack.nics[nic].config.nic_ip.octets()),
        port,
    }
}

/// Sends `request` from `client` to `server` through port 0 of NIC `nic`; the reply, or a
/// panic with the NIC's UART transcript.
fn ask(rack: &Rack, nic: usize, client: Station, server: Station, request: &[u8]) -> Datagram {
    rack.exchange(nic, 0, client, server, request, REPLY_TIMEOUT)
        .unwrap()
        .unwrap_or_else(|| panic!("no reply; UART:\n{}", rack.nics[nic].nic.transcript()))
}

fn write_config(switch: &Switch, name: &str, text: &str) -> PathBuf {
    let path = switch.dir().join(name);
    std::fs::write(&path, text).expect("writing the boot configuration");
    path
}

/// A switch with one port, and the spec of a NIC on it that boots `image` on `cores` cores
/// with the fw_cfg configuration of 10.0.0.2.
fn single_port_nic(name: &str, image: &Image, cores: u32) -> (Switch, NicSpec) {
    let mut switch = Switch::new(name).unwrap();
    let (_, port) = switch.add_port().unwrap();
    let text = config([10, 0, 0, 2]).to_string();
    let spec = NicSpec {
        image: image.elf.clone(),
        config: Some(write_config(&switch, "nic.conf", &text)),
        ports: vec![port],
        cores,
        ..Default::default()
    };
    (switch, spec)
}

/// A gratuitous ARP request announcing `ip` from `mac`: what the firmware sends at boot.
fn is_announcement(frame: &[u8], mac: MacAddress, ip: Ipv4Addr) -> bool {
    let mac = mac.0;
    frame.len() >= 42
        && frame[0..6] == [0xff; 6]
        && frame[6..12] == mac[..]
        && frame[12..14] == [0x08, 0x06]
        && frame[20..22] == [0, 1]
        && frame[22..28] == mac[..]
        && frame[28..32] == ip.octets()
        && frame[38..42] == ip.octets()
}

/// The latest counters line of `nic` that `accept` takes, or a panic with the UART.
fn counters_where(nic: &EmulatedNic, accept: impl Fn(&UartCounters) -> bool) -> UartCounters {
    nic.wait_for_counters(REPLY_TIMEOUT, accept)
        .unwrap_or_else(|e| panic!("{e:#}"))
}

/// The harness itself: a scenario that runs out of time while its thread is blocked, still
/// owning a booted NIC, kills and reaps that NIC's QEMU before it fails (no death signal can
/// do it: the thread has not ended). The limit starts once the NIC is up and the body never
/// finishes on its own, so the time limit is what ends it, however slow the machine.
#[test]
#[ignore = "hardware-in-loop: run with `cargo xtask hil`"]
fn a_timed_out_scenario_leaves_no_qemu_running() {
    let (booted, pid) = std::sync::mpsc::channel();
    let (release, blocked) = std::sync::mpsc::channel::<()>();
    let running = e3_tests::scenario::start(move || {
        let mut rack = rack("hil-timeout");
        rack.boot(plan([10, 0, 0, 2], 1)).unwrap();
        booted.send(rack.nics[0].nic.pid()).unwrap();
        let _ = blocked.recv();
        drop(rack);
    });
    let pid = pid.recv_timeout(SCENARIO_LIMIT).expect("the NIC boots");
    let qemu_runs = || {
        std::fs::read(format!("/proc/{pid}/cmdline"))
            .is_ok_and(|cmdline| cmdline.windows(4).any(|w| w == b"qemu"))
    };
    assert!(qemu_runs(), "QEMU {pid} runs while the scenario does");
    match running.finish(Duration::ZERO) {
        Err(e3_tests::scenario::Failure::TimedOut { killed: 1, .. }) => {}
        other => panic!("expected a timeout that killed one QEMU: {other:?}"),
    }
    assert!(!qemu_runs(), "QEMU {pid} outlived its timed-out scenario");
    drop(release);
}

/// Boot: every core and port comes up, each port announces the NIC IP, the engines the core
/// offers (`-cpu max`: AES, SHA-1, LSE) are selected and pass their known-answer tests, and
/// each port counts exactly the one frame it sent (its announcement).
#[test]
#[ignore = "hardware-in-loop: run with `cargo xtask hil`"]
fn boot_brings_up_every_core_and_port() {
    scenario(SCENARIO_LIMIT, || {
        let mut switch = Switch::new("hil-boot").unwrap();
        let ports: Vec<_> = (0..2).map(|_| switch.add_port().unwrap().1).collect();
        let config = config([10, 0, 0, 2]);
        let spec = NicSpec {
            image: image().elf.clone(),
            config: Some(write_config(&switch, "nic.conf", &config.to_string())),
            ports,
            cores: 4,
            ..Default::default()
        };
        let nic = EmulatedNic::start(&qemu_binary(), &spec).unwrap();
        for index in 0..2 {
            let announced = switch.port(index).recv_matching(BOOT_TIMEOUT, |frame| {
                is_announcement(frame, port_mac_address(index), config.nic_ip)
            });
            assert!(
                announced.is_some(),
                "no gratuitous ARP on port {index}; UART:\n{}",
                nic.transcript()
            );
        }
        let ready = nic.wait_for_line("ready:", BOOT_TIMEOUT).unwrap();
        assert!(ready.contains("4 cores, 2 ports"), "{ready}");
        let engines = nic.wait_for_line("engines:", Duration::ZERO).unwrap();
        assert!(
            engines.contains(
                "engines: AES hardware, passes, SHA-1 hardware, passes, LSE hardware, passes; \
                 known-answer tests pass"
            ),
            "-cpu max offers AES, SHA-1 and LSE, so the ARMv8 engines are selected and pass: \
             {engines}"
        );
        let counters = counters_where(&nic, |c| {
            c.total("port0_tx") == 1 && c.total("port1_tx") == 1
        });
        for port in 0..2 {
            for counter in [
                "rx",
                "tx_ring_full",
                "tx_too_long",
                "rx_errors",
                "rx_oversized",
                "unknown_tokens",
                "resets",
            ] {
                let name = format!("port{port}_{counter}");
                assert_eq!(counters.total(&name), 0, "{name} in {counters:?}");
            }
        }
        eprintln!("boot: {ready} (host wall clock {:?})", nic.uptime());
    });
}

#[test]
#[ignore = "hardware-in-loop: run with `cargo xtask hil`"]
fn bad_config_is_refused_with_its_line() {
    scenario(SCENARIO_LIMIT, || {
        let mut switch = Switch::new("hil-badconfig").unwrap();
        let (_, port) = switch.add_port().unwrap();
        let text = "nic_ip = 10.0.0.2\nhost_ip = 10.0.0.300\nservice = kvs 7000\n";
        let spec = NicSpec {
            image: image().elf.clone(),
            config: Some(write_config(&switch, "bad.conf", text)),
            ports: vec![port],
            cores: 1,
            ..Default::default()
        };
        let mut nic = EmulatedNic::start(&qemu_binary(), &spec).unwrap();
        let status = nic.wait_exit(BOOT_TIMEOUT).unwrap();
        // Exit status 3 is the firmware's "configuration refused" (semihosting SYS_EXIT).
        assert_eq!(status.code(), Some(3), "UART:\n{}", nic.transcript());
        let refusal = nic.wait_for_line("refused", Duration::ZERO).unwrap();
        assert!(refusal.contains("line 2"), "{refusal}");
        assert!(
            switch.port(0).recv(Duration::from_millis(100)).is_none(),
            "a refused NIC must not transmit"
        );
    });
}

/// The exception handler: the `fault-after-boot` diagnostic switch (fw_cfg
/// `opt/e3/diagnostic`) makes core 0 read an unmapped address once the board is up; the UART
/// shows the data abort with its syndrome, the faulting address and the instruction, and QEMU
/// exits with the fault status 5.
#[test]
#[ignore = "hardware-in-loop: run with `cargo xtask hil`"]
fn a_cpu_fault_is_reported_and_stops_the_board() {
    scenario(SCENARIO_LIMIT, || {
        let (_switch, mut spec) = single_port_nic("hil-fault", image(), 2);
        spec.diagnostic = Some("fault-after-boot".into());
        let mut nic = EmulatedNic::start(&qemu_binary(), &spec).unwrap();
        let status = nic.wait_exit(BOOT_TIMEOUT).unwrap();
        assert_eq!(status.code(), Some(5), "UART:\n{}", nic.transcript());
        nic.wait_for_line("ready:", Duration::ZERO).unwrap();
        let fatal = nic.wait_for_line("FATAL", Duration::ZERO).unwrap();
        let field = |name: &str| -> u64 {
            let text = fatal
                .split(&format!("{name} "))
                .nth(1)
                .and_then(|rest| rest.split_whitespace().next())
                .unwrap_or_else(|| panic!("no {name} in `{fatal}`"));
            u64::from_str_radix(text.trim_start_matches("0x"), 16)
                .unwrap_or_else(|_| panic!("{name} `{text}` in `{fatal}`"))
        };
        assert!(
            fatal.contains("FATAL core0: synchronous exception"),
            "{fatal}"
        );
        let esr = field("ESR");
        assert_eq!(esr >> 26, 0x25, "a data abort from EL1: {fatal}");
        assert_eq!(esr & (1 << 6), 0, "a read (WnR clear): {fatal}");
        assert_eq!(field("FAR"), 0x1_0000_0000, "the unmapped address: {fatal}");
        let elr = field("ELR");
        let image = image();
        assert!(
            (image.manifest.load_address..image.manifest.load_address + image.manifest.size)
                .contains(&elr),
            "ELR {elr:#x} is an instruction of the image: {fatal}"
        );
        eprintln!("fault: {fatal}");
    });
}

/// Scenario 1: UDP requests to the NIC's IP are served by a service on the NIC (KVS).
#[test]
#[ignore = "hardware-in-loop: run with `cargo xtask hil`"]
fn kvs_on_the_nic_serves_put_then_get() {
    scenario(SCENARIO_LIMIT, || {
        let mut rack = rack("hil-kvs");
        rack.boot(plan([10, 0, 0, 2], 2)).unwrap();
        let client = client(7, 5000);
        let kvs_server = server(&rack, 0, 0, KVS_PORT);
        let ask = |request: &[u8]| ask(&rack, 0, client, kvs_server, request);

        let put = ask(&kvs::put(b"rack-42", b"spine switch"));
        assert_eq!(put.source, (kvs_server.ip, KVS_PORT));
        assert_eq!(put.source_mac, kvs_server.mac);
        assert_eq!(put.destination_mac, client.mac);
        assert_eq!(
            put.payload,
            [&[0u8][..], &1u64.to_le_bytes()].concat(),
            "PUT answers version 1"
        );

        let get = ask(&kvs::get(b"rack-42"));
        let mut expected = vec![0u8];
        expected.extend_from_slice(&1u64.to_le_bytes());
        expected.extend_from_slice(&12u16.to_le_bytes());
        expected.extend_from_slice(b"spine switch");
        assert_eq!(get.payload, expected);

        let missing = ask(&kvs::get(b"rack-43"));
        assert_eq!(missing.payload, [ServiceError::NotFound.code()]);

        // The second port has its own MAC: a GET through it is answered from that MAC, out of
        // the same store; a frame on port 1 addressed to port 0's MAC is dropped and counted.
        let via_port_1 = server(&rack, 0, 1, KVS_PORT);
        assert_ne!(via_port_1.mac, kvs_server.mac, "each port has its own MAC");
        let get = rack
            .exchange(
                0,
                1,
                client,
                via_port_1,
                &kvs::get(b"rack-42"),
                REPLY_TIMEOUT,
            )
            .unwrap()
            .unwrap_or_else(|| {
                panic!(
                    "no reply on port 1; UART:\n{}",
                    rack.nics[0].nic.transcript()
                )
            });
        assert_eq!(
            get.payload, expected,
            "the same store answers on either port"
        );
        assert_eq!(
            get.source_mac, via_port_1.mac,
            "port 1 answers from its own MAC"
        );
        let wrong_mac = rack
            .exchange(
                0,
                1,
                client,
                kvs_server,
                &kvs::get(b"rack-42"),
                NO_ANSWER_WAIT,
            )
            .unwrap();
        assert!(
            wrong_mac.is_none(),
            "port 1 answered a frame for port 0's MAC"
        );
        let counters = counters_where(&rack.nics[0].nic, |c| {
            c.dropped(DropReason::NotOurMac) >= 1 && c.total("port1_rx") >= 2
        });
        assert_eq!(counters.dropped(DropReason::NotOurMac), 1, "{counters:?}");
        assert_eq!(counters.total("served"), 4, "{counters:?}");
    });
}

/// Scenario 4 (the wire): malformed frames are dropped and counted by reason, frames longer
/// than the runtime's buffers are dropped and counted by the port, and the firmware keeps
/// serving; the counters are read back from the UART, the port's against the runtime's.
#[test]
#[ignore = "hardware-in-loop: run with `cargo xtask hil`"]
fn malformed_frames_are_counted_and_service_goes_on() {
    scenario(SCENARIO_LIMIT, || {
        let mut rack = rack("hil-malformed");
        rack.boot(plan([10, 0, 0, 2], 1)).unwrap();
        let client = client(9, 5001);
        let kvs_server = server(&rack, 0, 0, KVS_PORT);
        let good = frames::udp(client, kvs_server, &kvs::put(b"k", b"v"));
        let port = rack.port(0, 0);

        let mut bad_ip_checksum = good.clone();
        bad_ip_checksum[24] ^= 0xff;
        let mut bad_udp_checksum = good.clone();
        *bad_udp_checksum.last_mut().unwrap() ^= 0x01;
        let mut options_overrun = good.clone();
        // IHL 15: a 60-byte header (40 bytes of options) in a 35-byte packet. No checksum can be
        // computed over bytes that are not there: the length check must catch it first.
        options_overrun[14] = 0x4f;
        let mut fragment = good.clone();
        fragment[20] |= 0x20; // More fragments.
        frames::refresh_ipv4_checksum(&mut fragment).expect("a whole IPv4 header");
        let closed_port = frames::udp(
            client,
            Station {
                port: 9,
                ..kvs_server
            },
            b"anyone?",
        );
        let sent = [
            (
                vec![0xde, 0xad, 0xbe, 0xef],
                DropReason::Malformed(Layer::Ethernet, wire::Error::Truncated),
            ),
            (
                bad_ip_checksum,
                DropReason::Malformed(Layer::Ipv4, wire::Error::BadChecksum),
            ),
            (
                bad_udp_checksum,
                DropReason::Malformed(Layer::Udp, wire::Error::BadChecksum),
            ),
            (
                options_overrun,
                DropReason::Malformed(Layer::Ipv4, wire::Error::BadHeaderLength),
            ),
            (
                fragment,
                DropReason::Malformed(Layer::Ipv4, wire::Error::Fragmented),
            ),
            (closed_port, DropReason::PortClosed),
        ];
        // 1600 bytes: fits the port's 2 KiB receive buffers, not the 1536 bytes
        // (`FRAME_CAPACITY`) a runtime buffer receives.
        let oversized = frames::udp(client, kvs_server, &[0x55; 1600 - 42]);
        for _ in 0..3 {
            for (frame, _) in &sent {
                assert!(port.send(frame).unwrap(), "the link is up");
            }
            assert!(port.send(&oversized).unwrap(), "the link is up");
        }

        // Still serving: a PUT and a GET after the garbage.
        let reply = ask(&rack, 0, client, kvs_server, &kvs::put(b"still", b"here"));
        assert_eq!(reply.payload[0], 0, "PUT succeeded");
        let reply = ask(&rack, 0, client, kvs_server, &kvs::get(b"still"));
        assert_eq!(&reply.payload[reply.payload.len() - 4..], b"here");

        let counters = counters_where(&rack.nics[0].nic, |c| {
            c.total("served") >= 2
                && c.total("dropped") >= 18
                && c.total("port0_rx_oversized") >= 3
                && c.total("tx") >= 2
        });
        for (_, reason) in &sent {
            assert_eq!(
                counters.dropped(reason),
                3,
                "drops for `{reason}` in {counters:?}"
            );
        }
        assert_eq!(counters.total("served"), 2, "{counters:?}");
        assert_eq!(counters.total("dropped"), 18, "{counters:?}");
        // The port dropped the three long frames itself and handed every other frame to the
        // runtime; it sent the runtime's frames and its boot announcement.
        assert_eq!(counters.total("port0_rx_oversized"), 3, "{counters:?}");
        assert_eq!(counters.total("port0_rx"), 18 + 3 + 2, "{counters:?}");
        assert_eq!(
            counters.total("port0_rx") - counters.total("port0_rx_oversized"),
            counters.total("rx"),
            "{counters:?}"
        );
        assert_eq!(
            counters.total("port0_tx"),
            counters.total("tx") + 1,
            "{counters:?}"
        );
        for name in ["port0_rx_errors", "port0_unknown_tokens", "port0_resets"] {
            assert_eq!(counters.total(name), 0, "{name} in {counters:?}");
        }
    });
}

/// Scenario 5: a real Linux network stack reaches the firmware: ARP, ping, and a UDP client,
/// from a network namespace whose tap device is the NIC's port.
#[test]
#[ignore = "hardware-in-loop: run with `cargo xtask hil` (needs root)"]
fn ping_and_udp_from_a_linux_namespace() {
    scenario(SCENARIO_LIMIT, || {
        assert!(qemu::is_root(), "network namespaces and taps need root");
        let tag = std::process::id() % 100_000;
        let namespace = Namespace::new(&format!("e3-hil-{tag}")).unwrap();
        let tap = format!("e3tap{tag}");
        let switch = Switch::new("hil-ping").unwrap();
        let config = config([10, 0, 0, 2]);
        let spec = NicSpec {
            image: image().elf.clone(),
            config: Some(write_config(&switch, "nic.conf", &config.to_string())),
            ports: vec![e3_tests::nic::PortBackend::Tap {
                ifname: tap.clone(),
            }],
            cores: 2,
            namespace: Some(namespace.name().to_owned()),
            ..Default::default()
        };
        let nic = EmulatedNic::start(&qemu_binary(), &spec).unwrap();
        nic.wait_for_line("ready:", BOOT_TIMEOUT).unwrap();
        namespace.wait_for_link(&tap, BOOT_TIMEOUT).unwrap();
        namespace
            .run(&["ip", "addr", "add", "10.0.0.100/24", "dev", &tap])
            .unwrap();
        namespace.run(&["ip", "link", "set", &tap, "up"]).unwrap();

        let ping = namespace
            .run_within(
                &["ping", "-c", "3", "-i", "0.2", "-W", "5", "10.0.0.2"],
                Duration::from_secs(60),
            )
            .unwrap_or_else(|e| panic!("{e:#}\nUART:\n{}", nic.transcript()));
        let text = String::from_utf8_lossy(&ping.stdout);
        assert!(text.contains("3 received"), "{text}");
        let neighbours = namespace.run(&["ip", "neigh", "show", "10.0.0.2"]).unwrap();
        let neighbours = String::from_utf8_lossy(&neighbours.stdout);
        assert!(
            neighbours.contains(&port_mac(0)),
            "Linux resolved 10.0.0.2 by ARP to the NIC's MAC: {neighbours}"
        );

        let socket = namespace.udp_socket("10.0.0.100:0").unwrap();
        socket.set_read_timeout(Some(REPLY_TIMEOUT)).unwrap();
        let mut answer = [0u8; 2048];
        socket
            .send_to(&kvs::put(b"from-linux", b"hello"), "10.0.0.2:7000")
            .unwrap();
        let (n, from) = socket.recv_from(&mut answer).expect("a PUT answer");
        assert_eq!(from.to_string(), "10.0.0.2:7000");
        assert_eq!(&answer[..n], [&[0u8][..], &1u64.to_le_bytes()].concat());
        socket
            .send_to(&kvs::get(b"from-linux"), "10.0.0.2:7000")
            .unwrap();
        let (n, _) = socket.recv_from(&mut answer).expect("a GET answer");
        assert_eq!(&answer[n - 5..n], b"hello");
    });
}

/// Scenario 2: UDP requests to the host's IP cross the NIC, go over the PCIe channel to the host
/// process, are answered there, and the reply leaves through the NIC. The NIC's boot
/// configuration came through the channel too.
#[test]
#[ignore = "hardware-in-loop: run with `cargo xtask hil`"]
fn host_requests_cross_the_channel_and_back() {
    scenario(SCENARIO_LIMIT, || {
        let mut rack = rack("hil-host");
        rack.boot(plan_with_host([10, 0, 0, 2], 1)).unwrap();
        rack.nics[0]
            .nic
            .wait_for_line("boot configuration from the host channel", Duration::ZERO)
            .unwrap();
        let client = client(11, 6000);
        let host = host_server(&rack, 0, 0);
        let ask = |request: &[u8]| ask(&rack, 0, client, host, request);
        let put = ask(&kvs::put(b"on-the-host", b"yes"));
        assert_eq!(
            put.source,
            (HOST_IP, HOST_KVS_PORT),
            "the reply comes from the host IP"
        );
        assert_eq!(put.source_mac, host.mac);
        assert_eq!(put.payload, [&[0u8][..], &1u64.to_le_bytes()].concat());
        let get = ask(&kvs::get(b"on-the-host"));
        assert_eq!(&get.payload[get.payload.len() - 3..], b"yes");

        // The host-lib node took both requests off the channel, ran them and sent both
        // replies; nothing else arrived.
        let host_side = rack.nics[0].host.as_ref().unwrap();
        let stats = host_side
            .wait_for(REPLY_TIMEOUT, |s| s.nics[0].replies == 2)
            .unwrap_or_else(|s| panic!("the host node did not reply twice: {s:?}"));
        let endpoint = &stats.nics[0];
        assert_eq!(endpoint.requests, 2, "{stats:?}");
        assert!(endpoint.nic_alive, "{stats:?}");
        assert_eq!(
            (
                endpoint.malformed,
                endpoint.no_service,
                endpoint.channel_refused
            ),
            (0, 0, 0),
            "{stats:?}"
        );
        assert_eq!(host_side.served(), 2, "{stats:?}");
        assert_eq!(
            stats.workers.iter().map(|w| w.service_errors).sum::<u64>(),
            0
        );
        let counters = counters_where(&rack.nics[0].nic, |c| {
            c.total("to_host") >= 2 && c.total("from_host") >= 2
        });
        assert_eq!(counters.field("channel"), Some("up"), "{counters:?}");
        assert_eq!(counters.total("to_host"), 2, "{counters:?}");
        assert_eq!(counters.total("from_host"), 2, "{counters:?}");
    });
}

/// The flow of client `client` to the host's KVS, as the switch hashes it.
fn host_flow(client: Station) -> FiveTuple {
    FiveTuple {
        source: client.ip,
        destination: HOST_IP,
        protocol: 17,
        source_port: client.port,
        destination_port: HOST_KVS_PORT,
    }
}

/// Sends `request` from `client` to the host's KVS through the switch's router; returns the
/// switch port the router chose and the reply, which must come back through that same port.
fn ask_host(rack: &Rack, client: Station, request: &[u8]) -> (usize, Datagram) {
    let routed = rack
        .request(client, (HOST_IP, HOST_KVS_PORT), request, REPLY_TIMEOUT)
        .unwrap();
    let Forwarded::Sent(hop) = routed.forwarded else {
        panic!(
            "the switch did not route {client:?}: {:?}",
            routed.forwarded
        )
    };
    let (port, reply) = routed
        .reply
        .unwrap_or_else(|| panic!("{client:?} via switch port {}: no reply", hop.port));
    assert_eq!(
        port, hop.port,
        "the reply left through the NIC the request came in on"
    );
    assert_eq!(reply.source, (HOST_IP, HOST_KVS_PORT));
    (hop.port, reply)
}

/// Scenario 3: two NICs on one host. The switch (a router: a route per NIC IP, an ECMP group
/// for the host IP over both NICs' ports) spreads flows to the host IP by their 5-tuple hash
/// and both NICs carry traffic. NIC 1 then powers off: the host sees its heartbeat stop, the
/// switch sees its link drop and takes its port out of the group, and new flows, including
/// those that hashed to NIC 1 before, reach the host through NIC 0. Requests to NIC 1's own IP
/// get no answer, and a frame for NIC 1's IP delivered to NIC 0's port is not answered either:
/// NIC 0 counts it as not its address.
#[test]
#[ignore = "hardware-in-loop: run with `cargo xtask hil`"]
fn two_nics_share_the_host_by_ecmp_and_survive_one_stopping() {
    scenario(TWO_NIC_LIMIT, || {
        let mut rack = rack("hil-ecmp");
        let ips = [[10, 0, 0, 2], [10, 0, 0, 3]];
        let nics: Vec<_> = ips
            .iter()
            .enumerate()
            .map(|(i, ip)| {
                (
                    rack.switch.dir().join(format!("channel-{i}")),
                    config(*ip).to_string(),
                )
            })
            .collect();
        let host = HostSide::start(&nics, host_services()).unwrap();
        for (i, ip) in ips.iter().enumerate() {
            rack.boot(NicPlan {
                channel: Some(host.channel_file(i)),
                ..plan(*ip, 1)
            })
            .unwrap();
        }
        let ports = [rack.nics[0].switch_ports[0], rack.nics[1].switch_ports[0]];

        // Sixteen flows to the host IP, each routed by the switch's ECMP hash.
        let mut per_nic = [0usize; 2];
        for flow in 0..16u16 {
            let client = client(20, 6000 + flow);
            let key = format!("flow-{flow}");
            let (port, reply) = ask_host(&rack, client, &kvs::put(key.as_bytes(), b"x"));
            assert_eq!(reply.payload[0], 0, "flow {flow}: PUT succeeded");
            per_nic[ports.iter().position(|&p| p == port).unwrap()] += 1;
        }
        assert!(
            per_nic.iter().all(|&n| n > 0),
            "ECMP used both NICs: {per_nic:?}"
        );
        for (rack_nic, &flows) in rack.nics.iter().zip(&per_nic) {
            counters_where(&rack_nic.nic, |c| c.total("to_host") as usize == flows);
        }
        // The host-lib node counted each NIC's share of the flows on that NIC's endpoint.
        let stats = host
            .wait_for(REPLY_TIMEOUT, |s| {
                s.nics.iter().map(|n| n.replies).sum::<u64>() == 16
            })
            .unwrap_or_else(|s| panic!("the host node did not reply 16 times: {s:?}"));
        for (nic, &flows) in per_nic.iter().enumerate() {
            assert_eq!(
                stats.nics[nic].requests, flows as u64,
                "NIC {nic}: {stats:?}"
            );
            assert_eq!(
                stats.nics[nic].replies, flows as u64,
                "NIC {nic}: {stats:?}"
            );
        }
        assert_eq!(host.served(), 16);

        // New flows, and where the switch would send them while both NICs are up.
        let new_flows: Vec<Station> = (0..16u16).map(|k| client(21, 6100 + k)).collect();
        let hashed_to_nic1 = new_flows
            .iter()
            .filter(|c| {
                rack.switch.choose(&host_flow(**c)).map(|h: NextHop| h.port) == Some(ports[1])
            })
            .count();
        assert!(
            hashed_to_nic1 > 0,
            "some new flows hash to NIC 1 while it is up, so its failure moves them"
        );

        // NIC 1 loses power; the host sees its heartbeat stop, the switch sees its link drop.
        rack.nics[1].nic.stop();
        rack.switch
            .wait_for_link(ports[1], false, REPLY_TIMEOUT)
            .unwrap();
        assert!(!host.nic_alive(1), "the host notices NIC 1 stopped");
        assert!(host.nic_alive(0), "NIC 0 still beats");
        for (k, &client) in new_flows.iter().enumerate() {
            let key = format!("flow-{}", k % 16);
            let (port, reply) = ask_host(&rack, client, &kvs::get(key.as_bytes()));
            assert_eq!(port, ports[0], "new flow {k} re-hashed onto NIC 0");
            assert_eq!(
                reply.payload[0], 0,
                "state written through either NIC is on the host"
            );
        }
        let after = per_nic[0] as u64 + new_flows.len() as u64;
        host.wait_for(REPLY_TIMEOUT, |s| s.nics[0].replies == after)
            .unwrap_or_else(|s| panic!("NIC 0's endpoint did not answer the new flows: {s:?}"));

        // NIC 1's own IP answers no more: the router has no live port for it, and nothing
        // answers on any port within the wait.
        let lost_before = rack.switch.counters().link_down;
        let lost = rack
            .request(
                client(22, 7777),
                (Ipv4Address(ips[1]), KVS_PORT),
                &kvs::get(b"flow-0"),
                NO_ANSWER_WAIT,
            )
            .unwrap();
        assert_eq!(lost.forwarded, Forwarded::LinkDown);
        assert!(
            lost.reply.is_none(),
            "a stopped NIC's IP gets no answer: {lost:?}"
        );
        assert_eq!(rack.switch.counters().link_down, lost_before + 1);

        // A frame for NIC 1's IP delivered to NIC 0's port (as a misrouting switch would) is
        // not answered: NIC 0 counts it as not its address.
        let stray = rack
            .exchange(
                0,
                0,
                client(23, 7778),
                Station {
                    mac: rack.nics[0].mac(0),
                    ip: Ipv4Address(ips[1]),
                    port: KVS_PORT,
                },
                &kvs::get(b"flow-0"),
                NO_ANSWER_WAIT,
            )
            .unwrap();
        assert!(
            stray.is_none(),
            "NIC 0 does not answer for NIC 1's IP: {stray:?}"
        );
        let counters = counters_where(&rack.nics[0].nic, |c| {
            c.dropped(DropReason::NotOurAddress) > 0
        });
        assert_eq!(
            counters.dropped(DropReason::NotOurAddress),
            1,
            "{counters:?}"
        );
    });
}

/// Writes `bytes` at `offset` of the channel file.
fn poke(file: &std::fs::File, offset: usize, bytes: &[u8]) {
    file.write_all_at(bytes, offset as u64).unwrap();
}

/// Reads the 32-bit little-endian word at `offset` of the channel file.
fn peek(file: &std::fs::File, offset: usize) -> u32 {
    let mut word = [0u8; 4];
    file.read_exact_at(&mut word, offset as u64).unwrap();
    u32::from_le_bytes(word)
}

/// Eight descriptors, each refused by the NIC for a different reason (docs/pcie-channel.md
/// §4): none carries the sequence number its lane expects (0), so none ends a message early.
fn corrupt_descriptors(slot_bytes: u16) -> [Descriptor; 8] {
    let far = 0x4000_0000;
    let whole = |flow: u32, seq: u32, len: u16| Descriptor::whole(flow, seq, len);
    [
        Descriptor {
            segments: 0,
            ..whole(1, far, 8)
        }, // Segment index: no segments.
        Descriptor {
            segment: 2,
            segments: 2,
            ..whole(2, far, 8)
        }, // Segment index past the count.
        Descriptor {
            reserved: 0x5a,
            ..whole(3, far, 8)
        }, // Reserved byte set.
        whole(4, far, slot_bytes + 1), // Longer than a slot.
        Descriptor {
            segments: 2,
            next_slot: 1,
            ..whole(5, far, 8)
        }, // A first segment that does not fill its slot.
        Descriptor {
            next_engine: 3,
            ..whole(6, far, 8)
        }, // A last segment naming a next one.
        whole(7, far, 8),              // Sequence far outside the window.
        whole(8, 0xffff_fff0, 8),      // Sequence behind the lane: an orphan.
    ]
}

/// Scenario 4 (the channel): a host that scribbles over the to-NIC rings. First eight broken
/// descriptors published on engine 0: the NIC refuses exactly those eight, the channel stays
/// up and nothing reaches the runtime. Then a producer index pushed past a whole ring on engine
/// 1: the NIC fails the channel, drops datagrams for the host as "host path disconnected",
/// and keeps serving its own services.
#[test]
#[ignore = "hardware-in-loop: run with `cargo xtask hil`"]
fn corrupted_channel_is_counted_and_service_goes_on() {
    scenario(SCENARIO_LIMIT, || {
        let mut rack = rack("hil-corrupt");
        rack.boot(plan_with_host([10, 0, 0, 2], 1)).unwrap();
        let channel = rack.nics[0].host.as_ref().unwrap().channel_file(0);
        let file = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .open(&channel.path)
            .unwrap();
        let layout = Layout::of(e3_tests::host::GEOMETRY);
        let entries = e3_tests::host::GEOMETRY.ring_entries;
        let slot_bytes = e3_tests::host::GEOMETRY.slot_bytes as u16;

        // Engine 0: eight bad descriptors at the producer index, then the index moved over them.
        let control = layout.control(Direction::ToNic, 0);
        let descriptors = layout.descriptor_array(Direction::ToNic, 0);
        let producer = peek(&file, control);
        for (i, descriptor) in corrupt_descriptors(slot_bytes).iter().enumerate() {
            let position = producer.wrapping_add(i as u32) % entries;
            poke(
                &file,
                descriptors + position as usize * 16,
                &descriptor.to_bytes(),
            );
        }
        poke(&file, control, &producer.wrapping_add(8).to_le_bytes());
        let counters = counters_where(&rack.nics[0].nic, |c| c.total("channel_corrupt") >= 8);
        assert_eq!(counters.total("channel_corrupt"), 8, "{counters:?}");
        assert_eq!(counters.total("channel_rejected"), 0, "{counters:?}");
        assert_eq!(counters.total("from_host"), 0, "{counters:?}");
        assert_eq!(counters.field("channel"), Some("up"), "{counters:?}");

        // Engine 1: a producer index more than a ring ahead of the consumer.
        let control = layout.control(Direction::ToNic, 1);
        let consumer = peek(&file, control + CONSUMER_LINE);
        poke(
            &file,
            control,
            &consumer.wrapping_add(entries + 1).to_le_bytes(),
        );
        let counters = counters_where(&rack.nics[0].nic, |c| c.field("channel") == Some("failed"));
        assert_eq!(counters.total("channel_corrupt"), 8, "{counters:?}");

        let client = client(12, 5002);
        let reply = ask(
            &rack,
            0,
            client,
            server(&rack, 0, 0, KVS_PORT),
            &kvs::put(b"after", b"scribble"),
        );
        assert_eq!(reply.payload[0], 0, "the NIC's own KVS still serves");
        let unanswered = rack
            .exchange(
                0,
                0,
                client,
                host_server(&rack, 0, 0),
                &kvs::get(b"k"),
                Duration::from_secs(2),
            )
            .unwrap();
        assert!(unanswered.is_none(), "no host behind a failed channel");
        let counters = counters_where(&rack.nics[0].nic, |c| {
            c.dropped(DropReason::HostPathDisconnected) > 0
        });
        assert_eq!(
            counters.dropped(DropReason::HostPathDisconnected),
            1,
            "{counters:?}"
        );
        assert_eq!(counters.total("to_host"), 0, "{counters:?}");
    });
}

/// The BlueField image's own boot page table: QEMU `virt` with 3 GiB of RAM has RAM at the
/// BlueField's DRAM address (2 GiB), so the image linked there boots, with its MMU on over the
/// blocks its board memory maps, and serves (its board layer is qemu-virt's, which is why it
/// runs here at all).
#[test]
#[ignore = "hardware-in-loop: run with `cargo xtask hil`"]
fn bluefield_image_boots_where_its_dram_is() {
    scenario(SCENARIO_LIMIT, || {
        let image = bluefield_image();
        assert_eq!(image.manifest.load_address, 0x8008_0000);
        let (switch, mut spec) = single_port_nic("hil-bluefield", image, 2);
        spec.memory_mib = 3072;
        let nic = EmulatedNic::start(&qemu_binary(), &spec).unwrap();
        let ready = nic.wait_for_line("ready:", BOOT_TIMEOUT).unwrap();
        assert!(ready.contains("2 cores, 1 ports"), "{ready}");
        nic.wait_for_line("image for bluefield", Duration::ZERO)
            .unwrap();
        let client = client(13, 5003);
        let server = Station {
            mac: port_mac_address(0),
            ip: Ipv4Address([10, 0, 0, 2]),
            port: KVS_PORT,
        };
        switch.port(0).drain();
        assert!(switch
            .port(0)
            .send(&frames::udp(client, server, &kvs::put(b"bf", b"2")))
            .unwrap());
        let reply = switch
            .port(0)
            .recv_matching(REPLY_TIMEOUT, |f| {
                frames::parse_udp(f).is_some_and(|d| d.destination == (client.ip, client.port))
            })
            .unwrap_or_else(|| panic!("no reply; UART:\n{}", nic.transcript()));
        assert_eq!(frames::parse_udp(&reply).unwrap().payload[0], 0);
    });
}

/// The orchestrator agent on the firmware: deploy commands over UDP put a KVS (standard
/// configuration) and a Count (its own parameters) on new ports, which then serve; a deploy
/// that does not fit the board's heap and a host-only kind are refused with their status and
/// counted; heartbeats arrive at the configured controller.
#[test]
#[ignore = "hardware-in-loop: run with `cargo xtask hil`"]
fn agent_deploys_a_service_and_sends_heartbeats() {
    scenario(SCENARIO_LIMIT, || {
        let mut rack = rack("hil-agent");
        let controller = client(50, 7778);
        let mut nic_plan = plan([10, 0, 0, 2], 1);
        nic_plan.config.agent_port = Some(7777);
        nic_plan.config.controller = Some((Ipv4Addr::from(controller.ip.0), controller.port));
        // The controller sits behind the switch: the switch's MAC is the NIC's default next hop.
        nic_plan.config.gateway_mac = Some(controller.mac.0);
        rack.boot(nic_plan).unwrap();
        let agent = server(&rack, 0, 0, 7777);

        // One command, its answer's status (heartbeats go to the same address as the answers:
        // pick the answer by its request id).
        let command = |request: u16, command: Command<'_>| -> u8 {
            let mut bytes = [0u8; 256];
            let len = command::encode(request, &command, &mut bytes).unwrap();
            assert!(rack
                .port(0, 0)
                .send(&frames::udp(controller, agent, &bytes[..len]))
                .unwrap());
            let answer = rack
                .port(0, 0)
                .recv_matching(REPLY_TIMEOUT, |f| {
                    frames::parse_udp(f).is_some_and(|d| {
                        d.source == (agent.ip, 7777)
                            && d.payload.len() == 4
                            && d.payload[2..4] == request.to_le_bytes()
                    })
                })
                .unwrap_or_else(|| panic!("an answer to command {request}"));
            frames::parse_udp(&answer).unwrap().payload[1]
        };
        let deploy = |service, kind, port, config| Command::Deploy {
            service,
            kind,
            port,
            config,
        };

        // The byte layout of docs/orchestrator-commands.md: version 1, opcode 1 (DEPLOY), request
        // 42, service 7, kind 6 (KVS), UDP port 7002, no parameters.
        let mut bytes = [0u8; 16];
        let len = command::encode(42, &deploy(7, ServiceKind::Kvs, 7002, &[]), &mut bytes).unwrap();
        assert_eq!(bytes[..len], [1, 1, 42, 0, 7, 0, 6, 0x5a, 0x1b]);
        assert_eq!(command(42, deploy(7, ServiceKind::Kvs, 7002, &[])), 0);
        let count = Params::Count { items: 100 }.encode();
        assert_eq!(command(43, deploy(8, ServiceKind::Count, 7003, &count)), 0);
        // 64 classes over 2^20 tokens: 1 GiB of model on a 256 MiB board.
        let huge = Params::Bayes {
            classes: 64,
            vocabulary: 1 << 20,
            documents: 10,
            seed: 1,
        }
        .encode();
        assert_eq!(
            command(44, deploy(9, ServiceKind::Bayes, 7004, &huge)),
            CommandError::NoMemory.code()
        );
        assert_eq!(
            command(45, deploy(9, ServiceKind::Sql, 7004, &[])),
            CommandError::Unsupported.code()
        );

        let client = client(51, 5003);
        let deployed = server(&rack, 0, 0, 7002);
        let reply = ask(&rack, 0, client, deployed, &kvs::put(b"new", b"service"));
        assert_eq!(reply.payload, [&[0u8][..], &1u64.to_le_bytes()].concat());
        let counter = server(&rack, 0, 0, 7003);
        let reply = ask(&rack, 0, client, counter, &count_request::add(&[99, 99]));
        assert_eq!(reply.payload[0], 0, "item 99 is in a 100-item space");
        let reply = ask(&rack, 0, client, counter, &count_request::add(&[100]));
        assert_eq!(reply.payload, [ServiceError::BadField.code()]);
        let counters = rack.nics[0]
            .nic
            .wait_for_counters(REPLY_TIMEOUT, |c| c.total("deployed") == 2)
            .unwrap();
        assert_eq!(counters.total("deploy_no_memory"), 1, "{counters:?}");
        assert_eq!(counters.total("deploy_refused"), 1, "{counters:?}");
        rack.nics[0]
            .nic
            .wait_for_line("deploy of service 9 refused: `bayes` needs", REPLY_TIMEOUT)
            .unwrap();

        // Heartbeats: 16 bytes from the agent's port to the controller, node 2, rising sequence.
        let mut sequences = Vec::new();
        while sequences.len() < 2 {
            let frame = rack
                .port(0, 0)
                .recv_matching(REPLY_TIMEOUT, |f| {
                    frames::parse_udp(f).is_some_and(|d| {
                        d.source == (agent.ip, 7777)
                            && d.destination == (controller.ip, controller.port)
                    })
                })
                .expect("a heartbeat");
            let datagram = frames::parse_udp(&frame).unwrap();
            let heartbeat = Heartbeat::decode(&datagram.payload).expect("a well-formed heartbeat");
            assert_eq!(heartbeat.node, 2);
            sequences.push(heartbeat.sequence);
        }
        assert_ne!(sequences[0], sequences[1]);
    });
}
