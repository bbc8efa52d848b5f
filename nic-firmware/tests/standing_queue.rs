//! The standing-queue signal (E3 section 3.4) on the software NIC, on real threads: one core
//! with a service slower than the frames arrive must report a standing queue in its heartbeats
//! (the frames wait in the port's ring, not in the core queues, since a core takes one burst
//! per poll and runs it at once), and the same NIC under light load must not.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

use microservices::engines::SoftwareEngines;
use microservices::{Context, Service, ServiceError, ServiceId, ServiceIdentity, ServiceKind};
use nic_firmware::agent::heartbeat::{Heartbeat, HeartbeatFlags};
use nic_firmware::agent::AgentConfig;
use nic_firmware::demux::Addresses;
use nic_firmware::platform::host::{SoftwareNic, WIRE_QUEUE_FRAMES};
use nic_firmware::testing::request_to_nic;
use nic_firmware::wire::fixtures;
use nic_firmware::Config;

const SLOW_PORT: u16 = 7001;
/// CPU time the slow service spends per request: one core serves at most 20 000 a second.
const COST: Duration = Duration::from_micros(50);
const HEARTBEAT: Duration = Duration::from_millis(20);
/// Heartbeats looked at under each load.
const BEATS: u16 = 10;
const WAIT: Duration = Duration::from_secs(30);

/// Held by each test: the overloaded NIC's spinning threads would otherwise take the CPU from
/// the lightly loaded one's core, which then samples only when woken by a request.
static ONE_AT_A_TIME: Mutex<()> = Mutex::new(());

/// Answers status 0 after spending [`COST`] of CPU time on each request.
struct Slow;

impl Service for Slow {
    fn identity(&self) -> ServiceIdentity {
        ServiceIdentity {
            id: ServiceId(1),
            kind: ServiceKind::Count,
            name: "slow",
            stateful: false,
            request_size_hint: 64,
            cost_hint_ns: COST.as_nanos() as u32,
        }
    }

    fn handle(
        &mut self,
        _: &mut Context<'_>,
        _: &[u8],
        response: &mut [u8],
    ) -> Result<usize, ServiceError> {
        let started = Instant::now();
        while started.elapsed() < COST {
            std::hint::spin_loop();
        }
        *response.first_mut().ok_or(ServiceError::ResponseTooSmall)? = 0;
        Ok(1)
    }
}

fn start() -> SoftwareNic {
    let addresses = Addresses {
        nic_ip: fixtures::NIC_IP,
        host_ip: None,
    };
    let mut config =
        Config::new(addresses, &SoftwareEngines).with_service(SLOW_PORT, Box::new(Slow));
    let mut agent = AgentConfig::new(1, 7000);
    agent.heartbeat_interval_ns = HEARTBEAT.as_nanos() as u64;
    config.agent = Some(agent);
    SoftwareNic::start(config, 1, &[fixtures::NIC_MAC]).expect("software NIC starts")
}

fn request() -> Vec<u8> {
    request_to_nic(40000, SLOW_PORT, b"work")
}

/// Heartbeats as they are made (polling the agent's last one), from sequence `after` on.
struct Beats {
    last: u16,
}

impl Beats {
    fn after(nic: &SoftwareNic) -> Self {
        let last = heartbeat(nic).map_or(0, |beat| beat.sequence);
        Beats { last }
    }

    /// A heartbeat newer than the last one returned, if one was made since.
    fn next(&mut self, nic: &SoftwareNic) -> Option<Heartbeat> {
        let beat = heartbeat(nic).filter(|beat| beat.sequence != self.last)?;
        self.last = beat.sequence;
        Some(beat)
    }
}

fn heartbeat(nic: &SoftwareNic) -> Option<Heartbeat> {
    nic.runtime().agent().expect("an agent").last_heartbeat()
}

#[test]
fn an_overloaded_core_reports_a_standing_queue() {
    let _alone = ONE_AT_A_TIME
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner());
    let nic = Arc::new(start());
    let frame = request();
    // The network keeps the port's ring nearly full and takes the replies away.
    let stop = Arc::new(AtomicBool::new(false));
    let sender = {
        let (nic, stop) = (Arc::clone(&nic), Arc::clone(&stop));
        thread::spawn(move || {
            let wire = nic.wire(0);
            while !stop.load(Ordering::Relaxed) {
                while wire.to_nic.len() < WIRE_QUEUE_FRAMES - 64 && wire.send(&frame) {}
                while wire.from_nic.pop().is_some() {}
                thread::sleep(Duration::from_micros(200));
            }
        })
    };
    let deadline = Instant::now() + WAIT;
    while nic.wire(0).to_nic.len() < WIRE_QUEUE_FRAMES / 2 {
        assert!(Instant::now() < deadline, "the ring never filled");
        thread::yield_now();
    }
    // Every heartbeat from here on covers an interval of overload; at least one of them must
    // say so (all of them should, but a heartbeat may start just before the ring filled).
    let mut beats = Beats::after(&nic);
    let mut seen = Vec::new();
    while seen.len() < usize::from(BEATS) {
        assert!(Instant::now() < deadline, "too few heartbeats: {seen:?}");
        match beats.next(&nic) {
            Some(beat) => seen.push(beat),
            None => thread::sleep(Duration::from_millis(1)),
        }
    }
    stop.store(true, Ordering::Relaxed);
    sender.join().unwrap();
    let Ok(nic) = Arc::try_unwrap(nic) else {
        panic!("the sender still holds the NIC");
    };
    nic.stop();
    let standing: Vec<&Heartbeat> = seen
        .iter()
        .filter(|beat| beat.flags.contains(HeartbeatFlags::STANDING_QUEUE))
        .collect();
    assert!(
        standing.len() * 2 > seen.len(),
        "most heartbeats under overload show a standing queue: {seen:?}"
    );
    assert!(
        standing.iter().all(|beat| beat.queue_depth > 0),
        "{standing:?}"
    );
}

#[test]
fn a_lightly_loaded_core_reports_no_standing_queue() {
    let _alone = ONE_AT_A_TIME
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner());
    let nic = start();
    let frame = request();
    let wire = nic.wire(0);
    let deadline = Instant::now() + WAIT;
    // One request at a time, with a pause after each reply: the queue drains every time. The
    // first heartbeat is left out: its interval starts with the NIC's start-up, when the core
    // thread may not have run yet (its first sample can be its only one).
    let mut beats = Beats::after(&nic);
    let mut seen = Vec::new();
    while seen.len() < usize::from(BEATS) {
        assert!(Instant::now() < deadline, "too few heartbeats: {seen:?}");
        assert!(wire.send(&frame));
        wire.receive(WAIT).expect("a reply");
        thread::sleep(Duration::from_millis(2));
        seen.extend(beats.next(&nic).filter(|beat| beat.sequence > 1));
    }
    assert!(
        seen.iter()
            .all(|beat| !beat.flags.contains(HeartbeatFlags::STANDING_QUEUE)),
        "{seen:?}"
    );
    let counters = nic.stop();
    assert_eq!(counters.total_dropped(), 0);
}
