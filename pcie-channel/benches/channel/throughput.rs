//! Throughput between two threads: the channel by each of its paths, and the baselines.

use std::hint::black_box;
use std::time::{Duration, Instant};

use crossbeam::queue::ArrayQueue;
use pcie_channel::{ChannelError, EngineSet, Loopback, Message, ReceiveStats, Receiver, Sender};

use crate::{geometry, spin, BATCH, ENGINES};

/// How the channel's two ends handle the bytes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Path {
    /// `send_batch` copies each message from the producer's buffer into the shared slots;
    /// `poll` hands it out and the consumer copies it out with `copy_to`. Two copies, as the
    /// crossbeam queue makes (in by value, out by value).
    Copy,
    /// The producer writes each message straight into its shared slot (`send_with`, one slot a
    /// message; messages larger than a slot go through `send_batch`, whose copy into the slots
    /// is then the only one); `poll` lends it in place and the consumer reads every byte there
    /// (an XOR over 64-bit words) without copying it out. One copy, as `memcpy`.
    InPlace,
}

impl Path {
    /// Short name for the table.
    pub fn name(self, size: usize) -> &'static str {
        match self {
            Path::Copy => "copy: send_batch -> poll + copy_to",
            Path::InPlace if size <= geometry(size).slot_bytes as usize => {
                "in place: send_with -> poll, read in place"
            }
            Path::InPlace => "in place: send_batch -> poll, read in place",
        }
    }
}

/// Reads every byte of a lent message once (what a consumer parsing it in place does at the
/// least); the result keeps the reads from being optimised away.
fn read_in_place(message: &Message<'_>) -> u64 {
    message.segments().fold(0, |acc, segment| {
        let (words, rest) = segment.as_chunks::<8>();
        let folded = words
            .iter()
            .fold(acc, |acc, word| acc ^ u64::from_ne_bytes(*word));
        rest.iter().fold(folded, |acc, &b| acc ^ u64::from(b))
    })
}

/// Channel throughput: seconds to move `count` messages of `size` bytes along `path`, and the
/// receiver's counters (how often it parked a message and scanned parked ones again).
pub fn channel(size: usize, count: usize, path: Path) -> (Duration, ReceiveStats) {
    let lo = Loopback::new(geometry(size)).unwrap();
    let (mut tx, mut rx) = endpoints(&lo);
    let source = vec![0x5au8; size];
    std::thread::scope(|scope| {
        let consumer = scope.spawn(move || {
            let mut sink = vec![0u8; size];
            let mut received = 0;
            let mut step = 0;
            while received < count {
                let n = receive(&mut rx, &mut sink, path).unwrap();
                if n == 0 {
                    spin(&mut step);
                }
                received += n;
            }
            (Instant::now(), rx.stats())
        });
        let started = Instant::now();
        let mut sent = 0;
        let mut step = 0;
        while sent < count {
            match send(&mut tx, &source, sent, BATCH.min(count - sent), path) {
                Ok(n) => sent += n,
                Err(ChannelError::WouldBlock) => spin(&mut step),
                Err(other) => panic!("send: {other}"),
            }
        }
        let (finished, stats) = consumer.join().unwrap();
        (finished - started, stats)
    })
}

/// The benchmark's two ends: the host sends on every engine, the NIC receives.
pub fn endpoints(lo: &Loopback) -> (Sender<'_>, Receiver<'_>) {
    let tx = lo
        .host()
        .sender(EngineSet::first(ENGINES as usize))
        .unwrap();
    (tx, lo.nic().receiver().unwrap())
}

/// The producer's step: up to `batch` copies of `source` (messages `first..`, flows cycling
/// over 64), published once; returns how many were sent.
pub fn send(
    tx: &mut Sender<'_>,
    source: &[u8],
    first: usize,
    batch: usize,
    path: Path,
) -> Result<usize, ChannelError> {
    if path == Path::InPlace && source.len() <= tx.slot_bytes() {
        tx.send_with(batch, |i, slot| {
            slot[..source.len()].copy_from_slice(source);
            Some((((first + i) % 64) as u32, source.len()))
        })
    } else {
        let messages = (first..first + batch).map(|i| ((i % 64) as u32, source));
        tx.send_batch(messages)
    }
}

/// The consumer's step: up to a batch, each copied into `sink` or read in place.
pub fn receive(rx: &mut Receiver<'_>, sink: &mut [u8], path: Path) -> Result<usize, ChannelError> {
    match path {
        Path::Copy => rx.poll(BATCH, |m| {
            black_box(m.copy_to(sink).unwrap());
        }),
        Path::InPlace => rx.poll(BATCH, |m| {
            black_box(read_in_place(&m));
        }),
    }
}

/// Baseline: an `ArrayQueue` of `[u8; N]` moving the same bytes by value.
pub fn crossbeam<const N: usize>(count: usize) -> Duration {
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
pub fn memcpy(size: usize, count: usize) -> Duration {
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
