//! Hardware-in-loop scenarios: the firmware image booted on emulated SmartNICs (QEMU `virt`),
//! with this test playing the top-of-rack switch on the NICs' ports. Each scenario has a timeout
//! and asserts on what came back over the wire (or the UART for a refusal, with its exit status).
//!
//! They need QEMU, so they are ignored by a plain `cargo test`; `cargo xtask hil` installs QEMU
//! if needed and runs them.

use std::net::Ipv4Addr;
use std::path::PathBuf;
use std::sync::OnceLock;
use std::time::Duration;

use e3_tests::firmware::{self, Board, Image};
use e3_tests::frames::Station;
use e3_tests::nic::{port_mac, EmulatedNic, NicSpec};
use e3_tests::qemu;
use e3_tests::rack::{NicPlan, Rack, BOOT_TIMEOUT};
use e3_tests::switch::Switch;
use microservices::services::kvs::request as kvs;
use microservices::{ServiceError, ServiceKind};
use nic_firmware::boot_config::{BootConfig, ServiceBinding};
use nic_firmware::wire::{Ipv4Address, MacAddress};

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
    }
}

fn plan(nic_ip: [u8; 4], ports: usize) -> NicPlan {
    NicPlan {
        config: config(nic_ip),
        ports,
        cores: 4,
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
        config: write_config(&switch, "nic.conf", &config.to_string()),
        ports,
        channel: None,
        cores: 4,
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
        config: write_config(&switch, "bad.conf", text),
        ports: vec![port],
        channel: None,
        cores: 1,
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
