//! One slow flow never blocks the others: a message held back (its sequence number taken but
//! not yet published on another engine, or a head whose next segment is not yet visible) is
//! parked, and the messages of other flows keep being delivered, on the same ring and on the
//! others. What the parked entry does hold is its own ring entry (credit) until it is delivered.

mod common;

use common::{drain, RawPeer, SMALL};
use pcie_channel::{ChannelError, Direction, EngineSet, Loopback};

const SLOW: u32 = 1;
const OTHER: u32 = 2;
const THIRD: u32 = 3;

fn messages(flow: u32, range: std::ops::Range<u8>) -> Vec<(u32, Vec<u8>)> {
    range.map(|i| (flow, vec![i; 1 + usize::from(i)])).collect()
}

#[test]
fn a_gap_in_one_flow_does_not_hold_up_other_flows_on_its_ring_or_others() {
    let lo = Loopback::new(SMALL).unwrap();
    let mut held = lo.host().sender(EngineSet::single(0)).unwrap();
    let mut shared = lo.host().sender(EngineSet::single(1)).unwrap();
    let mut elsewhere = lo.host().sender(EngineSet::single(2)).unwrap();
    let mut rx = lo.nic().receiver().unwrap();
    // The slow flow's message 0 is written on engine 0 but not published; its message 1 sits
    // at the front of engine 1, before the other flows' messages there.
    held.queue(SLOW, b"slow 0").unwrap();
    shared.send(SLOW, b"slow 1").unwrap();
    let mut other = Vec::new();
    let mut third = Vec::new();
    // Round after round the other flows flow, on the parked entry's ring and on another one.
    for round in 0..3u8 {
        let batch = messages(OTHER, round * 2..round * 2 + 2);
        for (flow, body) in &batch {
            shared.send(*flow, body).unwrap();
        }
        let far = messages(THIRD, round * 4..round * 4 + 4);
        for (flow, body) in &far {
            elsewhere.send(*flow, body).unwrap();
        }
        let got = drain(&mut rx);
        assert!(
            got.iter().all(|(flow, _)| *flow != SLOW),
            "slow flow delivered early"
        );
        other.extend(got.iter().filter(|(f, _)| *f == OTHER).cloned());
        third.extend(got.iter().filter(|(f, _)| *f == THIRD).cloned());
        assert_eq!(other, messages(OTHER, 0..round * 2 + 2), "round {round}");
        assert_eq!(third, messages(THIRD, 0..round * 4 + 4), "round {round}");
    }
    assert!(rx.stats().parked > 0, "{:?}", rx.stats());
    // The parked entry keeps engine 1's front: its other seven entries are in use or released
    // behind it, and the eighth message waits for credit. Engine 2 is not affected.
    shared.send(OTHER, b"seventh").unwrap();
    assert_eq!(shared.send(OTHER, b"eighth"), Err(ChannelError::WouldBlock));
    elsewhere.send(THIRD, b"still").unwrap();
    let mut got = drain(&mut rx);
    got.sort();
    assert_eq!(
        got,
        vec![(OTHER, b"seventh".to_vec()), (THIRD, b"still".to_vec())]
    );
    // The slow flow catches up, in its order, and the credit comes back.
    held.publish();
    assert_eq!(
        drain(&mut rx),
        vec![(SLOW, b"slow 0".to_vec()), (SLOW, b"slow 1".to_vec())]
    );
    shared.send(OTHER, b"eighth").unwrap();
    assert_eq!(drain(&mut rx), vec![(OTHER, b"eighth".to_vec())]);
    assert_eq!(rx.stats().refused(), 0, "{:?}", rx.stats());
}

#[test]
fn a_head_whose_next_segment_is_not_visible_waits_while_its_ring_moves_on() {
    let lo = Loopback::new(SMALL).unwrap();
    let peer = RawPeer::new(&lo);
    let mut tx = lo.host().sender(EngineSet::first(2)).unwrap();
    let mut elsewhere = lo.host().sender(EngineSet::single(2)).unwrap();
    let mut rx = lo.nic().receiver().unwrap();
    // A two-segment message: head on engine 0, second segment on engine 1; then three small
    // messages of another flow on engine 0.
    let big: Vec<u8> = (0..400).map(|i| i as u8).collect();
    tx.queue(SLOW, &big).unwrap();
    let after = messages(OTHER, 0..3);
    for (flow, body) in &after {
        tx.queue(*flow, body).unwrap();
    }
    // Engine 0 is published, engine 1 lags (a slow DMA engine, or a sender that publishes in
    // the wrong order): the head is visible, its chain is not.
    peer.set_producer(Direction::ToNic, 0, 4);
    assert_eq!(peer.consumer(Direction::ToNic, 1), 0);
    elsewhere.send(THIRD, b"elsewhere").unwrap();
    let mut got = drain(&mut rx);
    got.sort();
    let mut want = after.clone();
    want.push((THIRD, b"elsewhere".to_vec()));
    want.sort();
    assert_eq!(got, want, "everything but the incomplete message");
    assert!(rx.stats().parked > 0, "{:?}", rx.stats());
    // Once engine 1 is published the message arrives whole.
    tx.publish();
    assert_eq!(drain(&mut rx), vec![(SLOW, big)]);
    assert_eq!(rx.stats().refused(), 0, "{:?}", rx.stats());
}
