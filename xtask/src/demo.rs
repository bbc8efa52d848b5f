//! `cargo xtask demo`: the main job, first version. Boots two emulated SmartNICs and a host
//! process, plays the top-of-rack switch (the rack's router: a route per NIC IP, the host IP an
//! ECMP group over both NICs) and a client population, sends a stream of requests to the
//! services on each NIC and on the host, and prints a live table of requests/s and p50/p99
//! latency per node.
//!
//! Each in-flight slot is one flow (its own client UDP port), so the switch's 5-tuple hash
//! keeps every request of a host flow on one NIC. Each slot first writes its keys (PUT, one at a
//! time, every answer checked), then reads them in turn (GET): a key's value names its slot and
//! index, so every answer says which request it answers. An answer for an older request (one
//! already counted lost) is counted late, never against the request in flight; an error answer
//! (no value, so no request id) is counted and completes nothing.

use std::collections::BTreeMap;
use std::io::{IsTerminal, Write};
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use e3_tests::firmware::{self, Board};
use e3_tests::frames::{self, Station};
use e3_tests::host::HostSide;
use e3_tests::qemu;
use e3_tests::rack::{NicPlan, Rack};
use e3_tests::switch::Forwarded;
use microservices::services::deploy;
use microservices::services::kvs::request as kvs;
use microservices::{Service, ServiceId, ServiceKind};
use nic_firmware::boot_config::{BootConfig, ServiceBinding};
use nic_firmware::wire::{Ipv4Address, MacAddress};

use crate::toolchain;

/// Options of `cargo xtask demo`.
#[derive(clap::Args)]
pub struct Args {
    /// How long to send requests, in seconds.
    #[arg(long, default_value_t = 10)]
    seconds: u64,
    /// Requests in flight per node (closed loop), each on its own flow.
    #[arg(long, default_value_t = 4)]
    window: usize,
    /// Cores per emulated NIC (each is a host thread under QEMU: on a 2-core machine more
    /// cores per NIC mean more contention, not more speed).
    #[arg(long, default_value_t = 2)]
    cores: u32,
}

const HOST_IP: Ipv4Address = Ipv4Address([10, 0, 0, 1]);
const NIC_IPS: [[u8; 4]; 2] = [[10, 0, 0, 2], [10, 0, 0, 3]];
const NIC_KVS_PORT: u16 = 7000;
const HOST_KVS_PORT: u16 = 7100;
/// Keys each slot writes and then reads in turn.
const KEYS_PER_SLOT: u32 = 32;
/// A request unanswered for this long is counted lost and its slot moves on.
const LOST_AFTER: Duration = Duration::from_secs(1);
/// How long a setup PUT may take.
const SETUP_TIMEOUT: Duration = Duration::from_secs(10);

/// A node of the demo: where its requests go.
struct Node {
    name: String,
    ip: Ipv4Address,
    port: u16,
}

/// One flow of the client population and the request it has in flight.
struct Slot {
    node: usize,
    client: Station,
    /// Requests sent so far; the one in flight reads key `sent - 1`.
    sent: u64,
    /// When the request in flight left, if one is.
    in_flight: Option<Instant>,
}

#[derive(Default)]
struct Tally {
    latencies_us: Vec<u64>,
    answered: u64,
    errors: u64,
    lost: u64,
    late: u64,
}

/// The key slot `slot` reads as its request number `n`, and the value stored under it.
fn key_value(slot: usize, n: u64) -> (Vec<u8>, Vec<u8>) {
    let index = n % u64::from(KEYS_PER_SLOT);
    (
        format!("slot{slot}-key{index}").into_bytes(),
        format!("slot {slot} key {index}").into_bytes(),
    )
}

/// Entry point of the subcommand.
pub fn run(args: Args) -> Result<()> {
    if args.window == 0 || args.seconds == 0 {
        bail!("--window and --seconds must be at least 1");
    }
    let qemu = crate::system::ensure_qemu()?;
    toolchain::ensure_firmware_target()?;
    let image = firmware::build(Board::QemuVirt)?;
    eprintln!(
        "demo: firmware {} ({} bytes), {}",
        image.manifest.git_revision,
        image.manifest.size,
        qemu::version(&qemu).unwrap_or_default()
    );

    let mut rack = Rack::new("demo", &qemu, &image.elf)?;
    let configs: Vec<BootConfig> = NIC_IPS.iter().map(|ip| nic_config(*ip)).collect();
    let channels: Vec<_> = configs
        .iter()
        .enumerate()
        .map(|(i, c)| {
            (
                rack.switch.dir().join(format!("channel-{i}")),
                c.to_string(),
            )
        })
        .collect();
    let host_kvs = deploy::build_on_host(ServiceKind::Kvs, ServiceId(100), &[])?;
    let host_services: Vec<(u16, Box<dyn Service>)> = vec![(HOST_KVS_PORT, host_kvs)];
    let host = HostSide::start(&channels, host_services)?;
    for (i, config) in configs.into_iter().enumerate() {
        let started = Instant::now();
        rack.boot(NicPlan {
            config,
            ports: 1,
            cores: args.cores,
            host: None,
            channel: Some(host.channel_file(i)),
        })?;
        let ready = rack.nics[i].nic.wait_for_line("ready:", Duration::ZERO)?;
        let booted = ready
            .split("booted in ")
            .nth(1)
            .unwrap_or("?")
            .trim()
            .to_owned();
        eprintln!(
            "demo: nic{i} ({}) ready: booted in {booted} of emulated time, {:.0} ms wall clock",
            Ipv4Address(NIC_IPS[i]).0.map(|b| b.to_string()).join("."),
            started.elapsed().as_secs_f64() * 1000.0
        );
    }

    let nodes = vec![
        Node {
            name: "nic0 kvs".into(),
            ip: Ipv4Address(NIC_IPS[0]),
            port: NIC_KVS_PORT,
        },
        Node {
            name: "nic1 kvs".into(),
            ip: Ipv4Address(NIC_IPS[1]),
            port: NIC_KVS_PORT,
        },
        Node {
            name: "host kvs".into(),
            ip: HOST_IP,
            port: HOST_KVS_PORT,
        },
    ];
    let mut slots: Vec<Slot> = (0..nodes.len() * args.window)
        .map(|index| Slot {
            node: index / args.window,
            client: client(index),
            sent: 0,
            in_flight: None,
        })
        .collect();
    write_keys(&rack, &nodes, &slots)?;
    drive(&rack, &nodes, &mut slots, &args)?;
    let stats = host.shutdown()?;
    let per_nic: Vec<String> = stats
        .nics
        .iter()
        .enumerate()
        .map(|(i, n)| {
            format!(
                "nic{i} {} requests, {} replies, {} refused",
                n.requests,
                n.replies,
                n.malformed + n.no_service + n.channel_refused
            )
        })
        .collect();
    let served: u64 = stats.workers.iter().map(|w| w.requests).sum();
    eprintln!(
        "demo: the host-lib node answered {served} requests over the two PCIe channels ({})",
        per_nic.join("; ")
    );
    Ok(())
}

fn nic_config(ip: [u8; 4]) -> BootConfig {
    let mut services = heapless::Vec::new();
    let _ = services.push(ServiceBinding {
        kind: ServiceKind::Kvs,
        udp_port: NIC_KVS_PORT,
    });
    let _ = services.push(ServiceBinding {
        kind: ServiceKind::Count,
        udp_port: 7001,
    });
    BootConfig {
        nic_ip: ip.into(),
        host_ip: HOST_IP.0.into(),
        mac: None,
        cores: None,
        services,
        agent_port: None,
        controller: None,
        gateway_mac: None,
    }
}

/// The client of slot `slot`: its UDP port names the slot (and makes it its own flow).
fn client(slot: usize) -> Station {
    Station {
        mac: MacAddress([0x02, 0, 0, 0, 0xde, 0x01]),
        ip: Ipv4Address([10, 0, 9, 1]),
        port: 20_000 + slot as u16,
    }
}

/// Every slot writes its keys through the switch, one PUT at a time, each answer checked; and
/// says which NIC each host flow goes through.
fn write_keys(rack: &Rack, nodes: &[Node], slots: &[Slot]) -> Result<()> {
    let mut host_flows: BTreeMap<usize, usize> = BTreeMap::new();
    for (index, slot) in slots.iter().enumerate() {
        let node = &nodes[slot.node];
        for n in 0..u64::from(KEYS_PER_SLOT) {
            let (key, value) = key_value(index, n);
            let routed = rack.request(
                slot.client,
                (node.ip, node.port),
                &kvs::put(&key, &value),
                SETUP_TIMEOUT,
            )?;
            let (_, reply) = routed.reply.with_context(|| {
                format!(
                    "{}: no answer to the PUT of {} ({:?})",
                    node.name,
                    String::from_utf8_lossy(&key),
                    routed.forwarded
                )
            })?;
            if reply.payload.first() != Some(&0) {
                bail!("{}: a PUT was refused: {:?}", node.name, reply.payload);
            }
            if let (Forwarded::Sent(hop), true) = (routed.forwarded, node.ip == HOST_IP) {
                if n == 0 {
                    *host_flows.entry(hop.port).or_default() += 1;
                }
            }
        }
    }
    let via: Vec<String> = host_flows
        .iter()
        .map(|(port, flows)| format!("{flows} through switch port {port}"))
        .collect();
    println!(
        "each slot wrote its {KEYS_PER_SLOT} keys; host flows by the switch's ECMP hash: {}",
        via.join(", ")
    );
    Ok(())
}

/// Sends the request stream for `args.seconds` and prints the table every second.
fn drive(rack: &Rack, nodes: &[Node], slots: &mut [Slot], args: &Args) -> Result<()> {
    let mut tallies: Vec<Tally> = nodes.iter().map(|_| Tally::default()).collect();
    let start = Instant::now();
    let end = start + Duration::from_secs(args.seconds);
    let mut next_table = start + Duration::from_secs(1);
    let mut interval_start = start;
    let live = std::io::stdout().is_terminal();
    println!(
        "two emulated NICs ({} cores each) and a host; {} requests in flight per node; {} s",
        args.cores, args.window, args.seconds
    );
    let mut lines_printed = 0;
    while Instant::now() < end {
        // Every free slot sends its next GET; a request unanswered too long is lost.
        for (index, slot) in slots.iter_mut().enumerate() {
            if slot
                .in_flight
                .is_some_and(|sent| sent.elapsed() > LOST_AFTER)
            {
                tallies[slot.node].lost += 1;
                slot.in_flight = None;
            }
            if slot.in_flight.is_some() {
                continue;
            }
            let node = &nodes[slot.node];
            let (key, _) = key_value(index, slot.sent);
            let server = Station {
                mac: rack.switch.mac(),
                ip: node.ip,
                port: node.port,
            };
            slot.sent += 1;
            match rack
                .switch
                .forward(&frames::udp(slot.client, server, &kvs::get(&key)))?
            {
                Forwarded::Sent(_) => slot.in_flight = Some(Instant::now()),
                // Dropped by the switch: counted lost at once, the slot moves on.
                _ => tallies[slot.node].lost += 1,
            }
        }
        // Collect the answers waiting on every port.
        let mut got_any = false;
        while let Some((_, frame)) = rack.switch.receive(Duration::ZERO, |_, _| true) {
            got_any = true;
            let Some(reply) = frames::parse_udp(&frame) else {
                continue;
            };
            let Some(index) = reply.destination.1.checked_sub(20_000).map(usize::from) else {
                continue;
            };
            let Some(slot) = slots.get_mut(index) else {
                continue;
            };
            let tally = &mut tallies[slot.node];
            // The answer must read the key of the request in flight: GET answers carry
            // `status, version, vlen, value`, and the value names the key.
            let (_, expected) = key_value(index, slot.sent.wrapping_sub(1));
            let answers_this = reply.payload.first() == Some(&0)
                && reply.payload.len() == 11 + expected.len()
                && reply.payload[11..] == expected[..];
            match (slot.in_flight, answers_this) {
                (Some(sent), true) => {
                    tally.answered += 1;
                    tally.latencies_us.push(sent.elapsed().as_micros() as u64);
                    slot.in_flight = None;
                }
                // An error status carries no value, so it cannot say which request it
                // answers: it is counted, and completes nothing.
                _ if reply.payload.len() == 1 => tally.errors += 1,
                _ => tally.late += 1,
            }
        }
        if !got_any {
            std::thread::yield_now();
        }
        if Instant::now() >= next_table {
            let seconds = interval_start.elapsed().as_secs_f64();
            if live && lines_printed > 0 {
                // Redraw the table in place.
                print!("\x1b[{lines_printed}A");
            }
            lines_printed = print_table(start.elapsed(), seconds, nodes, &mut tallies, live)?;
            interval_start = Instant::now();
            next_table += Duration::from_secs(1);
        }
    }
    Ok(())
}

/// Prints one table of the interval's figures, then clears the tallies; returns the line count.
fn print_table(
    elapsed: Duration,
    seconds: f64,
    nodes: &[Node],
    tallies: &mut [Tally],
    live: bool,
) -> Result<usize> {
    let mut out = std::io::stdout().lock();
    // On a terminal each line also clears what a previous, longer table left behind.
    let clear = if live { "\x1b[K" } else { "" };
    writeln!(
        out,
        "t={:>3} s  {:<10} {:>10} {:>10} {:>10} {:>8} {:>6} {:>6}{clear}",
        elapsed.as_secs(),
        "node",
        "req/s",
        "p50 us",
        "p99 us",
        "errors",
        "lost",
        "late"
    )?;
    for (node, tally) in nodes.iter().zip(tallies.iter_mut()) {
        tally.latencies_us.sort_unstable();
        let quantile = |q: f64| -> String {
            if tally.latencies_us.is_empty() {
                return "-".into();
            }
            let index = ((tally.latencies_us.len() - 1) as f64 * q).round() as usize;
            tally.latencies_us[index].to_string()
        };
        writeln!(
            out,
            "         {:<10} {:>10.0} {:>10} {:>10} {:>8} {:>6} {:>6}{clear}",
            node.name,
            tally.answered as f64 / seconds,
            quantile(0.50),
            quantile(0.99),
            tally.errors,
            tally.lost,
            tally.late
        )?;
        *tally = Tally::default();
    }
    out.flush()?;
    Ok(nodes.len() + 1)
}
