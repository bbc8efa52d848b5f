//! The channel's attach and receive paths over an arbitrary region image: whatever the bytes,
//! attaching gives a typed error or a channel, and receiving (and arming a wait) never panics or
//! reads outside the region.
#![no_main]

use libfuzzer_sys::fuzz_target;
use pcie_channel::layout::CONTROL_OFFSET;
use pcie_channel::message::MessageHeader;
use pcie_channel::{Channel, EngineSet, Geometry, HeapRegion, Role};

const GEOMETRY: Geometry = Geometry {
    engines: 3,
    ring_entries: 8,
    slot_bytes: 64,
    lanes: 4,
};

/// Delivers what the image holds by every receive path, a few rounds, and sends a little by
/// both send paths so credits are read too.
fn exercise(channel: &Channel) {
    let Ok(mut rx) = channel.receiver() else {
        return;
    };
    let mut buf = [0u8; 1024];
    for _ in 0..4 {
        let _ = rx.poll(16, |m| {
            let mut copy = [0u8; 8192];
            let n = m.copy_to(&mut copy).unwrap_or(0);
            let _ = MessageHeader::parse(&copy[..n]);
            let _ = m.segments().map(|s| s.len()).sum::<usize>();
        });
        let _ = rx.recv_into(&mut buf);
        if let Ok(Some(received)) = rx.recv() {
            let _ = received.message().segments().map(|s| s.len()).sum::<usize>();
        }
        // What a receiver about to sleep does (docs/pcie-channel.md §4.4), minus the sleep.
        if let Ok(false) = rx.pending() {
            let _ = rx.arm_wait();
            rx.disarm_wait();
        }
    }
    if let Ok(mut tx) = channel.sender(EngineSet::first(channel.geometry().engines as usize)) {
        let _ = tx.send(7, &buf[..200]);
        let _ = tx.send_with(3, |i, slot| {
            slot[..8].copy_from_slice(&buf[i * 8..i * 8 + 8]);
            Some((i as u32, 8))
        });
    }
    let _ = channel.read_boot_config(&mut buf);
}

fuzz_target!(|data: &[u8]| {
    let Some((&mode, image)) = data.split_first() else {
        return;
    };
    let region = HeapRegion::new(GEOMETRY.region_bytes());
    // SAFETY: the heap region is valid, page-aligned and outlives every channel below; only
    // those channels and the raw copies here touch it, one at a time.
    unsafe {
        let Ok(host) = Channel::create_raw(region.as_mut_ptr(), region.len(), GEOMETRY) else {
            return;
        };
        drop(host);
        // Mode bit 0: the image covers the header too (attach must refuse it cleanly or
        // accept a consistent one); otherwise it covers the rings from the control blocks on.
        let start = if mode & 1 == 0 { 0 } else { CONTROL_OFFSET };
        let n = image.len().min(region.len() - start);
        core::ptr::copy_nonoverlapping(image.as_ptr(), region.as_mut_ptr().add(start), n);
        let role = if mode & 2 == 0 { Role::Nic } else { Role::Host };
        if let Ok(channel) = Channel::attach_raw(region.as_mut_ptr(), region.len(), role) {
            exercise(&channel);
        }
    }
});
