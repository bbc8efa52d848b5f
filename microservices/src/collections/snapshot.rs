//! The snapshot envelope: a header naming the service kind and format version, the payload
//! written by the service's collections, and a checksum over the payload.
//!
//! ```text
//! offset size
//!      0    4  magic "E3RC"
//!      4    1  service kind (ServiceKind as u8)
//!      5    1  format version of that service's state
//!      6    2  reserved, zero
//!      8    4  payload length N (little-endian)
//!     12    N  payload
//!   12+N    4  FNV-1a 32 of the payload (little-endian)
//! ```

use alloc::vec::Vec;

use super::record::Record;
use crate::kind::ServiceKind;
use crate::service::StateError;

const MAGIC: [u8; 4] = *b"E3RC";
const HEADER: usize = 12;
const TRAILER: usize = 4;

fn fnv1a32(bytes: &[u8]) -> u32 {
    bytes.iter().fold(0x811c_9dc5, |hash, &b| {
        (hash ^ u32::from(b)).wrapping_mul(0x0100_0193)
    })
}

/// Appends one snapshot to a byte vector; [`SnapshotWriter::finish`] seals it.
pub struct SnapshotWriter<'a> {
    out: &'a mut Vec<u8>,
    start: usize,
}

impl<'a> SnapshotWriter<'a> {
    /// Starts a snapshot of a `kind` service's state in format `version`.
    pub fn new(out: &'a mut Vec<u8>, kind: ServiceKind, version: u8) -> Self {
        let start = out.len();
        out.extend_from_slice(&MAGIC);
        out.extend_from_slice(&[kind as u8, version, 0, 0, 0, 0, 0, 0]);
        Self { out, start }
    }

    /// Appends one record.
    pub fn record<T: Record>(&mut self, value: &T) -> &mut Self {
        let at = self.out.len();
        self.out.resize(at + T::SIZE, 0);
        value.encode(&mut self.out[at..]);
        self
    }

    /// Appends a length or count (as `u32`).
    pub fn count(&mut self, n: usize) -> &mut Self {
        // Collections are sized at construction far below 4 G entries.
        self.record(&u32::try_from(n).unwrap_or(u32::MAX))
    }

    /// Appends a byte string: its length (as `u32`), then the bytes.
    pub fn bytes(&mut self, bytes: &[u8]) -> &mut Self {
        self.count(bytes.len());
        self.out.extend_from_slice(bytes);
        self
    }

    /// Writes the payload length and the checksum.
    pub fn finish(self) {
        let payload = self.start + HEADER;
        let len = self.out.len() - payload;
        let len32 = u32::try_from(len).unwrap_or(u32::MAX);
        self.out[self.start + 8..payload].copy_from_slice(&len32.to_le_bytes());
        let sum = fnv1a32(&self.out[payload..]);
        self.out.extend_from_slice(&sum.to_le_bytes());
    }
}

/// Reads one snapshot back, after checking its header, length and checksum.
#[derive(Debug)]
pub struct SnapshotReader<'a> {
    payload: &'a [u8],
}

impl<'a> SnapshotReader<'a> {
    /// Opens `bytes` as a snapshot of a `kind` service in format `version`.
    pub fn open(bytes: &'a [u8], kind: ServiceKind, version: u8) -> Result<Self, StateError> {
        let (header, rest) = bytes
            .split_first_chunk::<HEADER>()
            .ok_or(StateError::Truncated)?;
        if header[..4] != MAGIC || header[4] != kind as u8 || header[5] != version {
            return Err(StateError::WrongKind);
        }
        let len = u32::from_le_bytes([header[8], header[9], header[10], header[11]]) as usize;
        if rest.len() < len.saturating_add(TRAILER) {
            return Err(StateError::Truncated);
        }
        if rest.len() > len + TRAILER || header[6..8] != [0, 0] {
            return Err(StateError::Corrupt);
        }
        let (payload, sum) = rest.split_at(len);
        if fnv1a32(payload).to_le_bytes() != sum {
            return Err(StateError::Corrupt);
        }
        Ok(Self { payload })
    }

    /// Reads one record.
    pub fn record<T: Record>(&mut self) -> Result<T, StateError> {
        let (bytes, rest) = self
            .payload
            .split_at_checked(T::SIZE)
            .ok_or(StateError::Corrupt)?;
        self.payload = rest;
        T::decode(bytes).ok_or(StateError::Corrupt)
    }

    /// Reads a count written by [`SnapshotWriter::count`], refusing more than `max`.
    pub fn count(&mut self, max: usize) -> Result<usize, StateError> {
        let n = self.record::<u32>()? as usize;
        if n > max {
            return Err(StateError::TooLarge);
        }
        Ok(n)
    }

    /// Reads a byte string written by [`SnapshotWriter::bytes`].
    pub fn bytes(&mut self) -> Result<&'a [u8], StateError> {
        let len = self.record::<u32>()? as usize;
        let (bytes, rest) = self
            .payload
            .split_at_checked(len)
            .ok_or(StateError::Corrupt)?;
        self.payload = rest;
        Ok(bytes)
    }

    /// Checks that the whole payload was read.
    pub fn finish(self) -> Result<(), StateError> {
        if self.payload.is_empty() {
            Ok(())
        } else {
            Err(StateError::Corrupt)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> Vec<u8> {
        let mut out = Vec::new();
        let mut w = SnapshotWriter::new(&mut out, ServiceKind::Kvs, 1);
        w.count(2).record(&7u64).record(&-1i32);
        w.finish();
        out
    }

    #[test]
    fn round_trip() {
        let bytes = sample();
        let mut r = SnapshotReader::open(&bytes, ServiceKind::Kvs, 1).unwrap();
        assert_eq!(r.count(2), Ok(2));
        assert_eq!(r.record::<u64>(), Ok(7));
        assert_eq!(r.record::<i32>(), Ok(-1));
        r.finish().unwrap();
    }

    #[test]
    fn every_corruption_is_caught() {
        let bytes = sample();
        assert_eq!(
            SnapshotReader::open(&bytes, ServiceKind::Count, 1).unwrap_err(),
            StateError::WrongKind
        );
        assert_eq!(
            SnapshotReader::open(&bytes, ServiceKind::Kvs, 2).unwrap_err(),
            StateError::WrongKind
        );
        for cut in 0..bytes.len() {
            assert!(SnapshotReader::open(&bytes[..cut], ServiceKind::Kvs, 1).is_err());
        }
        for i in HEADER..bytes.len() {
            let mut flipped = bytes.clone();
            flipped[i] ^= 0x10;
            assert_eq!(
                SnapshotReader::open(&flipped, ServiceKind::Kvs, 1).unwrap_err(),
                StateError::Corrupt
            );
        }
        let mut r = SnapshotReader::open(&bytes, ServiceKind::Kvs, 1).unwrap();
        assert_eq!(r.count(1), Err(StateError::TooLarge));
    }
}
