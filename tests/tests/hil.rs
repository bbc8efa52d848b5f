//! Hardware-in-loop scenarios: the firmware image booted on emulated SmartNICs (QEMU `virt`),
//! with this test playing the top-of-rack switch on the NICs' ports. Each scenario has a timeout
//! and asserts on what came back over the wire (or the UART for a refusal, with its exit status).
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
use e3_tests::nic::{port_mac, EmulatedNic, NicSpec};
use e3_tests::qemu;
use e3_tests::rack::{NicPlan, Rack, BOOT_TIMEOUT};
use e3_tests::switch::Switch;
use microservices::services::count::request as count_request;
use microservices::services::deploy::{self, Params};
use microservices::services::kvs::request as kvs;
use microservices::{Service, ServiceError, ServiceId, ServiceKind};
use nic_firmware::agent::command::{self, Command, CommandError};
use nic_firmware::agent::heartbeat::Heartbeat;
use nic_firmware::boot_config::{BootConfig, ServiceBinding};
use nic_firmware::counters::{DropReason, Layer};
use nic_firmware::wire::{self, checksum::Checksum, Ipv4Address, MacAddress};

fn image() -> &'static Image {
    static IMAGE: OnceLock<Image> = OnceLock::new();
    IMAGE.get_or_init(|| firmware::build(Board::QemuVirt).expect("building the firmware"))
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

/// A gratuitous ARP request announcing `ip` from `mac`: what the firmware sends at boot.
fn is_announcement(frame: &[u8], mac: &str, ip: Ipv4Addr) -> bool {
    let mac: Vec<u8> = mac
        .split(':')
        .map(|b| u8::from_str_radix(b, 16).expect("hex MAC"))
        .collect();
    frame.len() >= 42
        && frame[0..6] == [0xff; 6]
        && frame[6..12] == mac[..]
        && frame[12..14] == [0x08, 0x06]
        && frame[20..22] == [0, 1]
        && frame[22..28] == mac[..]
        && frame[28..32] == ip.octets()
        && frame[38..42] == ip.octets()
}

#[test]
#[ignore = "hardware-in-loop: run with `cargo xtask hil`"]
fn boot_brings_up_every_core_and_port() {
    let mut switch = Switch::new("hil-boot").unwrap();
    let ports: Vec<_> = (0..2).map(|_| switch.add_port().unwrap().1).collect();
    let config = config([10, 0, 0, 2]);
    let spec = NicSpec {
        image: image().elf.clone(),
        config: Some(write_config(&switch, "nic.conf", &config.to_string())),
        ports,
        channel: None,
        cores: 4,
        namespace: None,
    };
    let nic = EmulatedNic::start(&qemu_binary(), &spec).unwrap();
    for index in 0..2 {
        let announced = switch.port(index).recv_matching(BOOT_TIMEOUT, |frame| {
            is_announcement(frame, &port_mac(index), config.nic_ip)
        });
        assert!(
            announced.is_some(),
            "no gratuitous ARP on port {index}; UART:\n{}",
            nic.transcript()
        );
    }
    let ready = nic.wait_for_line("ready:", BOOT_TIMEOUT).unwrap();
    assert!(ready.contains("4 cores, 2 ports"), "{ready}");
    eprintln!("boot: {ready} (host wall clock {:?})", nic.uptime());
}

#[test]
#[ignore = "hardware-in-loop: run with `cargo xtask hil`"]
fn bad_config_is_refused_with_its_line() {
    let mut switch = Switch::new("hil-badconfig").unwrap();
    let (_, port) = switch.add_port().unwrap();
    let text = "nic_ip = 10.0.0.2\nhost_ip = 10.0.0.300\nservice = kvs 7000\n";
    let spec = NicSpec {
        image: image().elf.clone(),
        config: Some(write_config(&switch, "bad.conf", text)),
        ports: vec![port],
        channel: None,
        cores: 1,
        namespace: None,
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
}

/// Scenario 1: UDP requests to the NIC's IP are served by a service on the NIC (KVS).
#[test]
#[ignore = "hardware-in-loop: run with `cargo xtask hil`"]
fn kvs_on_the_nic_serves_put_then_get() {
    let mut rack = rack("hil-kvs");
    rack.boot(plan([10, 0, 0, 2], 1)).unwrap();
    let client = client(7, 5000);
    let kvs_server = server(&rack, 0, 0, KVS_PORT);
    let ask = |request: &[u8]| {
        rack.exchange(0, 0, client, kvs_server, request, REPLY_TIMEOUT)
            .unwrap()
            .unwrap_or_else(|| panic!("no reply; UART:\n{}", rack.nics[0].nic.transcript()))
    };

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
}

/// Rewrites the IPv4 header checksum of `frame` after a test changed the header.
fn fix_ipv4_checksum(frame: &mut [u8]) {
    let header_len = usize::from(frame[14] & 0x0f) * 4;
    frame[24..26].fill(0);
    let sum = Checksum::new()
        .add_bytes(&frame[14..14 + header_len])
        .finish();
    frame[24..26].copy_from_slice(&sum.to_be_bytes());
}

/// Scenario 4 (the wire): malformed frames are dropped and counted by reason, and the firmware
/// keeps serving; the counters are read back from the UART.
#[test]
#[ignore = "hardware-in-loop: run with `cargo xtask hil`"]
fn malformed_frames_are_counted_and_service_goes_on() {
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
    fix_ipv4_checksum(&mut fragment);
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
    for _ in 0..3 {
        for (frame, _) in &sent {
            assert!(port.send(frame).unwrap(), "the link is up");
        }
    }

    // Still serving: a PUT and a GET after the garbage.
    let reply = ask(&rack, 0, client, kvs_server, &kvs::put(b"still", b"here"));
    assert_eq!(reply.payload[0], 0, "PUT succeeded");
    let reply = ask(&rack, 0, client, kvs_server, &kvs::get(b"still"));
    assert_eq!(&reply.payload[reply.payload.len() - 4..], b"here");

    let counters = rack.nics[0]
        .nic
        .wait_for_counters(REPLY_TIMEOUT, |c| {
            c.total("served") >= 2 && c.total("dropped") >= 18
        })
        .unwrap();
    for (_, reason) in &sent {
        assert_eq!(
            counters.dropped(reason),
            3,
            "drops for `{reason}` in {counters:?}"
        );
    }
    assert_eq!(counters.total("served"), 2, "{counters:?}");
    assert_eq!(counters.total("dropped"), 18, "{counters:?}");
}

/// Scenario 5: a real Linux network stack reaches the firmware: ARP, ping, and a UDP client,
/// from a network namespace whose tap device is the NIC's port.
#[test]
#[ignore = "hardware-in-loop: run with `cargo xtask hil` (needs root)"]
fn ping_and_udp_from_a_linux_namespace() {
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
        channel: None,
        cores: 2,
        namespace: Some(namespace.name().to_owned()),
    };
    let nic = EmulatedNic::start(&qemu_binary(), &spec).unwrap();
    nic.wait_for_line("ready:", BOOT_TIMEOUT).unwrap();
    namespace.wait_for_link(&tap, BOOT_TIMEOUT).unwrap();
    namespace
        .run(&["ip", "addr", "add", "10.0.0.100/24", "dev", &tap])
        .unwrap();
    namespace.run(&["ip", "link", "set", &tap, "up"]).unwrap();

    let ping = namespace
        .run(&["ping", "-c", "3", "-i", "0.2", "-W", "5", "10.0.0.2"])
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
}

/// Scenario 2: UDP requests to the host's IP cross the NIC, go over the PCIe channel to the host
/// process, are answered there, and the reply leaves through the NIC. The NIC's boot
/// configuration came through the channel too.
#[test]
#[ignore = "hardware-in-loop: run with `cargo xtask hil`"]
fn host_requests_cross_the_channel_and_back() {
    let mut rack = rack("hil-host");
    rack.boot(plan_with_host([10, 0, 0, 2], 1)).unwrap();
    rack.nics[0]
        .nic
        .wait_for_line("boot configuration from the host channel", Duration::ZERO)
        .unwrap();
    let client = client(11, 6000);
    let host = host_server(&rack, 0, 0);
    let ask = |request: &[u8]| {
        rack.exchange(0, 0, client, host, request, REPLY_TIMEOUT)
            .unwrap()
            .unwrap_or_else(|| panic!("no reply; UART:\n{}", rack.nics[0].nic.transcript()))
    };
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

    // The host-lib node took both requests off the channel, ran them and sent both replies;
    // nothing else arrived.
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
    let counters = rack.nics[0]
        .nic
        .wait_for_counters(REPLY_TIMEOUT, |c| {
            c.total("to_host") >= 2 && c.total("from_host") >= 2
        })
        .unwrap();
    assert_eq!(counters.field("channel"), Some("up"), "{counters:?}");
    assert_eq!(counters.total("to_host"), 2, "{counters:?}");
    assert_eq!(counters.total("from_host"), 2, "{counters:?}");
}

/// The switch's ECMP choice among `ports` live ports for a flow (FNV-1a over the 5-tuple).
fn ecmp(client: Station, server: Station, ports: usize) -> usize {
    let mut hash = 0xcbf2_9ce4_8422_2325u64;
    let tuple = [
        &client.ip.0[..],
        &server.ip.0,
        &client.port.to_be_bytes(),
        &server.port.to_be_bytes(),
        &[17],
    ];
    for byte in tuple.concat() {
        hash = (hash ^ u64::from(byte)).wrapping_mul(0x0100_0000_01b3);
    }
    (hash % ports as u64) as usize
}

/// Scenario 3: two NICs on one host. The switch spreads flows to the host IP over both NICs'
/// ports by an ECMP hash and both carry traffic; after one NIC stops, new flows reach the host
/// through the other, and flows to the stopped NIC's own IP get no answer.
#[test]
#[ignore = "hardware-in-loop: run with `cargo xtask hil`"]
fn two_nics_share_the_host_by_ecmp_and_survive_one_stopping() {
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

    // Sixteen flows to the host IP, each pinned by the ECMP hash to one NIC.
    let mut per_nic = [0usize; 2];
    for flow in 0..16u16 {
        let client = client(20, 6000 + flow);
        let nic = ecmp(client, host_server(&rack, 0, 0), 2);
        let key = format!("flow-{flow}");
        let reply = rack
            .exchange(
                nic,
                0,
                client,
                host_server(&rack, nic, 0),
                &kvs::put(key.as_bytes(), b"x"),
                REPLY_TIMEOUT,
            )
            .unwrap()
            .unwrap_or_else(|| panic!("flow {flow} via NIC {nic}: no reply"));
        assert_eq!(reply.source, (HOST_IP, HOST_KVS_PORT));
        assert_eq!(reply.payload[0], 0, "flow {flow}: PUT succeeded");
        per_nic[nic] += 1;
    }
    assert!(
        per_nic.iter().all(|&n| n > 0),
        "ECMP used both NICs: {per_nic:?}"
    );
    for (rack_nic, &flows) in rack.nics.iter().zip(&per_nic) {
        rack_nic
            .nic
            .wait_for_counters(REPLY_TIMEOUT, |c| c.total("to_host") as usize == flows)
            .unwrap();
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

    // NIC 1 loses power; the host sees its heartbeat stop, the switch takes its port out of
    // the ECMP group.
    rack.nics[1].nic.stop();
    assert!(!host.nic_alive(1), "the host notices NIC 1 stopped");
    assert!(host.nic_alive(0), "NIC 0 still beats");
    for flow in 100..108u16 {
        let client = client(21, 6000 + flow);
        let reply = rack
            .exchange(
                0,
                0,
                client,
                host_server(&rack, 0, 0),
                &kvs::get(format!("flow-{}", flow - 100).as_bytes()),
                REPLY_TIMEOUT,
            )
            .unwrap()
            .unwrap_or_else(|| panic!("new flow {flow} through NIC 0: no reply"));
        assert_eq!(
            reply.payload[0], 0,
            "state written through either NIC is on the host"
        );
    }
    let after = per_nic[0] as u64 + 8;
    host.wait_for(REPLY_TIMEOUT, |s| s.nics[0].replies == after)
        .unwrap_or_else(|s| panic!("NIC 0's endpoint did not answer the 8 new flows: {s:?}"));

    // The stopped NIC's own IP answers no more.
    let lost = rack
        .exchange(
            1,
            0,
            client(22, 7777),
            server(&rack, 1, 0, KVS_PORT),
            &kvs::get(b"k"),
            Duration::from_millis(500),
        )
        .unwrap();
    assert!(
        lost.is_none(),
        "a stopped NIC does not answer for its own IP"
    );
}

/// Scenario 4 (the channel): a host that scribbles over the to-NIC ring (garbage descriptors,
/// the producer index pushed past them) makes the NIC count the damage or fail the channel,
/// and the NIC keeps serving its own services.
#[test]
#[ignore = "hardware-in-loop: run with `cargo xtask hil`"]
fn corrupted_channel_is_counted_and_service_goes_on() {
    let mut rack = rack("hil-corrupt");
    rack.boot(plan_with_host([10, 0, 0, 2], 1)).unwrap();
    let channel = rack.nics[0].host.as_ref().unwrap().channel_file(0);
    let file = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open(&channel.path)
        .unwrap();
    // Ring 0 of the to-NIC direction (docs/pcie-channel.md, section 2): control block at
    // 0x3000 (producer index first), descriptors at 0x3000 + 2 * engines * 128.
    let control = 0x3000u64;
    let descriptors = control + 2 * u64::from(e3_tests::host::GEOMETRY.engines) * 128;
    let mut garbage = vec![0u8; 256 * 16];
    let mut x = 0x9e37_79b9_7f4a_7c15u64;
    for byte in garbage.iter_mut() {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        *byte = x as u8;
    }
    file.write_all_at(&garbage, descriptors).unwrap();
    let mut producer = [0u8; 4];
    file.read_exact_at(&mut producer, control).unwrap();
    let producer = u32::from_le_bytes(producer).wrapping_add(8);
    file.write_all_at(&producer.to_le_bytes(), control).unwrap();

    let counters = rack.nics[0]
        .nic
        .wait_for_counters(REPLY_TIMEOUT, |c| {
            c.total("channel_corrupt") > 0
                || c.total("channel_rejected") > 0
                || c.field("channel") == Some("failed")
        })
        .unwrap();
    eprintln!("after the scribble: {counters:?}");

    let client = client(12, 5002);
    let reply = rack
        .exchange(
            0,
            0,
            client,
            server(&rack, 0, 0, KVS_PORT),
            &kvs::put(b"after", b"scribble"),
            REPLY_TIMEOUT,
        )
        .unwrap()
        .unwrap_or_else(|| {
            panic!(
                "the NIC stopped serving; UART:\n{}",
                rack.nics[0].nic.transcript()
            )
        });
    assert_eq!(reply.payload[0], 0);
}

/// The orchestrator agent on the firmware: deploy commands over UDP put a KVS (standard
/// configuration) and a Count (its own parameters) on new ports, which then serve; a deploy
/// that does not fit the board's heap and a host-only kind are refused with their status and
/// counted; heartbeats arrive at the configured controller.
#[test]
#[ignore = "hardware-in-loop: run with `cargo xtask hil`"]
fn agent_deploys_a_service_and_sends_heartbeats() {
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
}
