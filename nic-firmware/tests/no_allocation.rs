//! No allocation on the packet path after start-up: a counting global allocator watches the
//! thread that polls the cores while the software NIC serves every kind of frame (KVS and
//! Count requests, ARP for the NIC and the host, ping, TCP resets, the host path both ways,
//! heartbeats to the controller, malformed and misaddressed frames, and under flow-affine
//! steering a hot flow whose excess is dropped), after one warm-up pass of the same traffic.
//! Only the packet path is watched: the agent's commands (deploy, snapshot, restore) are the
//! control path and allocate.

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;
use std::sync::atomic::{AtomicU64, Ordering};

use microservices::engines::SoftwareEngines;
use microservices::services::count::{self, Count, CountConfig};
use microservices::services::kvs::{self, Kvs, KvsConfig};
use microservices::ServiceId;
use nic_firmware::agent::AgentConfig;
use nic_firmware::counters::DropReason;
use nic_firmware::demux::Addresses;
use nic_firmware::platform::host::{HostEnd, SoftwareBoard, Wire};
use nic_firmware::platform::{DatagramMeta, Endpoint};
use nic_firmware::testing::{request_to_nic as to_nic, udp_frame};
use nic_firmware::tm::steering::{self, Steering};
use nic_firmware::wire::fixtures;
use nic_firmware::{Config, Runtime};

struct Counting;

static ALLOCATIONS: AtomicU64 = AtomicU64::new(0);

std::thread_local! {
    /// Whether this thread's allocations are counted.
    static WATCHED: Cell<bool> = const { Cell::new(false) };
}

// SAFETY: every call is passed to the system allocator unchanged; the counter only observes.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        if WATCHED.with(Cell::get) {
            ALLOCATIONS.fetch_add(1, Ordering::Relaxed);
        }
        // SAFETY: the caller's contract for `alloc` is passed on as it is.
        unsafe { System.alloc(layout) }
    }

    unsafe fn realloc(&self, pointer: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        if WATCHED.with(Cell::get) {
            ALLOCATIONS.fetch_add(1, Ordering::Relaxed);
        }
        // SAFETY: the caller's contract for `realloc` is passed on as it is.
        unsafe { System.realloc(pointer, layout, new_size) }
    }

    unsafe fn dealloc(&self, pointer: *mut u8, layout: Layout) {
        // SAFETY: the caller's contract for `dealloc` is passed on as it is.
        unsafe { System.dealloc(pointer, layout) }
    }
}

#[global_allocator]
static ALLOCATOR: Counting = Counting;

/// Allocations this thread makes while `run` runs.
fn allocations_in(run: impl FnOnce()) -> u64 {
    let before = ALLOCATIONS.load(Ordering::Relaxed);
    WATCHED.with(|watched| watched.set(true));
    run();
    WATCHED.with(|watched| watched.set(false));
    ALLOCATIONS.load(Ordering::Relaxed) - before
}

const KVS_PORT: u16 = 7001;
const COUNT_PORT: u16 = 7002;
const HOST_PORT: u16 = 9000;
const CONTROLLER: Endpoint = Endpoint::new(fixtures::PEER_IP, 6000);
const CORES: usize = 2;

struct Nic {
    runtime: Runtime<SoftwareBoard>,
    wire: Wire,
    host: HostEnd,
}

fn nic(steering: Steering) -> Nic {
    let addresses = Addresses {
        nic_ip: fixtures::NIC_IP,
        host_ip: Some(fixtures::HOST_IP),
    };
    let kvs = Kvs::new(ServiceId(1), KvsConfig::default());
    let count = Count::new(ServiceId(2), CountConfig { items: 1024 });
    let mut config = Config::new(addresses, &SoftwareEngines)
        .with_service(KVS_PORT, Box::new(kvs))
        .with_service(COUNT_PORT, Box::new(count));
    config.steering = steering;
    config.gateway_mac = Some(fixtures::PEER_MAC);
    let mut agent = AgentConfig::new(1, 7000);
    agent.controller = Some(CONTROLLER);
    agent.heartbeat_interval_ns = 200_000;
    config.agent = Some(agent);
    let (board, mut wires, host) = SoftwareBoard::new(CORES, &[fixtures::NIC_MAC], 2048);
    let runtime = Runtime::new(config, board).expect("runtime starts");
    Nic {
        runtime,
        wire: wires.remove(0),
        host,
    }
}

/// One pass of every kind of frame the packet path handles, built before anything is watched.
fn traffic(round: u32) -> Vec<Vec<u8>> {
    let mut frames = Vec::new();
    for i in 0..40u32 {
        let key = format!("key-{round}-{i}");
        frames.push(to_nic(
            40000,
            KVS_PORT,
            &kvs::request::put(key.as_bytes(), b"value"),
        ));
        frames.push(to_nic(40001, KVS_PORT, &kvs::request::get(key.as_bytes())));
        frames.push(to_nic(
            40002 + i as u16,
            COUNT_PORT,
            &count::request::add(&[i, 7]),
        ));
    }
    frames.push(to_nic(40003, COUNT_PORT, &count::request::get(&[7])));
    frames.push(fixtures::ARP_REQUEST_FRAME.to_vec());
    let mut arp_for_host = fixtures::ARP_REQUEST_FRAME;
    arp_for_host[38..42].copy_from_slice(&fixtures::HOST_IP.0);
    frames.push(arp_for_host.to_vec());
    frames.push(fixtures::ICMP_ECHO_REQUEST_FRAME.to_vec());
    frames.push(fixtures::TCP_SYN_FRAME.to_vec());
    frames.push(fixtures::UDP_TO_HOST_FRAME.to_vec());
    frames.push(udp_frame(
        fixtures::PEER_MAC,
        fixtures::NIC_MAC,
        CONTROLLER,
        Endpoint::new(fixtures::HOST_IP, HOST_PORT),
        b"from the controller, for the host",
    ));
    // Drops: a closed port, a bad checksum, a truncated frame, another MAC, another IP, an
    // unknown EtherType.
    frames.push(to_nic(40004, 7999, b"nobody listens"));
    let mut bad_checksum = fixtures::UDP_REQUEST_FRAME;
    bad_checksum[24] ^= 0xff;
    frames.push(bad_checksum.to_vec());
    frames.push(fixtures::UDP_REQUEST_FRAME[..20].to_vec());
    let mut other_mac = fixtures::UDP_REQUEST_FRAME;
    other_mac[0] ^= 2;
    frames.push(other_mac.to_vec());
    frames.push(udp_frame(
        fixtures::PEER_MAC,
        fixtures::NIC_MAC,
        Endpoint::new(fixtures::PEER_IP, 40005),
        Endpoint::new(fixtures::PEER_IP, 40006),
        b"not ours",
    ));
    let mut ipv6 = fixtures::UDP_REQUEST_FRAME;
    ipv6[12..14].copy_from_slice(&[0x86, 0xdd]);
    frames.push(ipv6.to_vec());
    frames
}

/// A burst of one flow well past what a core queue holds, on core 0 under flow-affine
/// steering (which `Nic::serve` leaves idle for a while), for the hold-back and drop paths.
fn hot_flow() -> Vec<Vec<u8>> {
    let request = |client: u16, i: u32| to_nic(client, COUNT_PORT, &count::request::add(&[i]));
    let client = (41000..)
        .find(|&client| (steering::flow_hash(&request(client, 0)) as usize).is_multiple_of(CORES))
        .expect("a flow on core 0");
    (0..300).map(|i| request(client, i)).collect()
}

impl Nic {
    /// The sequence number of the agent's last heartbeat.
    fn last_heartbeat(&self) -> Option<u16> {
        let agent = self.runtime.agent().expect("an agent");
        agent.last_heartbeat().map(|beat| beat.sequence)
    }

    /// Sends `frames` and serves them, taking everything the NIC sends or forwards, and the
    /// host's answers back through the NIC; polls until a heartbeat has been sent, too.
    /// Returns how many frames left on the wire.
    fn serve(&self, frames: &[Vec<u8>], host_answer: &[u8]) -> usize {
        let mut cores: [_; CORES] = std::array::from_fn(|id| self.runtime.core(id).unwrap());
        let beats = self.last_heartbeat();
        let mut out = 0;
        let mut pending = frames.iter();
        loop {
            for frame in pending.by_ref().take(64) {
                assert!(self.wire.send(frame));
            }
            // Only core 1 runs for a while, so that core 0's queue fills (flow-affine) or is
            // stolen from (round-robin).
            for _ in 0..4 {
                cores[1].poll();
            }
            let mut work = 0;
            for core in cores.iter_mut() {
                work += core.poll();
            }
            out += self.wire.from_nic.pop_with(usize::MAX, |(), _| true);
            let mut answers = [DatagramMeta::default(); 8];
            let mut forwarded = 0;
            self.host.to_host.pop_with(answers.len(), |meta, _| {
                answers[forwarded] = meta;
                forwarded += 1;
                true
            });
            for meta in &answers[..forwarded] {
                assert!(self.host.send(*meta, host_answer));
            }
            let beat = self.last_heartbeat();
            let beaten = beat.is_some() && beat != beats;
            if work == 0 && forwarded == 0 && pending.len() == 0 && beaten {
                return out;
            }
        }
    }
}

fn check(steering: Steering) {
    let nic = nic(steering);
    let hot = hot_flow();
    let host_answer = b"the host's answer".to_vec();
    // Warm-up: the same kinds of traffic once (first use of every table and queue).
    nic.serve(&traffic(0), &host_answer);
    nic.serve(&hot, &host_answer);
    let before = nic.runtime.counters();
    let (first, second) = (traffic(1), traffic(2));
    let mut sent = 0;
    let allocations = allocations_in(|| {
        sent += nic.serve(&first, &host_answer);
        sent += nic.serve(&hot, &host_answer);
        sent += nic.serve(&second, &host_answer);
    });
    let after = nic.runtime.counters();
    let delta = |f: fn(&nic_firmware::counters::CounterTotals) -> u64| f(&after) - f(&before);
    // Everything in the traffic was really exercised while watched.
    assert!(delta(|c| c.service_requests) > 2 * 121, "{steering:?}");
    assert_eq!(delta(|c| c.arp_replies), 4);
    assert_eq!(delta(|c| c.echo_replies), 2);
    assert_eq!(delta(|c| c.tcp_resets), 2);
    assert_eq!(delta(|c| c.to_host), 4);
    assert_eq!(delta(|c| c.from_host), 4);
    for reason in [
        DropReason::PortClosed,
        DropReason::NotOurMac,
        DropReason::NotOurAddress,
        DropReason::UnknownEtherType,
    ] {
        assert_eq!(
            after.dropped(reason) - before.dropped(reason),
            2,
            "{reason}"
        );
    }
    if steering == Steering::FlowAffine {
        let refused =
            |c: &nic_firmware::counters::CounterTotals| c.dropped(DropReason::CoreQueueFull);
        assert!(
            refused(&after) > refused(&before),
            "the hot flow's excess was dropped"
        );
    }
    if steering == Steering::RoundRobin {
        assert!(after.stolen > before.stolen, "idle cores stole");
    }
    assert!(sent > 0);
    assert_eq!(
        allocations, 0,
        "{steering:?}: the packet path allocated {allocations} times"
    );
}

/// One test only: the allocator's counter is process-wide.
#[test]
fn the_packet_path_never_allocates_after_start_up() {
    check(Steering::RoundRobin);
    check(Steering::FlowAffine);
}
