//! The optional eventfd doorbell in one process: a receiver that waits sleeps only when its
//! rings are empty (arm, re-check), and a sender with the doorbell rings it only while
//! the receiver says it waits. The same across two processes: `two_process.rs`.

mod common;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use common::{drain, RawPeer, SMALL};
use pcie_channel::{Doorbell, EngineSet, Loopback, Woken};

/// Long enough never to end a wait that a ring should end; a guard against a lost wake-up,
/// not a measurement.
const GUARD: Duration = Duration::from_secs(60);

#[test]
fn a_receiver_with_messages_waiting_does_not_sleep() {
    let lo = Loopback::new(SMALL).unwrap();
    let bell = Doorbell::new().unwrap();
    let mut tx = lo.host().sender(EngineSet::single(0)).unwrap();
    let mut rx = lo.nic().receiver().unwrap();
    tx.send(1, b"there").unwrap();
    // Never rung: only the re-check after arming can end this wait before the guard.
    assert_eq!(rx.wait(&bell, GUARD).unwrap(), Woken::Pending);
    assert_eq!(drain(&mut rx), vec![(1, b"there".to_vec())]);
    assert!(!lo.host().peer_waiting(), "not left armed");
}

#[test]
fn a_wait_on_an_idle_channel_times_out_and_disarms() {
    let lo = Loopback::new(SMALL).unwrap();
    let bell = Doorbell::new().unwrap();
    let mut rx = lo.nic().receiver().unwrap();
    assert_eq!(
        rx.wait(&bell, Duration::from_millis(1)).unwrap(),
        Woken::TimedOut
    );
    assert!(!lo.host().peer_waiting());
}

#[test]
fn a_sender_rings_only_while_the_receiver_waits() {
    let lo = Loopback::new(SMALL).unwrap();
    let bell = Doorbell::new().unwrap();
    let mut tx = lo.host().sender(EngineSet::first(4)).unwrap();
    tx.set_doorbell(Some(&bell));
    let mut rx = lo.nic().receiver().unwrap();
    tx.send(1, b"polled").unwrap();
    assert_eq!(tx.stats().notifications, 0, "nobody waits: no ring");
    assert_eq!(drain(&mut rx).len(), 1);
    // Armed by hand (as `wait` does before it sleeps): the next publication rings.
    assert!(!rx.arm_wait().unwrap(), "nothing new");
    assert!(lo.host().peer_waiting());
    // The NIC's waiting word, +0x10 in its liveness line at 0xC0: armed, first wait.
    let peer = RawPeer::new(&lo);
    assert_eq!(peer.load(0xC0 + 0x10), 1 << 1 | 1);
    tx.send(1, &[9; 600]).unwrap();
    assert_eq!(tx.stats().notifications, 1);
    tx.send(1, b"same wait").unwrap();
    assert_eq!(tx.stats().notifications, 1, "one ring per wait");
    assert!(
        bell.wait(Some(Duration::ZERO)).unwrap(),
        "the eventfd was rung"
    );
    rx.disarm_wait();
    tx.send(1, b"after").unwrap();
    assert_eq!(tx.stats().notifications, 1, "disarmed: no ring");
    assert_eq!(drain(&mut rx).len(), 3);
    // The next wait is a new one: rung again.
    assert!(!rx.arm_wait().unwrap());
    tx.send(1, b"next wait").unwrap();
    assert_eq!(tx.stats().notifications, 2);
    rx.disarm_wait();
    assert_eq!(peer.load(0xC0 + 0x10), 2 << 1, "disarmed after two waits");
}

/// A receiver that died while armed (no drop ran to disarm) leaves bit 0 of its waiting word
/// set: the next receiver of that side clears it, keeping the count, so that no sender rings
/// for a wait nobody is in and the next wait is still a new one.
#[test]
fn a_new_receiver_disarms_the_word_a_dead_one_left_armed() {
    const WORD: usize = 0xC0 + 0x10;
    let lo = Loopback::new(SMALL).unwrap();
    let peer = RawPeer::new(&lo);
    peer.store(WORD, 5 << 1 | 1);
    assert!(lo.host().peer_waiting());
    let mut rx = lo.nic().receiver().unwrap();
    assert!(!lo.host().peer_waiting(), "disarmed");
    assert_eq!(peer.load(WORD), 5 << 1, "the count is kept");
    let bell = Doorbell::new().unwrap();
    let mut tx = lo.host().sender(EngineSet::single(0)).unwrap();
    tx.set_doorbell(Some(&bell));
    tx.send(1, b"polled").unwrap();
    assert_eq!(tx.stats().notifications, 0, "nobody waits: no ring");
    assert_eq!(drain(&mut rx).len(), 1);
    assert!(!rx.arm_wait().unwrap());
    assert_eq!(peer.load(WORD), 6 << 1 | 1, "the next wait is a new one");
    rx.disarm_wait();
}

#[test]
fn a_sleeping_receiver_is_woken_by_each_burst() {
    const BURSTS: usize = 20;
    const PER_BURST: usize = 3;
    let lo = Loopback::new(SMALL).unwrap();
    let bell = Doorbell::new().unwrap();
    let mut rx = lo.nic().receiver().unwrap();
    // Messages the receiver has taken: the sender starts a burst only when the receiver has
    // taken the previous one and armed itself again, so that only the doorbell can wake it.
    let taken = AtomicUsize::new(0);
    std::thread::scope(|scope| {
        let sender = scope.spawn(|| {
            let mut tx = lo.host().sender(EngineSet::first(4)).unwrap();
            tx.set_doorbell(Some(&bell));
            for burst in 0..BURSTS {
                while taken.load(Ordering::Acquire) < burst * PER_BURST || !lo.host().peer_waiting()
                {
                    std::thread::yield_now();
                }
                for flow in 0..PER_BURST as u32 {
                    tx.send(flow, &[burst as u8; 300]).unwrap();
                }
            }
            tx.stats()
        });
        let mut received = Vec::new();
        let mut woken = Vec::new();
        while received.len() < BURSTS * PER_BURST {
            let got = drain(&mut rx);
            if got.is_empty() {
                woken.push(rx.wait(&bell, GUARD).unwrap());
            }
            received.extend(got);
            taken.store(received.len(), Ordering::Release);
        }
        let stats = sender.join().unwrap();
        assert!(
            !woken.contains(&Woken::TimedOut),
            "a wake-up was lost: {woken:?}"
        );
        assert!(woken.contains(&Woken::Rung), "{woken:?}");
        assert!(
            stats.notifications >= 1 && stats.notify_errors == 0,
            "{stats:?}"
        );
        for flow in 0..PER_BURST as u32 {
            let bursts: Vec<u8> = received
                .iter()
                .filter(|(f, _)| *f == flow)
                .map(|(_, body)| body[0])
                .collect();
            assert_eq!(
                bursts,
                (0..BURSTS as u8).collect::<Vec<_>>(),
                "flow {flow} in order"
            );
        }
    });
}
