//! Round trips of one 64-byte message between two threads that both spin (neither yields):
//! the channel by each of its paths, and a pair of crossbeam queues.

use std::hint::black_box;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Instant;

use crossbeam::queue::ArrayQueue;
use pcie_channel::{EngineSet, Loopback, Receiver, Sender};

use crate::geometry;

/// How the two ends of a channel round trip handle the message.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Path {
    /// `send` copies the message in, `recv_into` copies it out; the echo side sends back what
    /// it copied out.
    Copy,
    /// The message is written into its slot through `reserve` and `commit` and received in
    /// place with `recv`; the echo side copies the lent request straight into its reply's slot.
    InPlace,
}

/// The asking side's send of request `i`.
pub fn ask(tx: &mut Sender<'_>, i: usize, path: Path) {
    match path {
        Path::Copy => tx.send(i as u32, &[7u8; 64]).unwrap(),
        Path::InPlace => {
            let mut request = tx.reserve(i as u32, 64).unwrap();
            request.buffer().fill(7);
            request.commit(64).unwrap();
        }
    }
}

/// The echo side: answers one request if there is one; returns whether there was.
pub fn echo(rx: &mut Receiver<'_>, tx: &mut Sender<'_>, path: Path) -> bool {
    match path {
        Path::Copy => {
            let mut buf = [0u8; 64];
            let Some((flow, len)) = rx.recv_into(&mut buf).unwrap() else {
                return false;
            };
            tx.send(flow, &buf[..len]).unwrap();
        }
        Path::InPlace => {
            let Some(request) = rx.recv().unwrap() else {
                return false;
            };
            let message = request.message();
            let body = message.as_contiguous().unwrap();
            let mut reply = tx.reserve(message.flow(), body.len()).unwrap();
            reply.buffer().copy_from_slice(body);
            reply.commit(body.len()).unwrap();
        }
    }
    true
}

/// The asking side: takes the reply if it is there; returns whether it was.
pub fn answer(rx: &mut Receiver<'_>, path: Path) -> bool {
    match path {
        Path::Copy => {
            let mut buf = [0u8; 64];
            black_box(rx.recv_into(&mut buf).unwrap()).is_some()
        }
        Path::InPlace => match rx.recv().unwrap() {
            Some(reply) => {
                black_box(reply.message().as_contiguous().unwrap()[63]);
                true
            }
            None => false,
        },
    }
}

/// Round trips of a 64-byte message through the channel along `path`, both threads spinning;
/// returns sorted nanoseconds.
pub fn channel(count: usize, path: Path) -> Vec<u64> {
    let lo = Loopback::new(geometry(64)).unwrap();
    let done = AtomicBool::new(false);
    std::thread::scope(|scope| {
        let nic = lo.nic();
        let done = &done;
        scope.spawn(move || {
            let mut rx = nic.receiver().unwrap();
            let mut tx = nic.sender(EngineSet::single(0)).unwrap();
            while !done.load(Ordering::Relaxed) {
                echo(&mut rx, &mut tx, path);
            }
        });
        let mut tx = lo.host().sender(EngineSet::single(0)).unwrap();
        let mut rx = lo.host().receiver().unwrap();
        let mut samples = Vec::with_capacity(count);
        for i in 0..count {
            let started = Instant::now();
            ask(&mut tx, i, path);
            while !answer(&mut rx, path) {
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
pub fn crossbeam(count: usize) -> Vec<u64> {
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
