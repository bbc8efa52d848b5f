//! Property test against a model (one FIFO per flow): any interleaving of sends, deferred
//! publications and receives, by several senders over several engines, delivers every message
//! exactly once and in per-flow order, and refuses only for lack of credit.

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
    /// Publish what a sender queued.
    Publish { sender: usize },
    /// Receive up to `max` messages.
    Receive { max: usize },
}

fn op() -> impl Strategy<Value = Op> {
    // Flows 0..6 over 4 lanes: flows 0 and 4 (1 and 5) share a lane.
    let len = prop_oneof![3 => 0usize..=64, 1 => 65usize..=200];
    prop_oneof![
        3 => (0..3usize, 0..6u32, len.clone()).prop_map(|(sender, flow, len)| Op::Queue { sender, flow, len }),
        3 => (0..3usize, 0..6u32, len).prop_map(|(sender, flow, len)| Op::Send { sender, flow, len }),
        2 => (0..3usize).prop_map(|sender| Op::Publish { sender }),
        3 => (1..6usize).prop_map(|max| Op::Receive { max }),
    ]
}

/// The payload of the `n`th message of `flow`: recognisable and length-checked.
fn payload(flow: u32, n: u32, len: usize) -> Vec<u8> {
    (0..len)
        .map(|i| (flow as usize * 31 + n as usize * 7 + i) as u8)
        .collect()
}

fn run(ops: &[Op]) -> Result<(), TestCaseError> {
    let lo = Loopback::new(GEOMETRY).unwrap();
    let mut senders: Vec<_> = SENDERS
        .iter()
        .map(|&mask| lo.nic().sender(EngineSet::from_mask(mask)).unwrap())
        .collect();
    let mut rx = lo.host().receiver().unwrap();
    let mut model: HashMap<u32, VecDeque<Vec<u8>>> = HashMap::new();
    let mut counters: HashMap<u32, u32> = HashMap::new();
    let mut delivered = 0usize;
    let mut receive = |rx: &mut pcie_channel::Receiver<'_>,
                       model: &mut HashMap<u32, VecDeque<Vec<u8>>>,
                       max: usize|
     -> Result<usize, TestCaseError> {
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
            let expected = model.get_mut(&flow).and_then(VecDeque::pop_front);
            prop_assert_eq!(
                Some(body),
                expected,
                "flow {} out of order or duplicated",
                flow
            );
            delivered += 1;
        }
        Ok(n)
    };
    for op in ops {
        match *op {
            Op::Queue { sender, flow, len } | Op::Send { sender, flow, len } => {
                let n = *counters.get(&flow).unwrap_or(&0);
                let body = payload(flow, n, len);
                let result = match op {
                    Op::Queue { .. } => senders[sender].queue(flow, &body),
                    _ => senders[sender].send(flow, &body),
                };
                match result {
                    Ok(()) => {
                        counters.insert(flow, n + 1);
                        model.entry(flow).or_default().push_back(body);
                    }
                    Err(ChannelError::WouldBlock) => {}
                    Err(other) => prop_assert!(false, "unexpected error {other}"),
                }
            }
            Op::Publish { sender } => senders[sender].publish(),
            Op::Receive { max } => {
                receive(&mut rx, &mut model, max)?;
            }
        }
    }
    for sender in &mut senders {
        sender.publish();
    }
    while receive(&mut rx, &mut model, 16)? > 0 {}
    for (flow, rest) in &model {
        prop_assert!(
            rest.is_empty(),
            "flow {} lost {} messages",
            flow,
            rest.len()
        );
    }
    let stats = rx.stats();
    prop_assert_eq!(stats.refused(), 0);
    prop_assert_eq!(
        stats.messages as usize,
        counters.values().sum::<u32>() as usize
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
