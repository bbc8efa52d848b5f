//! `cargo xtask bench channel`: the channel between two threads against baselines measured in
//! the same run.
//!
//! - Throughput at 64 B, 512 B, 4 KiB and 64 KiB: the producer copies each message into the
//!   channel (batches of 32), the consumer copies it out. Baselines: a crossbeam `ArrayQueue`
//!   (bounded MPMC queue) moving the same bytes by value (small sizes), and one thread's
//!   `memcpy` of the same messages through a buffer of the channel's size (large sizes: the
//!   most one copying core can do here).
//! - Round trip: one 64-byte message there and back between two threads (median, p99), against
//!   the same ping-pong over two `ArrayQueue`s.
//!
//! Each figure is the best of nine short runs, channel and baseline interleaved (the machine is
//! shared). Options: `--quick` runs a
//! tenth of the work.

use std::hint::black_box;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use crossbeam::queue::ArrayQueue;
use pcie_channel::{ChannelError, EngineSet, Geometry, Loopback, Receiver, Sender};

const RUNS: usize = 9;
const BATCH: usize = 32;
/// Engines per direction.
const ENGINES: u32 = 4;
/// Polls before yielding the core when there is nothing to do (both sides, every queue).
const SPINS: u32 = 16;

/// Geometry for a message size, as one would configure it for that workload: 4 engines; slots
/// the size of the message for small ones (each message one cache-friendly slot), 16 KiB for
/// large ones.
fn geometry(size: usize) -> Geometry {
    if size <= 4096 {
        Geometry {
            engines: ENGINES,
            ring_entries: 256,
            slot_bytes: size.next_power_of_two().max(64) as u32,
            lanes: 64,
        }
    } else {
        // 4 x 16 x 16 KiB = 1 MiB per direction: the working set stays in L2, as for memcpy.
        Geometry {
            engines: 4,
            ring_entries: 16,
            slot_bytes: 16 * 1024,
            lanes: 64,
        }
    }
}

fn spin(step: &mut u32) {
    *step += 1;
    if *step < SPINS {
        std::hint::spin_loop();
    } else {
        *step = 0;
        std::thread::yield_now();
    }
}

/// Channel throughput: seconds to move `count` messages of `size` bytes.
fn channel_throughput(size: usize, count: usize) -> Duration {
    let lo = Loopback::new(geometry(size)).unwrap();
    let mut tx = lo
        .host()
        .sender(EngineSet::first(ENGINES as usize))
        .unwrap();
    let mut rx = lo.nic().receiver().unwrap();
    let source = vec![0x5au8; size];
    std::thread::scope(|scope| {
        let consumer = scope.spawn(move || {
            let mut sink = vec![0u8; size];
            let mut received = 0;
            let mut step = 0;
            while received < count {
                let n = rx
                    .poll(BATCH, |m| {
                        black_box(m.copy_to(&mut sink).unwrap());
                    })
                    .unwrap();
                if n == 0 {
                    spin(&mut step);
                }
                received += n;
            }
            Instant::now()
        });
        let started = Instant::now();
        produce(&mut tx, &source, count);
        consumer.join().unwrap() - started
    })
}

fn produce(tx: &mut Sender<'_>, source: &[u8], count: usize) {
    let mut sent = 0;
    let mut step = 0;
    while sent < count {
        let batch = BATCH.min(count - sent);
        let messages = (sent..sent + batch).map(|i| ((i % 64) as u32, source));
        match tx.send_batch(messages) {
            Ok(n) => sent += n,
            Err(ChannelError::WouldBlock) => spin(&mut step),
            Err(other) => panic!("send: {other}"),
        }
    }
}

/// Baseline: an `ArrayQueue` of `[u8; N]` moving the same bytes by value.
fn crossbeam_throughput<const N: usize>(count: usize) -> Duration {
    let queue = ArrayQueue::<[u8; N]>::new(1024);
    std::thread::scope(|scope| {
        let consumer = scope.spawn(|| {
            let mut sink = [0u8; N];
            let mut step = 0;
            for _ in 0..count {
                loop {
                    if let Some(message) = queue.pop() {
                        sink.copy_from_slice(&message);
                        black_box(&sink);
                        break;
                    }
                    spin(&mut step);
                }
            }
            Instant::now()
        });
        let started = Instant::now();
        let source = [0x5au8; N];
        let mut step = 0;
        for _ in 0..count {
            let mut message = black_box(source);
            while let Err(back) = queue.push(message) {
                message = back;
                spin(&mut step);
            }
        }
        consumer.join().unwrap() - started
    })
}

/// Baseline: one thread copying the same messages through a buffer of the channel's size.
fn memcpy_throughput(size: usize, count: usize) -> Duration {
    let g = geometry(size);
    let footprint = (g.engines * g.ring_entries * g.slot_bytes) as usize;
    let slots = (footprint / size).max(1);
    let source = vec![0x5au8; size];
    let mut buffer = vec![0u8; slots * size];
    let started = Instant::now();
    for i in 0..count {
        let at = (i % slots) * size;
        buffer[at..at + size].copy_from_slice(black_box(&source));
        black_box(&buffer[at]);
    }
    started.elapsed()
}

/// Round trips of a 64-byte message through the channel; returns sorted nanoseconds.
fn channel_round_trips(count: usize) -> Vec<u64> {
    let lo = Loopback::new(geometry(64)).unwrap();
    let done = AtomicBool::new(false);
    std::thread::scope(|scope| {
        let nic = lo.nic();
        let done = &done;
        scope.spawn(move || {
            let mut rx = nic.receiver().unwrap();
            let mut tx = nic.sender(EngineSet::single(0)).unwrap();
            let mut buf = [0u8; 64];
            while !done.load(Ordering::Relaxed) {
                if let Some((flow, len)) = rx.recv_into(&mut buf).unwrap() {
                    tx.send(flow, &buf[..len]).unwrap();
                }
            }
        });
        let mut tx = lo.host().sender(EngineSet::single(0)).unwrap();
        let mut rx: Receiver<'_> = lo.host().receiver().unwrap();
        let mut buf = [0u8; 64];
        let mut samples = Vec::with_capacity(count);
        for i in 0..count {
            let started = Instant::now();
            tx.send(i as u32, &[7u8; 64]).unwrap();
            while rx.recv_into(&mut buf).unwrap().is_none() {
                std::hint::spin_loop();
            }
            samples.push(started.elapsed().as_nanos() as u64);
        }
        done.store(true, Ordering::Relaxed);
        samples.sort_unstable();
        samples
    })
}

/// Round trips of a 64-byte array through two `ArrayQueue`s.
fn crossbeam_round_trips(count: usize) -> Vec<u64> {
    let there = ArrayQueue::<[u8; 64]>::new(64);
    let back = ArrayQueue::<[u8; 64]>::new(64);
    let done = AtomicBool::new(false);
    std::thread::scope(|scope| {
        scope.spawn(|| {
            while !done.load(Ordering::Relaxed) {
                if let Some(message) = there.pop() {
                    let _ = back.push(message);
                }
            }
        });
        let mut samples = Vec::with_capacity(count);
        for _ in 0..count {
            let started = Instant::now();
            let _ = there.push(black_box([7u8; 64]));
            while back.pop().is_none() {
                std::hint::spin_loop();
            }
            samples.push(started.elapsed().as_nanos() as u64);
        }
        done.store(true, Ordering::Relaxed);
        samples.sort_unstable();
        samples
    })
}

/// Best of `RUNS` runs of each, the two interleaved so both see the same machine load.
fn best_pair(a: impl Fn() -> Duration, b: impl Fn() -> Duration) -> (Duration, Duration) {
    let (mut best_a, mut best_b) = (Duration::MAX, Duration::MAX);
    for _ in 0..RUNS {
        best_a = best_a.min(a());
        best_b = best_b.min(b());
    }
    (best_a, best_b)
}

fn percentile(sorted: &[u64], p: f64) -> u64 {
    sorted[((sorted.len() - 1) as f64 * p) as usize]
}

struct Row {
    size: usize,
    count: usize,
    channel: Duration,
    baseline_name: &'static str,
    baseline: Duration,
    target: f64,
}

fn rate(count: usize, size: usize, time: Duration) -> (f64, f64) {
    let seconds = time.as_secs_f64();
    (
        count as f64 / seconds / 1e6,
        (count * size) as f64 / seconds / 1e9,
    )
}

fn size_name(size: usize) -> String {
    if size >= 1024 {
        format!("{} KiB", size / 1024)
    } else {
        format!("{size} B")
    }
}

fn main() {
    let quick = std::env::args().any(|a| a == "--quick");
    let scale = if quick { 10 } else { 1 };
    let bytes_per_run = 1usize << 28;
    let count_for = |size: usize| (bytes_per_run / size).clamp(4_000, 1_000_000) / scale;

    // Warm-up: page in the regions and let the CPU clock settle.
    channel_throughput(64, 100_000 / scale);

    let mut rows = Vec::new();
    for (size, target) in [(64, 1.5), (512, 0.0), (4096, 0.0), (65536, 0.8)] {
        let count = count_for(size);
        let run = || channel_throughput(size, count);
        let (baseline_name, (channel, baseline)) = match size {
            64 => (
                "crossbeam ArrayQueue",
                best_pair(run, || crossbeam_throughput::<64>(count)),
            ),
            512 => (
                "crossbeam ArrayQueue",
                best_pair(run, || crossbeam_throughput::<512>(count)),
            ),
            _ => (
                "memcpy, 1 thread",
                best_pair(run, || memcpy_throughput(size, count)),
            ),
        };
        rows.push(Row {
            size,
            count,
            channel,
            baseline_name,
            baseline,
            target,
        });
    }
    let trips = if quick { 20_000 } else { 200_000 };
    let channel_rtt = channel_round_trips(trips);
    let crossbeam_rtt = crossbeam_round_trips(trips);

    println!(
        "pcie-channel between two threads (4 engines; slots = message size up to 4 KiB, 16 KiB above; batches of {BATCH}; best of {RUNS} runs)"
    );
    println!();
    println!("| size | messages | channel Mmsg/s | channel GB/s | baseline | baseline Mmsg/s | baseline GB/s | ratio | target |");
    println!("|---|---|---|---|---|---|---|---|---|");
    for row in &rows {
        let (c_msgs, c_gbs) = rate(row.count, row.size, row.channel);
        let (b_msgs, b_gbs) = rate(row.count, row.size, row.baseline);
        let ratio = row.baseline.as_secs_f64() / row.channel.as_secs_f64();
        let target = if row.target > 0.0 {
            let verdict = if ratio >= row.target {
                "met"
            } else {
                "NOT met"
            };
            format!("≥ {:.2}x: {verdict}", row.target)
        } else {
            "-".to_owned()
        };
        println!(
            "| {} | {} | {c_msgs:.2} | {c_gbs:.2} | {} | {b_msgs:.2} | {b_gbs:.2} | {ratio:.2}x | {target} |",
            size_name(row.size),
            row.count,
            row.baseline_name,
        );
    }
    println!();
    println!("| round trip, 64 B | samples | median ns | p99 ns |");
    println!("|---|---|---|---|");
    for (name, samples) in [
        ("pcie-channel", &channel_rtt),
        ("crossbeam ArrayQueue pair", &crossbeam_rtt),
    ] {
        println!(
            "| {name} | {} | {} | {} |",
            samples.len(),
            percentile(samples, 0.5),
            percentile(samples, 0.99)
        );
    }
    let median = percentile(&channel_rtt, 0.5);
    println!();
    println!(
        "round-trip target: median < 1000 ns: {}",
        if median < 1000 { "met" } else { "NOT met" }
    );
}
