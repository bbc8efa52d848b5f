//! `--instructions`: instructions executed per message, counted by callgrind (valgrind), which
//! repeats to the instruction on a machine whose timings do not.
//!
//! Each kernel runs one workload of the throughput table in a single thread (a batch sent, then
//! the same batch received, as the two threads do when the scheduler runs them one after the
//! other), so every instruction of both sides is counted once. The bench binary runs itself
//! under `valgrind --tool=callgrind` once per kernel, counting only inside [`measured`], and
//! divides by the messages moved.

use std::hint::black_box;
use std::process::Command;

use crossbeam::queue::ArrayQueue;
use pcie_channel::{EngineSet, Loopback};

use crate::round_trip::Path as Trip;
use crate::throughput::Path;
use crate::{geometry, round_trip, throughput, BATCH};

/// Messages per counted run (round trips for the round-trip kernels).
const COUNT: usize = 64 * 1024;
/// Messages per counted run for 64 KiB messages (the copies dominate; fewer suffice).
const COUNT_LARGE: usize = 1024;

/// One counted workload.
pub struct Kernel {
    /// Name on the command line and in the table.
    pub name: &'static str,
    /// Message size.
    pub size: usize,
    work: Work,
}

/// What a kernel runs.
#[derive(Clone, Copy)]
enum Work {
    Channel(throughput::Path),
    Crossbeam,
    Memcpy,
    RoundTrip(round_trip::Path),
    CrossbeamRoundTrip,
    /// One look for a reply that is not there yet (what a spinning round-trip thread repeats).
    EmptyLook(round_trip::Path),
    CrossbeamEmptyLook,
}

pub const KERNELS: &[Kernel] = &[
    Kernel::new("channel-copy-64", 64, Work::Channel(Path::Copy)),
    Kernel::new("channel-in-place-64", 64, Work::Channel(Path::InPlace)),
    Kernel::new("crossbeam-64", 64, Work::Crossbeam),
    Kernel::new("channel-copy-512", 512, Work::Channel(Path::Copy)),
    Kernel::new("channel-in-place-512", 512, Work::Channel(Path::InPlace)),
    Kernel::new("crossbeam-512", 512, Work::Crossbeam),
    Kernel::new("channel-copy-65536", 65536, Work::Channel(Path::Copy)),
    Kernel::new(
        "channel-in-place-65536",
        65536,
        Work::Channel(Path::InPlace),
    ),
    Kernel::new("memcpy-65536", 65536, Work::Memcpy),
    Kernel::new("round-trip-copy-64", 64, Work::RoundTrip(Trip::Copy)),
    Kernel::new("round-trip-in-place-64", 64, Work::RoundTrip(Trip::InPlace)),
    Kernel::new("round-trip-crossbeam-64", 64, Work::CrossbeamRoundTrip),
    Kernel::new("empty-look-copy", 64, Work::EmptyLook(Trip::Copy)),
    Kernel::new("empty-look-in-place", 64, Work::EmptyLook(Trip::InPlace)),
    Kernel::new("empty-look-crossbeam", 64, Work::CrossbeamEmptyLook),
];

impl Kernel {
    const fn new(name: &'static str, size: usize, work: Work) -> Kernel {
        Kernel { name, size, work }
    }

    /// What it runs, for the table.
    pub fn what(&self) -> String {
        match self.work {
            Work::Channel(path) => format!("channel, {}", path.name(self.size)),
            Work::Crossbeam => "crossbeam ArrayQueue: push, pop + copy".to_owned(),
            Work::Memcpy => "memcpy, 1 thread".to_owned(),
            Work::RoundTrip(round_trip::Path::Copy) => {
                "channel round trip, copy: send -> recv_into, both ways (per round trip)".to_owned()
            }
            Work::RoundTrip(round_trip::Path::InPlace) => {
                "channel round trip, in place: reserve/commit -> recv, both ways (per round trip)"
                    .to_owned()
            }
            Work::CrossbeamRoundTrip => {
                "crossbeam round trip: push, pop, push, pop (per round trip)".to_owned()
            }
            Work::EmptyLook(round_trip::Path::Copy) => {
                "channel, empty look: recv_into finds nothing (per look)".to_owned()
            }
            Work::EmptyLook(round_trip::Path::InPlace) => {
                "channel, empty look: recv finds nothing (per look)".to_owned()
            }
            Work::CrossbeamEmptyLook => {
                "crossbeam, empty look: pop finds nothing (per look)".to_owned()
            }
        }
    }

    fn count(&self) -> usize {
        if self.size > 4096 {
            COUNT_LARGE
        } else {
            COUNT
        }
    }

    fn run(&self) {
        let (size, count) = (self.size, self.count());
        match self.work {
            Work::Channel(path) => channel(size, count, path),
            Work::Crossbeam if size == 64 => crossbeam::<64>(count),
            Work::Crossbeam => crossbeam::<512>(count),
            Work::Memcpy => memcpy(size, count),
            Work::RoundTrip(path) => channel_round_trip(count, path),
            Work::CrossbeamRoundTrip => crossbeam_round_trip(count),
            Work::EmptyLook(path) => empty_look(count, path),
            Work::CrossbeamEmptyLook => crossbeam_empty_look(count),
        }
    }
}

/// The only code callgrind counts (`--toggle-collect`).
#[inline(never)]
fn measured(work: &mut dyn FnMut()) {
    work();
}

/// Runs `batch` (given the messages done so far, it returns how many it moved) over the whole
/// count once uncounted (to warm up caches and page in memory), then once counted.
fn warm_then_measure(count: usize, mut batch: impl FnMut(usize) -> usize) {
    let mut run = || {
        let mut done = 0;
        while done < count {
            done += batch(done);
        }
    };
    run();
    measured(&mut run);
}

/// The two ends of the throughput benchmark, one step each in turn.
fn channel(size: usize, count: usize, path: Path) {
    let lo = Loopback::new(geometry(size)).unwrap();
    let (mut tx, mut rx) = throughput::endpoints(&lo);
    let source = vec![0x5au8; size];
    let mut sink = vec![0u8; size];
    warm_then_measure(count, |first| {
        let sent = throughput::send(&mut tx, &source, first, BATCH, path).unwrap();
        let received = throughput::receive(&mut rx, &mut sink, path).unwrap();
        assert_eq!(received, sent);
        received
    });
}

/// The crossbeam baseline's two ends, a batch each in turn.
fn crossbeam<const N: usize>(count: usize) {
    let queue = ArrayQueue::<[u8; N]>::new(1024);
    let source = [0x5au8; N];
    let mut sink = [0u8; N];
    warm_then_measure(count, |_| {
        for _ in 0..BATCH {
            assert!(queue.push(black_box(source)).is_ok());
        }
        for _ in 0..BATCH {
            let message = queue.pop().unwrap();
            sink.copy_from_slice(&message);
            black_box(&sink);
        }
        BATCH
    });
}

/// The memcpy baseline's loop.
fn memcpy(size: usize, count: usize) {
    let g = geometry(size);
    let footprint = (g.engines * g.ring_entries * g.slot_bytes) as usize;
    let slots = (footprint / size).max(1);
    let source = vec![0x5au8; size];
    let mut buffer = vec![0u8; slots * size];
    warm_then_measure(count, |first| {
        for i in first..first + BATCH {
            let at = (i % slots) * size;
            buffer[at..at + size].copy_from_slice(black_box(&source));
            black_box(&buffer[at]);
        }
        BATCH
    });
}

/// The round-trip benchmark's three steps, in turn.
fn channel_round_trip(count: usize, path: round_trip::Path) {
    let lo = Loopback::new(geometry(64)).unwrap();
    let mut host_tx = lo.host().sender(EngineSet::single(0)).unwrap();
    let mut host_rx = lo.host().receiver().unwrap();
    let mut nic_tx = lo.nic().sender(EngineSet::single(0)).unwrap();
    let mut nic_rx = lo.nic().receiver().unwrap();
    warm_then_measure(count, |first| {
        for i in first..first + BATCH {
            round_trip::ask(&mut host_tx, i, path);
            assert!(round_trip::echo(&mut nic_rx, &mut nic_tx, path));
            assert!(round_trip::answer(&mut host_rx, path));
        }
        BATCH
    });
}

fn crossbeam_round_trip(count: usize) {
    let there = ArrayQueue::<[u8; 64]>::new(64);
    let back = ArrayQueue::<[u8; 64]>::new(64);
    warm_then_measure(count, |_| {
        for _ in 0..BATCH {
            let _ = there.push(black_box([7u8; 64]));
            let message = there.pop().unwrap();
            let _ = back.push(message);
            black_box(back.pop().unwrap());
        }
        BATCH
    });
}

/// Looks for a reply on a channel that has none (after a few round trips, as in the benchmark).
fn empty_look(count: usize, path: round_trip::Path) {
    let lo = Loopback::new(geometry(64)).unwrap();
    let mut host_tx = lo.host().sender(EngineSet::single(0)).unwrap();
    let mut host_rx = lo.host().receiver().unwrap();
    let mut nic_tx = lo.nic().sender(EngineSet::single(0)).unwrap();
    let mut nic_rx = lo.nic().receiver().unwrap();
    for i in 0..BATCH {
        round_trip::ask(&mut host_tx, i, path);
        assert!(round_trip::echo(&mut nic_rx, &mut nic_tx, path));
        assert!(round_trip::answer(&mut host_rx, path));
    }
    warm_then_measure(count, |_| {
        for _ in 0..BATCH {
            assert!(!round_trip::answer(&mut host_rx, path));
        }
        BATCH
    });
}

fn crossbeam_empty_look(count: usize) {
    let back = ArrayQueue::<[u8; 64]>::new(64);
    warm_then_measure(count, |_| {
        for _ in 0..BATCH {
            assert!(back.pop().is_none());
        }
        BATCH
    });
}

/// `--kernel NAME`: runs one kernel (the process valgrind watches).
pub fn run_kernel(name: &str) {
    match KERNELS.iter().find(|k| k.name == name) {
        Some(kernel) => kernel.run(),
        None => panic!("no kernel {name}"),
    }
}

/// `--instructions`: runs every kernel under callgrind and prints instructions per message.
pub fn report() {
    let exe = std::env::current_exe().unwrap();
    println!("instructions per message, counted by callgrind (single thread: a batch of {BATCH} sent, then received)");
    println!();
    println!("| kernel | size | what | instructions per message |");
    println!("|---|---|---|---|");
    for kernel in KERNELS {
        let out = std::env::temp_dir().join(format!(
            "pcie-channel-callgrind-{}-{}",
            std::process::id(),
            kernel.name
        ));
        let status = Command::new("valgrind")
            .arg("--tool=callgrind")
            .arg("--collect-atstart=no")
            .arg("--toggle-collect=*instructions*measured*")
            .arg(format!("--callgrind-out-file={}", out.display()))
            .arg(&exe)
            .args(["--kernel", kernel.name])
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .status();
        let total = match status {
            Ok(status) if status.success() => totals(&out),
            Ok(status) => panic!("valgrind on {}: {status}", kernel.name),
            Err(error) => panic!("valgrind (is it installed? apt-get install valgrind): {error}"),
        };
        let _ = std::fs::remove_file(&out);
        let per = total as f64 / kernel.count() as f64;
        println!(
            "| {} | {} | {} | {per:.1} |",
            kernel.name,
            crate::size_name(kernel.size),
            kernel.what()
        );
    }
}

/// The `totals:` (or `summary:`) line of a callgrind output file.
fn totals(path: &std::path::Path) -> u64 {
    let text = std::fs::read_to_string(path).unwrap();
    text.lines()
        .find_map(|line| {
            line.strip_prefix("totals:")
                .or_else(|| line.strip_prefix("summary:"))
        })
        .and_then(|rest| rest.split_whitespace().next())
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("no totals in {}", path.display()))
}
