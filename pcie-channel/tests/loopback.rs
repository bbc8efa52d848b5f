//! The channel end to end in one process: both sides over one heap region.

mod common;

use common::{drain, SMALL};
use pcie_channel::message::{MessageHeader, UdpAddressing};
use pcie_channel::{
    ChannelError, ClaimError, EngineSet, Geometry, Loopback, PeerStatus, PeerWatch, SideState,
};

#[test]
fn a_udp_request_travels_nic_to_host_and_the_reply_back() {
    let lo = Loopback::new(Geometry::DEFAULT).unwrap();
    let mut nic_tx = lo.nic().sender(EngineSet::single(3)).unwrap();
    let mut host_rx = lo.host().receiver().unwrap();
    let request = UdpAddressing {
        src_ip: [192, 168, 1, 7].into(),
        src_port: 5555,
        dst_ip: [192, 168, 1, 1].into(),
        dst_port: 7000,
    };
    let mut buf = [0u8; 64];
    let n = MessageHeader::UdpRequest(request)
        .encode(b"GET k", &mut buf)
        .unwrap();
    nic_tx.send(0xabcd, &buf[..n]).unwrap();

    let got = drain(&mut host_rx);
    assert_eq!(got.len(), 1);
    assert_eq!(got[0].0, 0xabcd);
    let (header, payload) = MessageHeader::parse(&got[0].1).unwrap();
    assert_eq!(header, MessageHeader::UdpRequest(request));
    assert_eq!(payload, b"GET k");

    // The host answers zero-copy through a reservation.
    let mut host_tx = lo.host().sender(EngineSet::first(8)).unwrap();
    let mut reservation = host_tx.reserve(0xabcd, 64).unwrap();
    let n = MessageHeader::UdpReply(request.reply())
        .encode(b"VALUE", reservation.buffer())
        .unwrap();
    reservation.commit(n).unwrap();
    let mut nic_rx = lo.nic().receiver().unwrap();
    let received = nic_rx.recv().unwrap().expect("the reply is there");
    let message = received.message();
    let (header, payload) = MessageHeader::parse(message.as_contiguous().unwrap()).unwrap();
    assert_eq!(header, MessageHeader::UdpReply(request.reply()));
    assert_eq!(payload, b"VALUE");
}

#[test]
fn large_messages_are_split_over_engines_and_reassembled() {
    let lo = Loopback::new(SMALL).unwrap();
    let mut tx = lo.host().sender(EngineSet::first(4)).unwrap();
    let mut rx = lo.nic().receiver().unwrap();
    let big: Vec<u8> = (0..SMALL.slot_bytes as usize * 5 + 17)
        .map(|i| (i * 7) as u8)
        .collect();
    tx.send(1, &big).unwrap();
    tx.send(1, b"after").unwrap();
    let mut seen = Vec::new();
    rx.poll(8, |m| {
        assert_eq!(m.as_contiguous().is_some(), m.len() <= 256);
        let mut buf = vec![0; m.len()];
        m.copy_to(&mut buf).unwrap();
        seen.push(buf);
    })
    .unwrap();
    assert_eq!(seen, vec![big, b"after".to_vec()]);
    assert_eq!(tx.stats().segments, 7);
}

#[test]
fn a_full_channel_says_would_block_and_loses_nothing() {
    let lo = Loopback::new(SMALL).unwrap();
    let mut tx = lo.host().sender(EngineSet::single(0)).unwrap();
    let mut rx = lo.nic().receiver().unwrap();
    for i in 0..8u8 {
        tx.send(u32::from(i), &[i; 10]).unwrap();
    }
    assert_eq!(tx.send(9, b"x"), Err(ChannelError::WouldBlock));
    assert_eq!(
        tx.send(9, &[0; 257 * 8]),
        Err(ChannelError::TooLarge {
            len: 257 * 8,
            max: 8 * 256
        })
    );
    let mut buf = [0u8; 16];
    assert_eq!(rx.recv_into(&mut buf).unwrap(), Some((0, 10)));
    tx.send(9, b"x").unwrap();
    let rest = drain(&mut rx);
    assert_eq!(rest.len(), 8);
    assert_eq!(rest.last().unwrap(), &(9, b"x".to_vec()));
    assert_eq!(tx.stats().would_block, 1);
}

#[test]
fn one_flow_from_two_senders_arrives_in_send_order() {
    let lo = Loopback::new(SMALL).unwrap();
    let mut a = lo.nic().sender(EngineSet::single(0)).unwrap();
    let mut b = lo.nic().sender(EngineSet::single(1)).unwrap();
    let mut rx = lo.host().receiver().unwrap();
    // Sequence numbers are taken in this order; b's engine is scanned after a's, so the
    // receiver must park a's later messages until b's earlier ones arrive.
    b.send(5, b"0").unwrap();
    a.send(5, b"1").unwrap();
    b.send(5, b"2").unwrap();
    a.send(5, b"3").unwrap();
    a.send(6, b"other flow").unwrap();
    let all = drain(&mut rx);
    assert!(rx.stats().rescans > 0, "the test must exercise parking");
    let got: Vec<_> = all
        .into_iter()
        .filter(|(flow, _)| *flow == 5)
        .map(|(_, body)| body)
        .collect();
    assert_eq!(
        got,
        vec![b"0".to_vec(), b"1".to_vec(), b"2".to_vec(), b"3".to_vec()]
    );
}

#[test]
fn a_message_that_does_not_fit_the_buffer_stays_queued() {
    let lo = Loopback::new(SMALL).unwrap();
    let mut tx = lo.host().sender(EngineSet::single(0)).unwrap();
    let mut rx = lo.nic().receiver().unwrap();
    tx.send(1, &[7; 100]).unwrap();
    let mut small = [0u8; 10];
    assert_eq!(
        rx.recv_into(&mut small),
        Err(ChannelError::BufferTooSmall { len: 100 })
    );
    let mut big = [0u8; 100];
    assert_eq!(rx.recv_into(&mut big).unwrap(), Some((1, 100)));
}

#[test]
fn an_abandoned_reservation_sends_nothing_and_keeps_order() {
    let lo = Loopback::new(SMALL).unwrap();
    let mut tx = lo.host().sender(EngineSet::single(0)).unwrap();
    let mut rx = lo.nic().receiver().unwrap();
    drop(tx.reserve(1, 100).unwrap());
    let too_long = tx.reserve(1, 10).unwrap();
    assert!(too_long.commit(11).is_err());
    tx.send(1, b"only").unwrap();
    assert_eq!(drain(&mut rx), vec![(1, b"only".to_vec())]);
}

#[test]
fn engines_and_receivers_are_claimed_once() {
    let lo = Loopback::new(SMALL).unwrap();
    let first = lo.host().sender(EngineSet::first(2)).unwrap();
    assert_eq!(
        lo.host().sender(EngineSet::single(1)).err(),
        Some(ClaimError::EngineBusy(EngineSet::single(1)))
    );
    assert!(matches!(
        lo.host().sender(EngineSet::single(4)),
        Err(ClaimError::NoSuchEngine(_))
    ));
    drop(first);
    let _again = lo.host().sender(EngineSet::first(4)).unwrap();
    let _rx = lo.host().receiver().unwrap();
    assert!(matches!(
        lo.host().receiver(),
        Err(ClaimError::ReceiverBusy)
    ));
}

#[test]
fn boot_configuration_round_trips_and_detects_corruption() {
    let lo = Loopback::new(SMALL).unwrap();
    let mut out = [0u8; 64];
    assert_eq!(
        lo.nic().read_boot_config(&mut out),
        Err(pcie_channel::BootConfigError::Missing)
    );
    lo.host().write_boot_config(b"nic_ip=10.0.0.2").unwrap();
    assert_eq!(lo.nic().read_boot_config(&mut out), Ok(15));
    assert_eq!(&out[..15], b"nic_ip=10.0.0.2");
    assert!(matches!(
        lo.nic().read_boot_config(&mut [0u8; 4]),
        Err(pcie_channel::BootConfigError::BufferTooSmall { stored: 15 })
    ));
    // SAFETY: a byte of the configuration, inside the boot area.
    unsafe { lo.base().add(0x1000 + 16 + 3).write_volatile(b'X') };
    assert!(matches!(
        lo.nic().read_boot_config(&mut out),
        Err(pcie_channel::BootConfigError::Checksum { .. })
    ));
    assert!(lo
        .host()
        .write_boot_config(&vec![0; pcie_channel::BOOT_CONFIG_CAPACITY + 1])
        .is_err());
}

#[test]
fn a_stalled_heartbeat_disconnects_until_it_moves_again() {
    let lo = Loopback::new(SMALL).unwrap();
    let mut tx = lo.host().sender(EngineSet::single(0)).unwrap();
    let mut watch = PeerWatch::new(1_000);
    lo.nic().beat();
    assert_eq!(lo.host().check_peer(&mut watch, 0), PeerStatus::Alive);
    assert_eq!(lo.host().check_peer(&mut watch, 900), PeerStatus::Alive);
    assert_eq!(
        lo.host().check_peer(&mut watch, 1_001),
        PeerStatus::Stalled { since: 0 }
    );
    assert_eq!(tx.send(1, b"x"), Err(ChannelError::Disconnected));
    lo.nic().beat();
    assert_eq!(lo.host().check_peer(&mut watch, 1_002), PeerStatus::Alive);
    tx.send(1, b"x").unwrap();
    assert_eq!(lo.nic().peer_state(), SideState::Ready);
}

#[test]
fn a_corrupt_producer_index_fails_the_channel() {
    let lo = Loopback::new(SMALL).unwrap();
    let mut rx = lo.nic().receiver().unwrap();
    let control = lo
        .host()
        .layout()
        .control(pcie_channel::Direction::ToNic, 2);
    // SAFETY: the producer index of ring (ToNic, 2), inside the region.
    unsafe { lo.base().add(control).cast::<u32>().write_volatile(1000) };
    let error = rx.poll(1, |_| {}).unwrap_err();
    assert!(
        matches!(error, ChannelError::Failed(f) if f.engine == 2),
        "{error}"
    );
    assert_eq!(lo.host().peer_state(), SideState::Failed);
    assert!(lo.nic().failure().is_some());
}

#[test]
fn corrupt_descriptors_are_counted_and_skipped() {
    let lo = Loopback::new(SMALL).unwrap();
    let mut tx = lo.host().sender(EngineSet::single(0)).unwrap();
    let mut rx = lo.nic().receiver().unwrap();
    tx.send(1, b"first").unwrap();
    tx.send(2, b"second").unwrap();
    let descriptors = lo
        .host()
        .layout()
        .descriptor_array(pcie_channel::Direction::ToNic, 0);
    // Entry 0: make its length larger than the slot.
    // SAFETY: byte 8 (length, low byte) and 9 of descriptor 0, inside the region.
    unsafe {
        lo.base().add(descriptors + 9).write_volatile(0xff);
    }
    assert_eq!(drain(&mut rx), vec![(2, b"second".to_vec())]);
    assert_eq!(rx.stats().corrupt, 1);
    assert_eq!(rx.stats().skipped, 1);
    // The lane of flow 1 moved past the broken message: its next message is delivered.
    tx.send(1, b"third").unwrap();
    assert_eq!(drain(&mut rx), vec![(1, b"third".to_vec())]);
}

#[test]
fn header_bytes_match_the_spec() {
    let lo = Loopback::new(Geometry::DEFAULT).unwrap();
    // SAFETY: the first 0x100 bytes of the loopback's region.
    let header = unsafe { std::slice::from_raw_parts(lo.base(), 0x100) };
    let u32_at = |o: usize| u32::from_le_bytes(header[o..o + 4].try_into().unwrap());
    assert_eq!(&header[..8], b"E3PCIECH");
    assert_eq!(pcie_channel::header::MAGIC, 0x4843_4549_4350_3345);
    let expected = [
        (0x08, 1),
        (0x0C, 0),
        (0x10, 8),
        (0x14, 256),
        (0x18, 2048),
        (0x1C, 256),
        (0x20, 0x81_4000),
        (0x24, 0),
        (0x28, 0x1000),
        (0x2C, 0x2000),
        (0x30, 0x3000),
        (0x34, 0x3800),
        (0x38, 0x14000),
    ];
    for (offset, value) in expected {
        assert_eq!(u32_at(offset), value, "field at {offset:#x}");
    }
    assert_eq!(u32_at(0x3C), common::crc32(&header[0x08..0x3C]));
    assert_eq!(u32_at(0x80), 1, "host ready");
    assert_eq!(u32_at(0xC0), 1, "nic ready");
}

#[test]
fn endpoints_move_to_other_threads() {
    fn is_send<T: Send>(_: &T) {}
    let lo = Loopback::new(SMALL).unwrap();
    let tx = lo.host().sender(EngineSet::single(0)).unwrap();
    let rx = lo.nic().receiver().unwrap();
    is_send(&tx);
    is_send(&rx);
    fn is_sync<T: Sync>(_: &T) {}
    is_sync(lo.host());
}
