//! What each core does once the board is up: build the NIC runtime, then run its
//! run-to-completion loop on every core, sleeping when there is nothing to do.
//!
//! Every core polls (the runtime lets whichever core is free receive from a port, steers each
//! frame to a core queue and steals from the busiest queue when idle). A core that found no work
//! for a while sleeps in WFI with its timer armed, so idle emulated cores leave the host's CPUs
//! alone: core 0 wakes on the ports' interrupts, the others on a wake-up SGI that core 0 sends
//! when it queued work for a sleeping core, and every core on its timer.

#![cfg(target_os = "none")]

use alloc::boxed::Box;
use alloc::vec::Vec;
use core::arch::asm;
use core::fmt;
use core::sync::atomic::{AtomicBool, Ordering};

use log::{error, info, warn};
use nic_firmware::accel::{self, CpuFeatures, NicEngines};
use nic_firmware::agent::{AgentConfig, DeployCounts};
use nic_firmware::boot_config::{BootConfig, BootService};
use nic_firmware::counters::CounterTotals;
use nic_firmware::demux::Addresses;
use nic_firmware::platform::MAX_PORTS;
use nic_firmware::wire::{ArpOperation, ArpRepr, EtherType, EthernetRepr, Ipv4Address, MacAddress};
use nic_firmware::{Config, Runtime, RuntimeError};
use spin::Once;

use super::board::QemuVirt;
use super::cores::MAX_CORES;
use super::host_link::{self, HostLink};
use super::virtio_net::{self, Counter, InterruptLines, Port, PortCounters};
use super::{gic, timer};

/// Empty polls before a core sleeps.
const SPIN_PASSES: u32 = 16;
/// Longest sleep: periodic work (queue-depth samples, stealing) never waits longer.
const MAX_SLEEP_NS: u64 = 1_000_000;
/// How often core 0 prints the counters on the UART (when they changed).
const REPORT_PERIOD_NS: u64 = 500_000_000;
/// How often core 0 beats the channel heartbeat and checks the host's.
const CHANNEL_TICK_NS: u64 = 10_000_000;

static ENGINES: Once<NicEngines> = Once::new();
/// The runtime, on the heap for the life of the firmware (built there, not on the boot stack).
static RUNTIME: Once<&'static Runtime<QemuVirt>> = Once::new();
/// Which cores are (about to be) asleep in WFI.
static SLEEPING: [AtomicBool; MAX_CORES] = [const { AtomicBool::new(false) }; MAX_CORES];

/// Sleeps until an interrupt (a frame, a wake-up) or `timeout_ns` passes. The sources are
/// quietened before the GIC is drained: the timer is disarmed and, on core 0, the ports'
/// level-triggered lines acknowledged, or they would be pending again at once.
fn idle(timeout_ns: u64, lines: Option<&InterruptLines>) {
    timer::arm(timer::ticks() + timer::ns_to_ticks(timeout_ns));
    // SAFETY: WFI only waits; interrupts are masked in PSTATE, so no handler runs when it ends.
    unsafe { asm!("dsb sy", "wfi", options(nomem, nostack)) };
    timer::disarm();
    if let Some(lines) = lines {
        lines.acknowledge();
    }
    gic::acknowledge_all();
}

/// Announces the NIC's IP on every port with a gratuitous ARP request (RFC 5227), so the
/// switch learns which port the address lives behind.
pub fn announce(ports: &mut [Box<Port>], ip: Ipv4Address) {
    for port in ports.iter_mut() {
        let mac = MacAddress(port.mac());
        let mut frame = [0u8; 60];
        let ethernet = EthernetRepr {
            source: mac,
            destination: MacAddress([0xff; 6]),
            ethertype: EtherType::Arp,
        };
        let arp = ArpRepr {
            operation: ArpOperation::Request,
            sender_mac: mac,
            sender_ip: ip,
            target_mac: MacAddress([0; 6]),
            target_ip: ip,
        };
        let sent = ethernet
            .emit(&mut frame)
            .ok()
            .and_then(|payload| arp.emit(payload).ok())
            .map(|_| port.transmit(&frame));
        if !matches!(sent, Some(Ok(()))) {
            warn!("could not announce {ip:?} on a port");
        }
    }
}

/// Builds the runtime over the ports and publishes it to every core.
pub fn start(
    config: &BootConfig,
    services: Vec<BootService>,
    ports: heapless::Vec<Box<Port>, MAX_PORTS>,
    host: HostLink,
    cores: usize,
) -> Result<&'static Runtime<QemuVirt>, RuntimeError> {
    // SAFETY: the firmware runs at EL1, where ID registers are readable, and every core of the
    // board is the same model (QEMU's `-cpu` applies to all of them).
    let features = unsafe { CpuFeatures::detect() };
    // Each hardware engine runs its known-answer tests alone; one that fails is replaced by
    // its software engine, so services get right answers either way.
    let (selected, report) = accel::tested_engines(features);
    let engines = ENGINES.call_once(|| selected);
    if report.passed() {
        info!("engines: {report}");
    } else {
        error!("engines: {report}");
    }
    // The runtime takes each port's MAC from the port itself (`Port::mac`).
    let addresses = Addresses {
        nic_ip: Ipv4Address(config.nic_ip.octets()),
        host_ip: Some(Ipv4Address(config.host_ip.octets())),
    };
    let mut runtime_config = Config::new(addresses, engines);
    runtime_config.services = services;
    runtime_config.gateway_mac = config.gateway_mac.map(MacAddress);
    runtime_config.agent = config.agent_port.map(|port| {
        let mut agent = AgentConfig::new(u16::from(config.nic_ip.octets()[3]), port);
        agent.controller = config.controller_endpoint();
        agent.free_memory = Some(super::heap::free);
        info!(
            "agent on UDP port {port}, heartbeats to {:?}",
            config.controller
        );
        agent
    });
    let runtime = Runtime::new_boxed(runtime_config, QemuVirt::new(ports, host, cores))?;
    Ok(RUNTIME.call_once(|| Box::leak(runtime)))
}

/// Core 0's loop.
pub fn primary(lines: InterruptLines) -> ! {
    serve(0, Some(&lines))
}

/// The loop of cores 1.. : wait for core 0 to publish the runtime, then serve.
pub fn secondary(core: usize) -> ! {
    while RUNTIME.get().is_none() {
        idle(MAX_SLEEP_NS, None);
    }
    serve(core, None)
}

fn serve(id: usize, lines: Option<&InterruptLines>) -> ! {
    let Some(&runtime) = RUNTIME.get() else {
        halt(id, &"no runtime")
    };
    let mut core = match runtime.core(id) {
        Ok(core) => core,
        Err(e) => halt(id, &e),
    };
    let mut quiet = 0u32;
    let mut report = (id == 0).then(Report::default);
    loop {
        if let Some(report) = report.as_mut() {
            report.tick(runtime);
        }
        let mut moved = core.poll();
        if moved == 0 {
            quiet += 1;
            if quiet < SPIN_PASSES {
                core::hint::spin_loop();
                continue;
            }
            quiet = 0;
            // Publish "asleep" before the last look for work; core 0 reads it after queueing
            // work (SeqCst on both sides), so either this look sees the work or core 0 sees the
            // flag and sends the wake-up.
            SLEEPING[id].store(true, Ordering::SeqCst);
            if let Some(lines) = lines {
                lines.acknowledge();
            }
            moved = core.poll();
            if moved == 0 {
                idle(MAX_SLEEP_NS, lines);
            }
            SLEEPING[id].store(false, Ordering::SeqCst);
        }
        if moved > 0 && id == 0 {
            wake_sleepers(runtime);
        }
    }
}

/// Core 0's periodic counters line on the UART (docs/firmware.md, "Counters on the UART"):
/// `counters: rx=.. tx=.. served=.. to_host=.. from_host=.. arp=.. echo=.. dropped=..
/// channel=up|disconnected|failed|none channel_rejected=.. channel_corrupt=.. deployed=..
/// deploy_no_memory=.. deploy_refused=.. portN_rx=.. portN_tx=.. portN_tx_ring_full=..
/// portN_tx_too_long=.. portN_rx_errors=.. portN_rx_oversized=.. portN_unknown_tokens=..
/// portN_resets=..` (for every port N) followed by ` | REASON=COUNT` for every drop reason seen.
#[derive(Default)]
struct Report {
    next_ns: u64,
    next_channel_ns: u64,
    last: Option<Totals>,
}

/// What one counters line prints: the runtime's counters, the channel's state and refusals,
/// the agent's deploys, each port's counters.
type Totals = (
    CounterTotals,
    &'static str,
    (u64, u64),
    DeployCounts,
    heapless::Vec<PortCounters, MAX_PORTS>,
);

impl Report {
    fn tick(&mut self, runtime: &Runtime<QemuVirt>) {
        let now = timer::now_ns();
        if now >= self.next_channel_ns {
            self.next_channel_ns = now + CHANNEL_TICK_NS;
            host_link::tick(now);
        }
        if now < self.next_ns {
            return;
        }
        self.next_ns = now + REPORT_PERIOD_NS;
        let current = (
            runtime.counters(),
            host_link::state(),
            runtime.with_host_path(|path| host_link::refused(path)),
            runtime
                .agent()
                .map(|agent| agent.deploy_counts())
                .unwrap_or_default(),
            virtio_net::counters(),
        );
        if self.last.as_ref() == Some(&current) {
            return;
        }
        info!("{}", CountersLine(&current));
        self.last = Some(current);
    }
}

struct CountersLine<'a>(&'a Totals);

impl fmt::Display for CountersLine<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let (c, channel, (rejected, corrupt), deploys, ports) = self.0;
        write!(
            f,
            "counters: rx={} tx={} served={} to_host={} from_host={} arp={} echo={} dropped={} \
             channel={channel} channel_rejected={rejected} channel_corrupt={corrupt} \
             deployed={} deploy_no_memory={} deploy_refused={}",
            c.rx_frames.iter().sum::<u64>(),
            c.tx_frames.iter().sum::<u64>(),
            c.service_requests,
            c.to_host,
            c.from_host,
            c.arp_replies,
            c.echo_replies,
            c.total_dropped(),
            deploys.deployed,
            deploys.no_memory,
            deploys.refused
        )?;
        for (index, port) in ports.iter().enumerate() {
            for (counter, value) in Counter::ALL.iter().zip(port) {
                write!(f, " port{index}_{}={value}", counter.name())?;
            }
        }
        for (reason, count) in c.nonzero_drops() {
            write!(f, " | {reason}={count}")?;
        }
        Ok(())
    }
}

/// Wakes every sleeping core that has work queued.
fn wake_sleepers(runtime: &Runtime<QemuVirt>) {
    let tm = runtime.traffic_manager();
    for (core, sleeping) in SLEEPING.iter().enumerate().take(tm.cores()).skip(1) {
        if sleeping.load(Ordering::SeqCst) && tm.depth(core) > 0 {
            gic::wake(core);
        }
    }
}

fn halt(id: usize, why: &dyn core::fmt::Display) -> ! {
    error!("core {id} cannot serve: {why}");
    loop {
        idle(u64::MAX / 4, None);
    }
}
