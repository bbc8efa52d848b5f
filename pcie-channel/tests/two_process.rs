//! Two processes mapping one /dev/shm file: the child plays the NIC (two sender threads, four
//! engines each, like two NIC cores), the parent the host (one receiver). 1,000,000 messages of
//! 1 B..8 KiB over 8 engines and 64 flows; every message's length and bytes are a function of
//! (flow, index in flow), so the receiver regenerates and compares them: none lost, none
//! corrupted, none out of flow order.
//!
//! The child is this same test binary, run with `E3_CHANNEL_CHILD` naming the region.

use std::path::PathBuf;
use std::process::{Child, Command};
use std::time::{Duration, Instant};

use pcie_channel::{
    ChannelError, Doorbell, EngineSet, Geometry, MappedChannel, Message, Role, Woken,
};

const MESSAGES: u64 = 1_000_000;
const FLOWS: u32 = 64;
const THREADS: u32 = 2;
const GEOMETRY: Geometry = Geometry {
    engines: 8,
    ring_entries: 256,
    slot_bytes: 2048,
    // Fewer lanes than flows: flows 0 and 32 (sent by different threads) share lane 0.
    lanes: 16,
};
const CHILD_ENV: &str = "E3_CHANNEL_CHILD";
/// A guard against a hung child, not a performance assertion.
const GIVE_UP: Duration = Duration::from_secs(600);

fn splitmix(mut x: u64) -> u64 {
    x = x.wrapping_add(0x9E37_79B9_7F4A_7C15);
    x = (x ^ (x >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    x = (x ^ (x >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    x ^ (x >> 31)
}

/// Length and contents of message `index` of `flow`, written into `out` (returns the length).
fn fill(flow: u32, index: u32, out: &mut [u8; 8192]) -> usize {
    let seed = splitmix(u64::from(flow) << 32 | u64::from(index));
    let len = 1 + (seed % 8192) as usize;
    let mut state = seed | 1;
    for chunk in out[..len].chunks_mut(8) {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        chunk.copy_from_slice(&state.to_le_bytes()[..chunk.len()]);
    }
    len
}

/// Removes the region file however the test ends.
struct ShmFile(PathBuf);

impl Drop for ShmFile {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

struct KillOnDrop(Child);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        if self.0.try_wait().ok().flatten().is_none() {
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }
}

/// Checks each delivered message against the one `fill` makes for the next index of its flow:
/// none lost, none corrupted, none out of flow order.
struct Checker {
    next: Vec<u32>,
    expected: Box<[u8; 8192]>,
    received: u64,
    bytes: u64,
    failures: Vec<String>,
}

impl Checker {
    fn new(flows: u32) -> Checker {
        Checker {
            next: vec![0; flows as usize],
            expected: Box::new([0u8; 8192]),
            received: 0,
            bytes: 0,
            failures: Vec::new(),
        }
    }

    fn check(&mut self, m: Message<'_>) {
        self.received += 1;
        self.bytes += m.len() as u64;
        let flow = m.flow();
        let Some(index) = self.next.get_mut(flow as usize) else {
            self.failures.push(format!("unknown flow {flow}"));
            return;
        };
        let len = fill(flow, *index, &mut self.expected);
        let mut at = 0;
        let mut same = m.len() == len;
        for segment in m.segments() {
            same &= self.expected.get(at..at + segment.len()) == Some(segment);
            at += segment.len();
        }
        if !same && self.failures.len() < 10 {
            self.failures.push(format!(
                "flow {flow} message {index}: {} bytes, expected {len} (lost, reordered or corrupted)",
                m.len()
            ));
        }
        *index += 1;
    }
}

/// Starts this test binary again as the NIC process running the ignored test `child`.
fn spawn_child(child: &str, path: &std::path::Path, env: &[(&str, String)]) -> KillOnDrop {
    let mut command = Command::new(std::env::current_exe().unwrap());
    command
        .args(["--exact", child, "--ignored", "--nocapture"])
        .env(CHILD_ENV, path);
    for (name, value) in env {
        command.env(name, value);
    }
    KillOnDrop(command.spawn().expect("start the NIC process"))
}

#[test]
fn a_million_messages_between_two_processes() {
    let path = PathBuf::from(format!("/dev/shm/e3-channel-test-{}", std::process::id()));
    let _file = ShmFile(path.clone());
    let host = MappedChannel::create(&path, GEOMETRY).expect("create the region");
    let mut rx = host.receiver().unwrap();
    let mut child = spawn_child("nic_side_child", &path, &[]);

    let mut checker = Checker::new(FLOWS);
    let started = Instant::now();
    while checker.received < MESSAGES {
        let n = rx.poll(64, |m| checker.check(m)).expect("receive");
        if n == 0 {
            if let Some(status) = child.0.try_wait().unwrap() {
                assert!(status.success(), "NIC process failed: {status}");
                // The child may have exited right after its last publish: drain once more,
                // checking what arrives like everything else.
                if rx.poll(64, |m| checker.check(m)).unwrap() == 0 {
                    break;
                }
            }
            assert!(
                started.elapsed() < GIVE_UP,
                "stuck after {} messages",
                checker.received
            );
            std::thread::yield_now();
        }
    }
    assert!(checker.failures.is_empty(), "{:#?}", checker.failures);
    assert_eq!(checker.received, MESSAGES, "messages lost");
    let status = child.0.wait().unwrap();
    assert!(status.success(), "NIC process failed: {status}");
    let stats = rx.stats();
    assert_eq!(stats.messages, MESSAGES);
    assert_eq!(stats.refused(), 0, "{stats:?}");
    eprintln!(
        "two processes: {} messages, {:.1} MB, {:.2} s; receiver {stats:?}",
        checker.received,
        checker.bytes as f64 / 1e6,
        started.elapsed().as_secs_f64()
    );
}

/// The NIC side of `a_million_messages_between_two_processes` (runs only as its child).
#[test]
#[ignore = "child process of a_million_messages_between_two_processes"]
fn nic_side_child() {
    let Some(path) = std::env::var_os(CHILD_ENV) else {
        return;
    };
    let nic = MappedChannel::attach(&path, Role::Nic).expect("attach as the NIC");
    std::thread::scope(|scope| {
        for thread in 0..THREADS {
            let nic = &nic;
            scope.spawn(move || {
                let engines = EngineSet::from_mask(0b1111 << (4 * thread));
                let mut tx = nic.sender(engines).unwrap();
                let flows = FLOWS / THREADS;
                let mut next = vec![0u32; flows as usize];
                let mut body = Box::new([0u8; 8192]);
                let mut random = splitmix(u64::from(thread) + 1);
                for _ in 0..MESSAGES / u64::from(THREADS) {
                    random = splitmix(random);
                    let local = (random % u64::from(flows)) as usize;
                    let flow = thread * flows + local as u32;
                    let len = fill(flow, next[local], &mut body);
                    loop {
                        match tx.send(flow, &body[..len]) {
                            Ok(()) => break,
                            Err(ChannelError::WouldBlock) => std::thread::yield_now(),
                            Err(other) => panic!("send failed: {other}"),
                        }
                    }
                    next[local] += 1;
                }
            });
        }
    });
}

const BURSTS: u32 = 50;
const PER_BURST: u32 = 40;
const DOORBELL_FLOWS: u32 = 8;
/// Names the inherited eventfd in the doorbell test's child.
const BELL_ENV: &str = "E3_CHANNEL_BELL";
/// A guard against a lost wake-up or a hung peer: no wait that a ring should end may reach it.
const WAIT_GUARD: Duration = Duration::from_secs(60);

/// The host sleeps on an eventfd whenever its rings are empty; the NIC process, which
/// inherited the eventfd, rings it after publishing. The NIC sends each burst only once the
/// host has acknowledged the previous one (a message back) and armed itself again, so the host
/// is asleep, or about to re-check, when it arrives: only the doorbell wakes it.
#[test]
fn a_sleeping_host_is_woken_by_the_doorbell_of_the_nic_process() {
    let path = PathBuf::from(format!("/dev/shm/e3-channel-bell-{}", std::process::id()));
    let _file = ShmFile(path.clone());
    let host = MappedChannel::create(&path, GEOMETRY).expect("create the region");
    let bell = Doorbell::new().expect("eventfd");
    let mut rx = host.receiver().unwrap();
    let mut acks = host.sender(EngineSet::single(0)).unwrap();
    let fd = std::os::fd::AsRawFd::as_raw_fd(&bell).to_string();
    let mut child = spawn_child("doorbell_child", &path, &[(BELL_ENV, fd)]);

    let mut checker = Checker::new(DOORBELL_FLOWS);
    let mut woken = Vec::new();
    for burst in 1..=u64::from(BURSTS) {
        while checker.received < burst * u64::from(PER_BURST) {
            if rx.poll(64, |m| checker.check(m)).expect("receive") == 0 {
                woken.push(rx.wait(&bell, WAIT_GUARD).expect("wait"));
                if woken.last() == Some(&Woken::TimedOut) {
                    let status = child.0.try_wait().unwrap();
                    panic!("no wake-up within {WAIT_GUARD:?} (NIC process: {status:?})");
                }
            }
        }
        acks.send(0, &burst.to_le_bytes()).expect("acknowledge");
    }
    let status = child.0.wait().unwrap();
    assert!(status.success(), "NIC process failed: {status}");
    assert!(checker.failures.is_empty(), "{:#?}", checker.failures);
    assert_eq!(checker.received, u64::from(BURSTS * PER_BURST));
    let rung = woken.iter().filter(|w| **w == Woken::Rung).count();
    assert!(
        rung > 0,
        "the host never slept and woke on the doorbell: {woken:?}"
    );
    eprintln!(
        "doorbell: {} messages in {BURSTS} bursts; {} waits, {rung} woken by the doorbell",
        checker.received,
        woken.len()
    );
}

/// The NIC side of `a_sleeping_host_is_woken_by_the_doorbell_of_the_nic_process`.
#[test]
#[ignore = "child process of a_sleeping_host_is_woken_by_the_doorbell_of_the_nic_process"]
fn doorbell_child() {
    let (Some(path), Some(fd)) = (std::env::var_os(CHILD_ENV), std::env::var(BELL_ENV).ok()) else {
        return;
    };
    let nic = MappedChannel::attach(&path, Role::Nic).expect("attach as the NIC");
    // SAFETY: the parent passed the number of the eventfd this process inherited; nothing else
    // here owns it.
    let bell = unsafe { Doorbell::from_raw_fd(fd.parse().expect("an fd number")) };
    let mut tx = nic
        .sender(EngineSet::first(GEOMETRY.engines as usize))
        .unwrap();
    tx.set_doorbell(Some(&bell));
    let mut rx = nic.receiver().unwrap();
    let mut next = [0u32; DOORBELL_FLOWS as usize];
    let mut body = Box::new([0u8; 8192]);
    let started = Instant::now();
    let wait_for = |what: &str, done: &mut dyn FnMut() -> bool| {
        while !done() {
            assert!(started.elapsed() < GIVE_UP, "NIC: no {what}");
            std::thread::yield_now();
        }
    };
    for burst in 1..=u64::from(BURSTS) {
        wait_for("waiting host", &mut || nic.peer_waiting());
        for i in 0..PER_BURST {
            let flow = (i * 5 + burst as u32) % DOORBELL_FLOWS;
            let len = fill(flow, next[flow as usize], &mut body);
            tx.send(flow, &body[..len])
                .expect("credit: the host took the last burst");
            next[flow as usize] += 1;
        }
        let mut ack = None;
        wait_for("acknowledgement", &mut || {
            rx.poll(1, |m| ack = m.as_contiguous().map(<[u8]>::to_vec))
                .expect("receive");
            ack.is_some()
        });
        assert_eq!(ack, Some(burst.to_le_bytes().to_vec()));
    }
    let stats = tx.stats();
    assert!(stats.notify_errors == 0, "{stats:?}");
    eprintln!("doorbell child: {stats:?}");
}
