//! Property test against a model (one FIFO per flow): any interleaving of sends (copied, batched
//! in place, reserved and committed or queued or abandoned), deferred publications and receives
//! (polled, borrowed, copied out), by several senders over several engines, delivers every
//! message exactly once and in per-flow order, and refuses only for lack of credit. The senders
//! are regrouped now and then: three senders sharing the lanes, or one sender owning every
//! engine (which takes sequence numbers without atomic read-modify-writes), so sequence numbers
//! carry over between the two.

use std::collections::{HashMap, VecDeque};

use pcie_channel::{ChannelError, EngineSet, Geometry, Loopback};
use proptest::prelude::*;

const GEOMETRY: Geometry = Geometry {
    engines: 4,
    ring_entries: 4,
    slot_bytes: 64,
    lanes: 4,
};

/// Engines of each sender: one with two engines, two with one each.
const SENDERS: [u16; 3] = [0b0011, 0b0100, 0b1000];
/// The other grouping: sender 0 owns every engine; senders 1 and 2 do not exist.
const WHOLE: u16 = 0b1111;

/// How a reservation ends.
#[derive(Clone, Copy, Debug)]
enum Finish {
    Commit,
    Queue,
    Abandon,
}

#[derive(Clone, Debug)]
enum Op {
    /// Write a message without publishing it.
    Queue {
        sender: usize,
        flow: u32,
        len: usize,
    },
    /// Write and publish.
    Send {
        sender: usize,
        flow: u32,
        len: usize,
    },
    /// Write messages straight into their slots (`send_with`), the batch ending early at
    /// `stop` if given.
    SendWith {
        sender: usize,
        messages: Vec<(u32, usize)>,
        stop: Option<usize>,
    },
    /// Reserve a slot, write it, then finish the reservation.
    Reserve {
        sender: usize,
        flow: u32,
        len: usize,
        finish: Finish,
    },
    /// Publish what a sender queued.
    Publish { sender: usize },
    /// Receive up to `max` messages.
    Receive { max: usize },
    /// Borrow one message (`recv`).
    Borrow,
    /// Copy one message out (`recv_into`).
    CopyOut,
    /// Drop every sender and claim the other grouping.
    Regroup,
}

fn op() -> impl Strategy<Value = Op> {
    // Flows 0..6 over 4 lanes: flows 0 and 4 (1 and 5) share a lane.
    let len = prop_oneof![3 => 0usize..=64, 1 => 65usize..=200];
    let small = 0usize..=64;
    let finish = prop_oneof![
        Just(Finish::Commit),
        Just(Finish::Queue),
        Just(Finish::Abandon)
    ];
    prop_oneof![
        3 => (0..3usize, 0..6u32, len.clone()).prop_map(|(sender, flow, len)| Op::Queue { sender, flow, len }),
        3 => (0..3usize, 0..6u32, len).prop_map(|(sender, flow, len)| Op::Send { sender, flow, len }),
        2 => (
            0..3usize,
            proptest::collection::vec((0..6u32, small.clone()), 1..8),
            proptest::option::of(0..8usize),
        )
            .prop_map(|(sender, messages, stop)| Op::SendWith { sender, messages, stop }),
        2 => (0..3usize, 0..6u32, small, finish)
            .prop_map(|(sender, flow, len, finish)| Op::Reserve { sender, flow, len, finish }),
        2 => (0..3usize).prop_map(|sender| Op::Publish { sender }),
        3 => (1..6usize).prop_map(|max| Op::Receive { max }),
        1 => Just(Op::Borrow),
        1 => Just(Op::CopyOut),
        1 => Just(Op::Regroup),
    ]
}

/// The payload of the `n`th message of `flow`: recognisable and length-checked.
fn payload(flow: u32, n: u32, len: usize) -> Vec<u8> {
    (0..len)
        .map(|i| (flow as usize * 31 + n as usize * 7 + i) as u8)
        .collect()
}

/// What the channel must deliver: per flow, the bodies sent and not yet received.
#[derive(Default)]
struct Model {
    pending: HashMap<u32, VecDeque<Vec<u8>>>,
    sent: HashMap<u32, u32>,
    delivered: usize,
}

impl Model {
    /// The body of the next message of `flow`.
    fn next_body(&self, flow: u32, len: usize) -> Vec<u8> {
        payload(flow, *self.sent.get(&flow).unwrap_or(&0), len)
    }

    fn sent(&mut self, flow: u32, body: Vec<u8>) {
        *self.sent.entry(flow).or_default() += 1;
        self.pending.entry(flow).or_default().push_back(body);
    }

    fn received(&mut self, flow: u32, body: Vec<u8>) -> Result<(), TestCaseError> {
        let expected = self.pending.get_mut(&flow).and_then(VecDeque::pop_front);
        prop_assert_eq!(
            Some(body),
            expected,
            "flow {} out of order or duplicated",
            flow
        );
        self.delivered += 1;
        Ok(())
    }
}

fn receive(
    rx: &mut pcie_channel::Receiver<'_>,
    model: &mut Model,
    max: usize,
) -> Result<usize, TestCaseError> {
    let mut got = Vec::new();
    let n = rx
        .poll(max, |m| {
            let mut body = vec![0; m.len()];
            m.copy_to(&mut body).unwrap();
            got.push((m.flow(), body));
        })
        .unwrap();
    prop_assert_eq!(n, got.len());
    for (flow, body) in got {
        model.received(flow, body)?;
    }
    Ok(n)
}

/// Accepts success, or a refusal for lack of credit; anything else fails the case.
fn sent_or_full(result: Result<(), ChannelError>) -> Result<bool, TestCaseError> {
    match result {
        Ok(()) => Ok(true),
        Err(ChannelError::WouldBlock) => Ok(false),
        Err(other) => Err(TestCaseError::fail(format!("unexpected error {other}"))),
    }
}

fn claim<'c>(channel: &'c pcie_channel::Channel, whole: bool) -> Vec<pcie_channel::Sender<'c>> {
    let masks: &[u16] = if whole { &[WHOLE] } else { &SENDERS };
    masks
        .iter()
        .map(|&mask| channel.sender(EngineSet::from_mask(mask)).unwrap())
        .collect()
}

fn run(ops: &[Op]) -> Result<(), TestCaseError> {
    let lo = Loopback::new(GEOMETRY).unwrap();
    let mut whole = false;
    let mut senders = claim(lo.nic(), whole);
    let mut rx = lo.host().receiver().unwrap();
    let mut model = Model::default();
    for op in ops {
        match op {
            &Op::Queue { sender, flow, len } | &Op::Send { sender, flow, len } => {
                let Some(tx) = senders.get_mut(sender) else {
                    continue;
                };
                let body = model.next_body(flow, len);
                let result = match op {
                    Op::Queue { .. } => tx.queue(flow, &body),
                    _ => tx.send(flow, &body),
                };
                if sent_or_full(result)? {
                    model.sent(flow, body);
                }
            }
            Op::SendWith {
                sender,
                messages,
                stop,
            } => {
                let Some(tx) = senders.get_mut(*sender) else {
                    continue;
                };
                let mut written = Vec::new();
                let result = tx.send_with(messages.len(), |i, slot| {
                    if Some(i) == *stop {
                        return None;
                    }
                    let (flow, len) = messages[i];
                    // Bodies are numbered per flow, counting the ones this batch already wrote.
                    let earlier = written.iter().filter(|(f, _)| *f == flow).count() as u32;
                    let n = model.sent.get(&flow).copied().unwrap_or(0) + earlier;
                    let body = payload(flow, n, len);
                    slot[..len].copy_from_slice(&body);
                    written.push((flow, body));
                    Some((flow, len))
                });
                match result {
                    Ok(n) => prop_assert_eq!(n, written.len()),
                    Err(error) => {
                        prop_assert_eq!(error, ChannelError::WouldBlock);
                        prop_assert!(written.is_empty(), "a refused batch writes nothing");
                        written.clear();
                    }
                }
                for (flow, body) in written {
                    model.sent(flow, body);
                }
            }
            &Op::Reserve {
                sender,
                flow,
                len,
                finish,
            } => {
                let Some(tx) = senders.get_mut(sender) else {
                    continue;
                };
                let body = model.next_body(flow, len);
                let mut reservation = match tx.reserve(flow, len) {
                    Ok(reservation) => reservation,
                    Err(error) => {
                        prop_assert!(!sent_or_full(Err(error))?);
                        continue;
                    }
                };
                reservation.buffer()[..len].copy_from_slice(&body);
                match finish {
                    Finish::Commit => reservation.commit(len).unwrap(),
                    Finish::Queue => reservation.queue(len).unwrap(),
                    Finish::Abandon => {
                        drop(reservation);
                        continue;
                    }
                }
                model.sent(flow, body);
            }
            &Op::Publish { sender } => {
                if let Some(tx) = senders.get_mut(sender) {
                    tx.publish();
                }
            }
            &Op::Receive { max } => {
                receive(&mut rx, &mut model, max)?;
            }
            Op::Borrow => {
                let got = rx.recv().unwrap().map(|received| {
                    let message = received.message();
                    let body: Vec<u8> = message.segments().flatten().copied().collect();
                    (message.flow(), body)
                });
                if let Some((flow, body)) = got {
                    model.received(flow, body)?;
                }
            }
            Op::CopyOut => {
                let mut buffer = [0u8; 256];
                if let Some((flow, len)) = rx.recv_into(&mut buffer).unwrap() {
                    model.received(flow, buffer[..len].to_vec())?;
                }
            }
            Op::Regroup => {
                // Dropping a sender publishes what it queued.
                senders.clear();
                whole = !whole;
                senders = claim(lo.nic(), whole);
            }
        }
    }
    for sender in &mut senders {
        sender.publish();
    }
    while receive(&mut rx, &mut model, 16)? > 0 {}
    for (flow, rest) in &model.pending {
        prop_assert!(
            rest.is_empty(),
            "flow {} lost {} messages",
            flow,
            rest.len()
        );
    }
    let stats = rx.stats();
    prop_assert_eq!(stats.refused(), 0);
    prop_assert_eq!(stats.messages as usize, model.delivered);
    prop_assert_eq!(
        stats.messages as usize,
        model.sent.values().sum::<u32>() as usize
    );
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]

    #[test]
    fn every_message_arrives_once_in_flow_order(ops in proptest::collection::vec(op(), 1..120)) {
        run(&ops)?;
    }
}
