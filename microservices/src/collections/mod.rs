//! Reliable collections: the state a stateful service keeps, in a form migration can move.
//!
//! [`ReliableArray`] and [`ReliableMap`] are sized once at construction and never allocate
//! afterwards; both write their contents into a [`SnapshotWriter`] and are rebuilt from a
//! [`SnapshotReader`] (the envelope checks kind, version, length and checksum). A service
//! restores by decoding every collection into new values first and swapping them in only when
//! all decoded, so a bad snapshot leaves the running state untouched.

mod array;
mod map;
mod record;
mod snapshot;

pub use array::ReliableArray;
pub use map::{MapFull, ReliableMap, MAX_CAPACITY};
pub use record::{Bytes, Record};
pub use snapshot::{SnapshotReader, SnapshotWriter};
