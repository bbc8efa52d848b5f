//! The burst path of one core, polled by hand: a burst mixing services, ARP and ICMP is
//! answered in order within every flow; flow-affine steering keeps flows in order across cores;
//! per-service statistics count every request of a burst; a port that refuses frames costs a
//! counted drop per frame; the pool must be large enough for every core.

use microservices::engines::SoftwareEngines;
use microservices::services::count::{self, Count, CountConfig};
use microservices::services::Echo;
use microservices::ServiceId;
use nic_firmware::counters::DropReason;
use nic_firmware::demux::Addresses;
use nic_firmware::platform::host::{SoftwareBoard, Wire};
use nic_firmware::platform::Endpoint;
use nic_firmware::runtime::frames_needed;
use nic_firmware::service_table::Route;
use nic_firmware::testing::{parse_udp_frame, request_to_nic as request};
use nic_firmware::tm::steering::{self, Steering};
use nic_firmware::tm::BURST;
use nic_firmware::wire::fixtures;
use nic_firmware::{Config, Runtime, RuntimeError};

const ECHO_PORT: u16 = 7001;
const COUNT_PORT: u16 = 7002;

fn addresses() -> Addresses {
    Addresses {
        nic_ip: fixtures::NIC_IP,
        host_ip: Some(fixtures::HOST_IP),
    }
}

fn config() -> Config {
    Config::new(addresses(), &SoftwareEngines)
        .with_service(ECHO_PORT, Box::new(Echo::new(ServiceId(1))))
        .with_service(
            COUNT_PORT,
            Box::new(Count::new(ServiceId(2), CountConfig { items: 16 })),
        )
}

fn runtime(config: Config, cores: usize, queue_frames: usize) -> (Runtime<SoftwareBoard>, Wire) {
    let (board, mut wires, _host) = SoftwareBoard::new(cores, &[fixtures::NIC_MAC], queue_frames);
    let runtime = Runtime::new(config, board).expect("runtime starts");
    (runtime, wires.remove(0))
}

fn sent_frames(wire: &Wire) -> Vec<Vec<u8>> {
    std::iter::from_fn(|| wire.from_nic.pop().map(|(_, frame)| frame)).collect()
}

fn slot_of(runtime: &Runtime<SoftwareBoard>, port: u16) -> usize {
    match runtime.services().route(port) {
        Some(Route::Local(slot)) => slot,
        other => panic!("port {port} routed to {other:?}"),
    }
}

#[test]
fn a_mixed_burst_is_answered_in_order_within_every_flow() {
    let (runtime, wire) = runtime(config(), 1, 64);
    let echo = |n: u8| request(40000, ECHO_PORT, &[b'a', b'0' + n]);
    let count_add = |item: u32| request(40001, COUNT_PORT, &count::request::add(&[item]));
    let burst = [
        echo(1),
        count_add(3),
        fixtures::ARP_REQUEST_FRAME.to_vec(),
        echo(2),
        count_add(3),
        fixtures::ICMP_ECHO_REQUEST_FRAME.to_vec(),
        echo(3),
        request(40002, 7999, b"nobody listens"),
    ];
    for frame in &burst {
        assert!(wire.send(frame));
    }
    let mut core = runtime.core(0).unwrap();
    while core.poll() != 0 {}
    drop(core);
    let mut echoes = Vec::new();
    let mut counts = Vec::new();
    let mut others = 0;
    for frame in sent_frames(&wire) {
        match parse_udp_frame(&frame) {
            Some((_, from, to, data)) if from.port == ECHO_PORT => {
                assert_eq!(to, Endpoint::new(fixtures::PEER_IP, 40000));
                echoes.push(data);
            }
            Some((_, from, _, data)) if from.port == COUNT_PORT => counts.push(data),
            _ => others += 1,
        }
    }
    assert_eq!(
        echoes,
        [b"\0a1".to_vec(), b"\0a2".to_vec(), b"\0a3".to_vec()]
    );
    // Count answers ADD with the number of items seen for the first time: 1, then 0.
    assert_eq!(counts, [vec![0, 1, 0], vec![0, 0, 0]]);
    assert_eq!(others, 2, "one ARP reply and one echo reply");
    let counters = runtime.counters();
    assert_eq!(counters.service_requests, 5);
    assert_eq!(counters.dropped(DropReason::PortClosed), 1);
    assert_eq!(counters.total_dropped(), 1);
    assert_eq!(counters.tx_frames[0], 7);
    let echo_stats = runtime
        .services()
        .stats(slot_of(&runtime, ECHO_PORT))
        .unwrap();
    let count_stats = runtime
        .services()
        .stats(slot_of(&runtime, COUNT_PORT))
        .unwrap();
    assert_eq!((echo_stats.requests, echo_stats.errors), (3, 0));
    assert_eq!((count_stats.requests, count_stats.errors), (2, 0));
}

#[test]
fn service_errors_are_answered_and_counted_per_service() {
    let (runtime, wire) = runtime(config(), 1, 64);
    // Item 99 is outside Count's 16 items: an error response, counted as an error.
    for item in [1, 99, 2] {
        wire.send(&request(40001, COUNT_PORT, &count::request::add(&[item])));
    }
    let mut core = runtime.core(0).unwrap();
    while core.poll() != 0 {}
    drop(core);
    let statuses: Vec<u8> = sent_frames(&wire)
        .iter()
        .map(|frame| parse_udp_frame(frame).unwrap().3[0])
        .collect();
    assert_eq!(statuses.len(), 3);
    assert_eq!((statuses[0], statuses[2]), (0, 0));
    assert_ne!(statuses[1], 0);
    let stats = runtime
        .services()
        .stats(slot_of(&runtime, COUNT_PORT))
        .unwrap();
    assert_eq!((stats.requests, stats.errors), (3, 1));
}

/// What [`interleaved_flows`] saw.
struct Interleaved {
    /// The first reply out of its flow's order, if any.
    disorder: Option<String>,
    /// The deepest any core queue was after a poll.
    deepest: usize,
    /// Requests sent.
    sent: usize,
    /// Replies received.
    replies: usize,
    /// Drops counted.
    dropped: u64,
}

/// Three cores polled by hand, `FLOWS_PER_CORE` flows per core (by the flow-affine hash), each
/// flow sending `PER_ROUND` requests a round back to back, all before any core polls. Each round one core
/// is left out and the other two poll twice each, in turn, so the left-out core's queue grows
/// past a burst and the cores run one flow's requests at different times; every reply on the
/// wire is checked to be its flow's next.
fn interleaved_flows(steering: Steering) -> Interleaved {
    const CORES: usize = 3;
    const FLOWS_PER_CORE: usize = 2;
    const PER_ROUND: u8 = 14;
    const ROUNDS: u8 = 12;
    let mut config = config();
    config.steering = steering;
    let (runtime, wire) = runtime(config, CORES, 1024);
    let mut clients = Vec::new();
    for core in 0..CORES {
        for _ in 0..FLOWS_PER_CORE {
            let client = client_on_core(core, CORES, &clients);
            clients.push(client);
        }
    }
    let mut cores: Vec<_> = (0..CORES).map(|id| runtime.core(id).unwrap()).collect();
    let mut next = vec![0u8; clients.len()];
    let mut seen = Interleaved {
        disorder: None,
        deepest: 0,
        sent: 0,
        replies: 0,
        dropped: 0,
    };
    let mut check = |wire: &Wire, seen: &mut Interleaved| {
        for frame in sent_frames(wire) {
            let (_, _, to, data) = parse_udp_frame(&frame).expect("a UDP reply");
            let flow = clients
                .iter()
                .position(|&c| c == to.port)
                .expect("a client");
            let sequence = data[2];
            if sequence != next[flow] && seen.disorder.is_none() {
                seen.disorder = Some(format!(
                    "flow {flow}: reply {sequence} where {} was next",
                    next[flow]
                ));
            }
            next[flow] = sequence.wrapping_add(1);
            seen.replies += 1;
        }
    };
    for round in 0..ROUNDS {
        // A flow's requests of the round back to back, so that a policy that deals frames out
        // in turn spreads each flow over the cores.
        for &client in &clients {
            for n in 0..PER_ROUND {
                let sequence = round * PER_ROUND + n;
                assert!(wire.send(&request(client, ECHO_PORT, &[b'a', sequence])));
                seen.sent += 1;
            }
        }
        let left_out = usize::from(round) % CORES;
        let (a, b) = ((left_out + 1) % CORES, (left_out + 2) % CORES);
        for id in [a, b, a, b] {
            cores[id].poll();
            let tm = runtime.traffic_manager();
            seen.deepest = (0..CORES)
                .map(|c| tm.depth(c))
                .fold(seen.deepest, usize::max);
            check(&wire, &mut seen);
        }
    }
    while cores.iter_mut().map(|core| core.poll()).sum::<usize>() != 0 {}
    check(&wire, &mut seen);
    seen.dropped = runtime.counters().total_dropped();
    seen
}

#[test]
fn flow_affine_steering_keeps_every_flow_in_order_across_interleaved_cores() {
    let seen = interleaved_flows(Steering::FlowAffine);
    assert_eq!(seen.disorder, None);
    assert_eq!(seen.replies, seen.sent);
    assert_eq!(seen.dropped, 0);
    assert!(
        seen.deepest > BURST,
        "the queues were driven past a burst ({} frames at most)",
        seen.deepest
    );
}

#[test]
fn the_order_check_catches_round_robin_reordering_the_same_traffic() {
    // Round-robin spreads each flow over every core (and idle cores steal), so the same
    // traffic comes out of order: the check above can fail.
    let seen = interleaved_flows(Steering::RoundRobin);
    assert_eq!(seen.replies, seen.sent);
    assert!(
        seen.disorder.is_some(),
        "round-robin kept every flow in order"
    );
}

#[test]
fn a_port_that_refuses_frames_costs_one_counted_drop_per_frame() {
    let (runtime, wire) = runtime(config(), 1, 4);
    let mut core = runtime.core(0).unwrap();
    for round in 0..2 {
        for n in 0..4 {
            assert!(wire.send(&request(40000, ECHO_PORT, &[round, n])));
        }
        while core.poll() != 0 {}
    }
    drop(core);
    let counters = runtime.counters();
    assert_eq!(counters.service_requests, 8);
    assert_eq!(counters.tx_frames[0], 4, "the wire held four");
    assert_eq!(counters.dropped(DropReason::TransmitFailed), 4);
    assert_eq!(sent_frames(&wire).len(), 4);
}

#[test]
fn the_pool_must_hold_what_every_core_may_hold() {
    let mut config = config();
    config.frames = frames_needed(2, 1) - 1;
    let (board, _wires, _host) = SoftwareBoard::new(2, &[fixtures::NIC_MAC], 8);
    match Runtime::new(config, board) {
        Err(RuntimeError::TooFewFrames { needed, .. }) => assert_eq!(needed, frames_needed(2, 1)),
        Err(other) => panic!("refused for another reason: {other}"),
        Ok(_) => panic!("started with too few frames"),
    }
}

/// A client port (from 41000 on) whose flow to the echo service lands on `core` of `cores`
/// under flow-affine steering, other than those in `taken`.
fn client_on_core(core: usize, cores: usize, taken: &[u16]) -> u16 {
    (41000..)
        .find(|&client| {
            let flow = steering::flow_hash(&request(client, ECHO_PORT, b""));
            flow as usize % cores == core && !taken.contains(&client)
        })
        .expect("some client port lands on every core")
}

#[test]
fn a_hot_flow_on_a_busy_core_does_not_starve_the_other_cores_flows() {
    let mut config = config();
    config.steering = Steering::FlowAffine;
    let (runtime, wire) = runtime(config, 2, 1024);
    let hot = client_on_core(0, 2, &[]);
    let cold_a = client_on_core(1, 2, &[]);
    let cold_b = client_on_core(1, 2, &[cold_a]);
    // 200 requests of the hot flow, then the cold flows' requests mixed with more hot ones.
    const HOT_FIRST: u16 = 200;
    const MIXED: u16 = 40;
    for n in 0..HOT_FIRST {
        assert!(wire.send(&request(hot, ECHO_PORT, &n.to_be_bytes())));
    }
    for n in 0..MIXED {
        assert!(wire.send(&request(cold_a, ECHO_PORT, &n.to_be_bytes())));
        assert!(wire.send(&request(hot, ECHO_PORT, &(HOT_FIRST + n).to_be_bytes())));
        assert!(wire.send(&request(cold_b, ECHO_PORT, &n.to_be_bytes())));
    }
    // Core 0, the hot flow's, is busy elsewhere and does not poll: only core 1 runs.
    let mut busy = runtime.core(0).unwrap();
    let mut other = runtime.core(1).unwrap();
    while other.poll() != 0 {}
    let replies = |wire: &Wire| -> Vec<(u16, u16)> {
        sent_frames(wire)
            .iter()
            .map(|frame| {
                let (_, _, to, data) = parse_udp_frame(frame).expect("a UDP reply");
                (to.port, u16::from_be_bytes([data[1], data[2]]))
            })
            .collect()
    };
    let served = replies(&wire);
    for cold in [cold_a, cold_b] {
        let sequence: Vec<u16> = served
            .iter()
            .filter(|(client, _)| *client == cold)
            .map(|&(_, n)| n)
            .collect();
        assert_eq!(sequence, (0..MIXED).collect::<Vec<_>>(), "flow {cold}");
    }
    assert!(
        served.iter().all(|(client, _)| *client != hot),
        "core 1 never runs the hot flow"
    );
    let counters = runtime.counters();
    let refused = counters.dropped(DropReason::CoreQueueFull);
    assert!(
        refused > 0,
        "the hot core's excess is dropped, not left blocking the port"
    );
    assert_eq!(counters.total_dropped(), refused);
    // The hot core comes back: what it kept it serves in order.
    while busy.poll() != 0 {}
    let hot_served: Vec<u16> = replies(&wire).iter().map(|&(_, n)| n).collect();
    assert!(
        hot_served.windows(2).all(|pair| pair[0] < pair[1]),
        "the hot flow stays in order: {hot_served:?}"
    );
    assert_eq!(
        hot_served.len() as u64 + refused,
        u64::from(HOT_FIRST + MIXED),
        "every hot request is served or counted"
    );
}

#[test]
fn round_robin_serves_one_flow_evenly_on_every_core() {
    const CORES: usize = 3;
    const REQUESTS: u64 = 900;
    let (runtime, wire) = runtime(config(), CORES, 1024);
    // One flow: flow-affine steering would put it all on one core.
    for n in 0..REQUESTS {
        assert!(wire.send(&request(40000, ECHO_PORT, &n.to_be_bytes())));
    }
    let mut cores: Vec<_> = (0..CORES).map(|id| runtime.core(id).unwrap()).collect();
    while cores.iter_mut().map(|core| core.poll()).sum::<usize>() != 0 {}
    drop(cores);
    assert_eq!(sent_frames(&wire).len() as u64, REQUESTS);
    let per_core: Vec<_> = (0..CORES)
        .map(|core| runtime.core_counters(core).unwrap())
        .collect();
    let served: Vec<u64> = per_core.iter().map(|c| c.service_requests).collect();
    let stolen: u64 = per_core.iter().map(|c| c.stolen).sum();
    assert_eq!(served.iter().sum::<u64>(), REQUESTS);
    let share = REQUESTS / CORES as u64;
    assert!(
        served.iter().all(|&n| n.abs_diff(share) <= share / 10),
        "each core serves its third within 10%: {served:?}"
    );
    // The spread is the steering's, not work stealing evening out a lopsided one.
    assert!(
        stolen <= REQUESTS / 20,
        "{stolen} of {REQUESTS} stolen ({served:?})"
    );
    assert_eq!(runtime.core_counters(CORES), None);
}
