//! Helpers shared by the integration tests.

use pcie_channel::{Geometry, Receiver};

/// Four engines of eight entries of 256 bytes: rings that fill quickly. A quarter of a ring
/// (the publication and credit-return interval) is two entries.
pub const SMALL: Geometry = Geometry {
    engines: 4,
    ring_entries: 8,
    slot_bytes: 256,
    lanes: 16,
};

/// Receives everything that is there: (flow, bytes) in delivery order.
pub fn drain(rx: &mut Receiver<'_>) -> Vec<(u32, Vec<u8>)> {
    let mut out = Vec::new();
    while rx
        .poll(64, |m| {
            let mut buf = vec![0; m.len()];
            m.copy_to(&mut buf).unwrap();
            out.push((m.flow(), buf));
        })
        .unwrap()
        > 0
    {}
    out
}
