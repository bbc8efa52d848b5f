//! Fixed-size little-endian encoding of the values reliable collections hold.

use core::borrow::Borrow;
use core::fmt;
use core::hash::{Hash, Hasher};
use core::sync::atomic::{AtomicU64, Ordering};

/// A value with a fixed-size byte encoding, so collections can snapshot it.
pub trait Record: Sized {
    /// Encoded size in bytes.
    const SIZE: usize;
    /// Writes the encoding into `out`, which is exactly [`Record::SIZE`] bytes long.
    fn encode(&self, out: &mut [u8]);
    /// Reads a value back from exactly [`Record::SIZE`] bytes; `None` if they encode no value.
    fn decode(bytes: &[u8]) -> Option<Self>;
}

macro_rules! le_record {
    ($($ty:ty),*) => {$(
        impl Record for $ty {
            const SIZE: usize = core::mem::size_of::<$ty>();
            fn encode(&self, out: &mut [u8]) {
                out.copy_from_slice(&self.to_le_bytes());
            }
            fn decode(bytes: &[u8]) -> Option<Self> {
                Some(<$ty>::from_le_bytes(bytes.try_into().ok()?))
            }
        }
    )*};
}

le_record!(u8, u16, u32, u64, i32, i64, f32, f64);

impl Record for AtomicU64 {
    const SIZE: usize = 8;
    fn encode(&self, out: &mut [u8]) {
        self.load(Ordering::Relaxed).encode(out);
    }
    fn decode(bytes: &[u8]) -> Option<Self> {
        u64::decode(bytes).map(AtomicU64::new)
    }
}

impl<const N: usize> Record for [u8; N] {
    const SIZE: usize = N;
    fn encode(&self, out: &mut [u8]) {
        out.copy_from_slice(self);
    }
    fn decode(bytes: &[u8]) -> Option<Self> {
        bytes.try_into().ok()
    }
}

macro_rules! tuple_record {
    ($($part:ident)+) => {
        #[allow(non_snake_case)]
        impl<$($part: Record),+> Record for ($($part,)+) {
            const SIZE: usize = 0 $(+ <$part as Record>::SIZE)+;
            fn encode(&self, out: &mut [u8]) {
                let ($($part,)+) = self;
                let mut rest = out;
                $(
                    let (head, tail) = rest.split_at_mut(<$part as Record>::SIZE);
                    $part.encode(head);
                    rest = tail;
                )+
                let _ = rest;
            }
            fn decode(bytes: &[u8]) -> Option<Self> {
                let mut rest = bytes;
                $(
                    let (head, tail) = rest.split_at_checked(<$part as Record>::SIZE)?;
                    let $part = <$part as Record>::decode(head)?;
                    rest = tail;
                )+
                rest.is_empty().then_some(($($part,)+))
            }
        }
    };
}

tuple_record!(A B);
tuple_record!(A B C);
tuple_record!(A B C D);

/// A byte string of at most `N` bytes stored inline (keys and values of fixed-slot tables).
///
/// Equality and hashing look only at the stored bytes, the same as for `[u8]`, so a table
/// keyed by `Bytes<N>` can be searched with a plain `&[u8]`.
#[derive(Clone)]
pub struct Bytes<const N: usize> {
    len: u16,
    data: [u8; N],
}

impl<const N: usize> Bytes<N> {
    /// The empty byte string.
    pub const fn empty() -> Self {
        Self {
            len: 0,
            data: [0; N],
        }
    }

    /// Copies `bytes`; `None` if longer than `N`.
    pub fn new(bytes: &[u8]) -> Option<Self> {
        let mut data = [0u8; N];
        data.get_mut(..bytes.len())?.copy_from_slice(bytes);
        Some(Self {
            len: u16::try_from(bytes.len()).ok()?,
            data,
        })
    }

    /// Replaces the contents with `bytes`; `false` (and unchanged) if longer than `N`.
    pub fn set(&mut self, bytes: &[u8]) -> bool {
        match (self.data.get_mut(..bytes.len()), u16::try_from(bytes.len())) {
            (Some(dst), Ok(len)) => {
                dst.copy_from_slice(bytes);
                self.len = len;
                true
            }
            _ => false,
        }
    }

    /// The stored bytes.
    pub fn as_slice(&self) -> &[u8] {
        &self.data[..usize::from(self.len)]
    }
}

impl<const N: usize> PartialEq for Bytes<N> {
    fn eq(&self, other: &Self) -> bool {
        self.as_slice() == other.as_slice()
    }
}

impl<const N: usize> Eq for Bytes<N> {}

impl<const N: usize> Hash for Bytes<N> {
    fn hash<H: Hasher>(&self, state: &mut H) {
        self.as_slice().hash(state);
    }
}

impl<const N: usize> Borrow<[u8]> for Bytes<N> {
    fn borrow(&self) -> &[u8] {
        self.as_slice()
    }
}

impl<const N: usize> fmt::Debug for Bytes<N> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Bytes({:02x?})", self.as_slice())
    }
}

impl<const N: usize> Record for Bytes<N> {
    const SIZE: usize = 2 + N;
    fn encode(&self, out: &mut [u8]) {
        let (len, data) = out.split_at_mut(2);
        self.len.encode(len);
        data.copy_from_slice(&self.data);
    }
    fn decode(bytes: &[u8]) -> Option<Self> {
        let (len, data) = bytes.split_at_checked(2)?;
        let len = u16::decode(len)?;
        let data: [u8; N] = data.try_into().ok()?;
        // Bytes past the length must be zero: the encoding of a value is unique.
        let tail = data.get(usize::from(len)..)?;
        tail.iter().all(|&b| b == 0).then_some(Self { len, data })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn round_trip<T: Record>(value: &T) -> Option<T> {
        let mut buf = alloc::vec![0u8; T::SIZE];
        value.encode(&mut buf);
        T::decode(&buf)
    }

    #[test]
    fn scalars_tuples_and_bytes_round_trip() {
        assert_eq!(round_trip(&0x1234_5678u32), Some(0x1234_5678));
        assert_eq!(round_trip(&(1u8, -2i64, 3.5f64)), Some((1, -2, 3.5)));
        let b = Bytes::<8>::new(b"key").unwrap();
        assert_eq!(round_trip(&b), Some(b));
        assert!(Bytes::<2>::new(b"long").is_none());
    }

    #[test]
    fn bytes_with_garbage_past_the_length_do_not_decode() {
        let mut buf = [0u8; 2 + 4];
        Bytes::<4>::new(b"ab").unwrap().encode(&mut buf);
        buf[5] = 1;
        assert!(Bytes::<4>::decode(&buf).is_none());
        buf[0] = 9;
        assert!(Bytes::<4>::decode(&buf).is_none());
    }
}
