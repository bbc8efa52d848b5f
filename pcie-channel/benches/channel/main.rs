//! `cargo xtask bench channel`: the channel between two threads against baselines measured in
//! the same run.
//!
//! - Throughput at 64 B, 512 B, 4 KiB and 64 KiB, batches of 32, by two paths ([`Path`]): the
//!   copy path (copied in, copied out: two copies) and the in-place path (written straight into
//!   the shared slot, read where it lies: one copy). Baselines: a crossbeam `ArrayQueue`
//!   (bounded MPMC queue) moving the same bytes by value (small sizes; it has no batch
//!   operation), and one thread's `memcpy` of the same messages through a buffer of the
//!   channel's size (large sizes: the most one copying core can do here).
//! - Round trip: one 64-byte message there and back between two spinning threads (median,
//!   p99 of all samples), by both paths, against the same ping-pong over two `ArrayQueue`s;
//!   the three run in nine interleaved rounds.
//! - References for what bounds these on the machine at hand (`bound.rs`): the same bytes
//!   through a bare ring between the two threads (large sizes), and one cache line bounced
//!   between them (round trip).
//!
//! Each figure is the best of nine short runs, channel and baseline interleaved (the machine is
//! shared). Options: `--quick` runs a tenth of the work; `--instructions` counts instructions
//! per message with callgrind instead (see `instructions.rs`).

use std::cell::Cell;
use std::time::Duration;

use pcie_channel::{Geometry, ReceiveStats};

mod bound;
mod instructions;
mod round_trip;
mod throughput;

use throughput::Path;

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

/// Best of `RUNS` runs of each, interleaved so that all see the same machine load.
fn best_of<const N: usize>(runs: [&dyn Fn() -> Duration; N]) -> [Duration; N] {
    let mut best = [Duration::MAX; N];
    for _ in 0..RUNS {
        for (best, run) in best.iter_mut().zip(runs) {
            *best = (*best).min(run());
        }
    }
    best
}

fn percentile(sorted: &[u64], p: f64) -> u64 {
    sorted[((sorted.len() - 1) as f64 * p) as usize]
}

/// The receiver's counters of the fastest of a channel's runs.
type Fastest = Cell<(Duration, ReceiveStats)>;

/// One channel run, remembering the receiver's counters if it is the fastest so far.
fn tracked(size: usize, count: usize, path: Path, fastest: &Fastest) -> Duration {
    let (time, stats) = throughput::channel(size, count, path);
    if time < fastest.get().0 {
        fastest.set((time, stats));
    }
    time
}

struct Row {
    size: usize,
    count: usize,
    path: Path,
    channel: Duration,
    /// The receiver's counters in the fastest run.
    stats: ReceiveStats,
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
    let args: Vec<String> = std::env::args().collect();
    if let Some(at) = args.iter().position(|a| a == "--kernel") {
        instructions::run_kernel(&args[at + 1]);
        return;
    }
    if args.iter().any(|a| a == "--instructions") {
        instructions::report();
        return;
    }
    let quick = args.iter().any(|a| a == "--quick");
    let scale = if quick { 10 } else { 1 };
    let bytes_per_run = 1usize << 28;
    let count_for = |size: usize| (bytes_per_run / size).clamp(4_000, 1_000_000) / scale;

    // Warm-up: page in the regions and let the CPU clock settle.
    throughput::channel(64, 100_000 / scale, Path::Copy);

    let mut rows = Vec::new();
    let mut handoffs = Vec::new();
    for (size, target) in [(64, 1.5), (512, 0.0), (4096, 0.0), (65536, 0.8)] {
        let count = count_for(size);
        let unseen = (Duration::MAX, ReceiveStats::default());
        let (copy_stats, in_place_stats) = (Cell::new(unseen), Cell::new(unseen));
        let copy = || tracked(size, count, Path::Copy, &copy_stats);
        let in_place = || tracked(size, count, Path::InPlace, &in_place_stats);
        let (baseline_name, [copy, in_place, baseline]) = match size {
            64 => (
                "crossbeam ArrayQueue",
                best_of([&copy, &in_place, &|| throughput::crossbeam::<64>(count)]),
            ),
            512 => (
                "crossbeam ArrayQueue",
                best_of([&copy, &in_place, &|| throughput::crossbeam::<512>(count)]),
            ),
            _ => {
                let [copy, in_place, memcpy, handoff] = best_of([
                    &copy,
                    &in_place,
                    &|| throughput::memcpy(size, count),
                    &|| bound::handoff(size, count),
                ]);
                handoffs.push((size, count, handoff, memcpy, in_place));
                ("memcpy, 1 thread", [copy, in_place, memcpy])
            }
        };
        for (path, channel, stats) in [
            (Path::Copy, copy, copy_stats.get().1),
            (Path::InPlace, in_place, in_place_stats.get().1),
        ] {
            rows.push(Row {
                size,
                count,
                path,
                channel,
                stats,
                baseline_name,
                baseline,
                target,
            });
        }
    }
    // Round trips in interleaved rounds, so that all three see the same machine load.
    let trips = if quick { 20_000 } else { 200_000 } / RUNS;
    let (mut copy_rtt, mut in_place_rtt, mut crossbeam_rtt, mut line_rtt) =
        (Vec::new(), Vec::new(), Vec::new(), Vec::new());
    for _ in 0..RUNS {
        copy_rtt.extend(round_trip::channel(trips, round_trip::Path::Copy));
        in_place_rtt.extend(round_trip::channel(trips, round_trip::Path::InPlace));
        crossbeam_rtt.extend(round_trip::crossbeam(trips));
        line_rtt.extend(bound::line_round_trip(trips));
    }
    for samples in [
        &mut copy_rtt,
        &mut in_place_rtt,
        &mut crossbeam_rtt,
        &mut line_rtt,
    ] {
        samples.sort_unstable();
    }

    println!(
        "pcie-channel between two threads (4 engines; slots = message size up to 4 KiB, 16 KiB above; batches of {BATCH}; best of {RUNS} runs)"
    );
    println!();
    println!("| size | channel path | messages | channel Mmsg/s | channel GB/s | baseline | baseline Mmsg/s | baseline GB/s | ratio | target |");
    println!("|---|---|---|---|---|---|---|---|---|---|");
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
            "| {} | {} | {} | {c_msgs:.2} | {c_gbs:.2} | {} | {b_msgs:.2} | {b_gbs:.2} | {ratio:.2}x | {target} |",
            size_name(row.size),
            row.path.name(row.size),
            row.count,
            row.baseline_name,
        );
    }
    println!();
    println!("How often the receiver found a message waiting (its head parked: for an earlier message of its lane, or for a segment not yet visible) and scanned parked entries again, in the fastest run of each row:");
    println!();
    println!("| size | channel path | parked | rescans | parked per 1000 messages |");
    println!("|---|---|---|---|---|");
    for row in &rows {
        println!(
            "| {} | {} | {} | {} | {:.2} |",
            size_name(row.size),
            row.path.name(row.size),
            row.stats.parked,
            row.stats.rescans,
            row.stats.parked as f64 * 1000.0 / row.count as f64,
        );
    }
    println!();
    println!("| round trip, 64 B, both threads spinning | samples | median ns | p99 ns |");
    println!("|---|---|---|---|");
    for (name, samples) in [
        ("pcie-channel, copy: send -> recv_into", &copy_rtt),
        (
            "pcie-channel, in place: reserve/commit -> recv",
            &in_place_rtt,
        ),
        ("crossbeam ArrayQueue pair", &crossbeam_rtt),
        ("(floor) one cache line there and back", &line_rtt),
    ] {
        println!(
            "| {name} | {} | {} | {} |",
            samples.len(),
            percentile(samples, 0.5),
            percentile(samples, 0.99)
        );
    }
    println!();
    println!("What bounds the large sizes here: the same bytes handed between the two threads through a bare ring (same footprint and slot size, copied in, read in place, one index each way, no descriptors or checks), best of {RUNS} in the same rounds:");
    println!();
    println!(
        "| size | bare handoff GB/s | bare handoff / memcpy | channel in place / bare handoff |"
    );
    println!("|---|---|---|---|");
    for &(size, count, handoff, memcpy, in_place) in &handoffs {
        println!(
            "| {} | {:.2} | {:.2}x | {:.2}x |",
            size_name(size),
            rate(count, size, handoff).1,
            memcpy.as_secs_f64() / handoff.as_secs_f64(),
            handoff.as_secs_f64() / in_place.as_secs_f64(),
        );
    }
    println!();
    for (name, samples) in [("copy", &copy_rtt), ("in place", &in_place_rtt)] {
        let median = percentile(samples, 0.5);
        println!(
            "round-trip target, {name}: median < 1000 ns: {}",
            if median < 1000 { "met" } else { "NOT met" }
        );
    }
}
