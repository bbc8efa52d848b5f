//! `cargo xtask demo`: the main job, first version. Boots two emulated SmartNICs and a host
//! process, plays the top-of-rack switch and a client population, sends a stream of requests to
//! the services on each NIC and on the host (reached through either NIC by ECMP), and prints a
//! live table of requests/s and p50/p99 latency per node.

use std::collections::HashMap;
use std::io::{IsTerminal, Write};
use std::time::{Duration, Instant};

use anyhow::{bail, Result};
use e3_tests::firmware::{self, Board};
use e3_tests::frames::{self, Station};
use e3_tests::host::HostSide;
use e3_tests::qemu;
use e3_tests::rack::{NicPlan, Rack};
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
    /// Requests in flight per node (closed loop).
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
/// A request unanswered for this long is counted lost and its slot reused.
const LOST_AFTER: Duration = Duration::from_secs(1);

/// A node of the demo: where its requests go.
struct Node {
    name: String,
    /// The switch port for each request, by ECMP over these NICs.
    via: Vec<usize>,
    ip: Ipv4Address,
    port: u16,
}

/// One in-flight request.
struct Slot {
    node: usize,
    sent: Instant,
}

#[derive(Default)]
struct Tally {
    latencies_us: Vec<u64>,
    answered: u64,
    errors: u64,
    lost: u64,
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
            via: vec![rack.nics[0].switch_ports[0]],
            ip: Ipv4Address(NIC_IPS[0]),
            port: NIC_KVS_PORT,
        },
        Node {
            name: "nic1 kvs".into(),
            via: vec![rack.nics[1].switch_ports[0]],
            ip: Ipv4Address(NIC_IPS[1]),
            port: NIC_KVS_PORT,
        },
        Node {
            name: "host kvs".into(),
            via: vec![rack.nics[0].switch_ports[0], rack.nics[1].switch_ports[0]],
            ip: HOST_IP,
            port: HOST_KVS_PORT,
        },
    ];
    let macs: HashMap<usize, MacAddress> = rack
        .nics
        .iter()
        .map(|n| (n.switch_ports[0], n.mac(0)))
        .collect();
    drive(&rack, &nodes, &macs, &args)?;
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

/// The client of in-flight slot `slot`: its UDP port names the slot.
fn client(slot: usize) -> Station {
    Station {
        mac: MacAddress([0x02, 0, 0, 0, 0xde, 0x01]),
        ip: Ipv4Address([10, 0, 9, 1]),
        port: 20_000 + slot as u16,
    }
}

/// The ECMP choice among `n` ports for a client port (what a switch hashes the 5-tuple for).
fn ecmp(client_port: u16, request: u64, n: usize) -> usize {
    let mut hash = 0xcbf2_9ce4_8422_2325u64;
    for byte in client_port
        .to_be_bytes()
        .into_iter()
        .chain(request.to_le_bytes())
    {
        hash = (hash ^ u64::from(byte)).wrapping_mul(0x0100_0000_01b3);
    }
    (hash % n as u64) as usize
}

/// Sends the request stream for `args.seconds` and prints the table every second.
fn drive(
    rack: &Rack,
    nodes: &[Node],
    macs: &HashMap<usize, MacAddress>,
    args: &Args,
) -> Result<()> {
    let slots_total = nodes.len() * args.window;
    let mut slots: Vec<Option<Slot>> = (0..slots_total).map(|_| None).collect();
    let mut tallies: Vec<Tally> = nodes.iter().map(|_| Tally::default()).collect();
    let mut counter = 0u64;
    let mut per_node = vec![0u64; nodes.len()];
    let ports: Vec<usize> = {
        let mut p: Vec<usize> = nodes.iter().flat_map(|n| n.via.clone()).collect();
        p.sort_unstable();
        p.dedup();
        p
    };
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
        // Fill every free slot with a new request.
        for (index, slot) in slots.iter_mut().enumerate() {
            let stale = slot.as_ref().is_some_and(|s| s.sent.elapsed() > LOST_AFTER);
            if stale {
                if let Some(s) = slot.take() {
                    tallies[s.node].lost += 1;
                }
            }
            if slot.is_some() {
                continue;
            }
            let node_index = index / args.window;
            let node = &nodes[node_index];
            counter += 1;
            // Per node: PUT key n, then GET it, then PUT key n + 1, ... over 64 keys.
            per_node[node_index] += 1;
            let n = per_node[node_index];
            let key = format!("key-{}", (n / 2) % 64);
            let request = if n % 2 == 1 {
                kvs::put(key.as_bytes(), b"demo value")
            } else {
                kvs::get(format!("key-{}", ((n - 1) / 2) % 64).as_bytes())
            };
            let client = client(index);
            let port = node.via[ecmp(client.port, counter, node.via.len())];
            let server = Station {
                mac: macs[&port],
                ip: node.ip,
                port: node.port,
            };
            if rack
                .switch
                .port(port)
                .send(&frames::udp(client, server, &request))?
            {
                *slot = Some(Slot {
                    node: node_index,
                    sent: Instant::now(),
                });
            }
        }
        // Collect replies.
        let mut got_any = false;
        for &port in &ports {
            while let Some(frame) = rack.switch.port(port).try_recv() {
                got_any = true;
                let Some(reply) = frames::parse_udp(&frame) else {
                    continue;
                };
                let Some(index) = reply.destination.1.checked_sub(20_000) else {
                    continue;
                };
                let Some(slot) = slots.get_mut(usize::from(index)).and_then(Option::take) else {
                    continue;
                };
                let tally = &mut tallies[slot.node];
                tally.answered += 1;
                if reply.payload.first() != Some(&0) {
                    tally.errors += 1;
                }
                tally
                    .latencies_us
                    .push(slot.sent.elapsed().as_micros() as u64);
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
        "t={:>3} s  {:<10} {:>10} {:>10} {:>10} {:>8} {:>6}{clear}",
        elapsed.as_secs(),
        "node",
        "req/s",
        "p50 us",
        "p99 us",
        "errors",
        "lost"
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
            "         {:<10} {:>10.0} {:>10} {:>10} {:>8} {:>6}{clear}",
            node.name,
            tally.answered as f64 / seconds,
            quantile(0.50),
            quantile(0.99),
            tally.errors,
            tally.lost
        )?;
        *tally = Tally::default();
    }
    out.flush()?;
    Ok(nodes.len() + 1)
}
