//! The batched paths: zero-copy batch sends (`send_with`), queued reservations, the publication
//! and credit-return intervals inside a batch, and sequence numbers across a sender that owns
//! every engine and senders that share the lanes.

mod common;

use common::{drain, SMALL};
use pcie_channel::{ChannelError, EngineSet, Loopback};

#[test]
fn send_with_writes_in_place_and_publishes_once() {
    let lo = Loopback::new(SMALL).unwrap();
    let mut tx = lo.host().sender(EngineSet::single(2)).unwrap();
    let mut rx = lo.nic().receiver().unwrap();
    let sent = tx
        .send_with(5, |i, slot| {
            assert_eq!(slot.len(), 256, "the whole slot is lent");
            slot[..=i].fill(i as u8);
            Some((i as u32 % 2, 1 + i))
        })
        .unwrap();
    assert_eq!(sent, 5);
    let got = drain(&mut rx);
    let expected: Vec<_> = (0..5u8)
        .map(|i| (u32::from(i) % 2, vec![i; 1 + usize::from(i)]))
        .collect();
    assert_eq!(got, expected);
    assert_eq!(tx.stats().messages, 5);
    assert_eq!(rx.stats().messages, 5);
}

#[test]
fn send_with_stops_at_none_at_the_credit_and_at_a_length_beyond_the_slot() {
    let lo = Loopback::new(SMALL).unwrap();
    let mut tx = lo.host().sender(EngineSet::single(0)).unwrap();
    let mut rx = lo.nic().receiver().unwrap();
    // `None` ends the batch; nothing is sent for that slot.
    assert_eq!(
        tx.send_with(4, |i, _| (i < 2).then_some((7, 0))),
        Ok(2),
        "two sent, then the batch ended"
    );
    // Six entries are left on the only engine: a batch of ten sends six.
    assert_eq!(tx.send_with(10, |_, _| Some((7, 1))), Ok(6));
    assert_eq!(
        tx.send_with(1, |_, _| Some((7, 1))),
        Err(ChannelError::WouldBlock)
    );
    assert_eq!(drain(&mut rx).len(), 8);
    // A length beyond the slot ends the batch with an error when it is the first message...
    assert_eq!(
        tx.send_with(3, |_, _| Some((7, 257))),
        Err(ChannelError::TooLarge { len: 257, max: 256 })
    );
    // ...and after the messages before it otherwise.
    assert_eq!(
        tx.send_with(3, |i, _| Some((7, if i == 1 { 300 } else { 4 }))),
        Ok(1)
    );
    assert_eq!(drain(&mut rx).len(), 1);
}

#[test]
fn queued_reservations_become_visible_at_publish() {
    let lo = Loopback::new(SMALL).unwrap();
    let mut tx = lo.host().sender(EngineSet::first(2)).unwrap();
    let mut rx = lo.nic().receiver().unwrap();
    for i in 0..3u8 {
        let mut reservation = tx.reserve(1, 4).unwrap();
        reservation.buffer().copy_from_slice(&[i; 4]);
        reservation.queue(4).unwrap();
    }
    assert!(drain(&mut rx).is_empty(), "nothing published yet");
    tx.publish();
    let got = drain(&mut rx);
    assert_eq!(
        got,
        (0..3u8).map(|i| (1, vec![i; 4])).collect::<Vec<_>>(),
        "in reservation order"
    );
}

#[test]
fn large_messages_of_a_batch_flow_before_the_batch_ends() {
    let lo = Loopback::new(SMALL).unwrap();
    let mut tx = lo.host().sender(EngineSet::first(4)).unwrap();
    let mut rx = lo.nic().receiver().unwrap();
    // Two segments a message: the second message reaches the interval of two entries.
    let big = vec![9u8; 300];
    let mut seen_during_batch = 0;
    let messages = (0..4).map(|i| {
        if i == 3 {
            seen_during_batch = drain(&mut rx).len();
        }
        (5, &big[..])
    });
    assert_eq!(tx.send_batch(messages), Ok(4));
    assert!(
        seen_during_batch >= 2,
        "published while the batch was written (saw {seen_during_batch})"
    );
    assert_eq!(seen_during_batch + drain(&mut rx).len(), 4);
}

#[test]
fn a_long_poll_returns_credit_while_it_runs() {
    let lo = Loopback::new(SMALL).unwrap();
    let mut tx = lo.host().sender(EngineSet::single(0)).unwrap();
    let mut rx = lo.nic().receiver().unwrap();
    for i in 0..8u32 {
        tx.send(i, b"x").unwrap();
    }
    assert_eq!(tx.send(8, b"x"), Err(ChannelError::WouldBlock));
    // The sixth callback runs after four entries were released: two intervals of two.
    let mut refilled = None;
    let mut seen = 0;
    rx.poll(8, |_| {
        seen += 1;
        if seen == 6 {
            refilled = Some(tx.send(8, b"y"));
        }
    })
    .unwrap();
    assert_eq!(refilled, Some(Ok(())), "credit came back during the poll");
    assert_eq!(drain(&mut rx), vec![(8, b"y".to_vec())]);
}

#[test]
fn sequence_numbers_carry_over_between_a_sole_sender_and_shared_ones() {
    let lo = Loopback::new(SMALL).unwrap();
    let mut rx = lo.nic().receiver().unwrap();
    for round in 0..3u8 {
        // The sole sender of the direction (every engine) ...
        let mut sole = lo.host().sender(EngineSet::first(4)).unwrap();
        sole.send(3, &[round, 0]).unwrap();
        sole.send(3, &[round, 1]).unwrap();
        drop(sole);
        // ... then two senders sharing lane 3, the later one on an engine scanned first.
        let mut late = lo.host().sender(EngineSet::single(3)).unwrap();
        let mut early = lo.host().sender(EngineSet::single(0)).unwrap();
        late.send(3, &[round, 2]).unwrap();
        early.send(3, &[round, 3]).unwrap();
        let expected: Vec<_> = (0..4).map(|i| (3, vec![round, i])).collect();
        assert_eq!(drain(&mut rx), expected);
    }
    assert_eq!(rx.stats().corrupt + rx.stats().orphans, 0);
}
