//! Bounds-checked request decoding and response encoding, shared by every service.
//!
//! All integers and floats are little-endian. A [`Request`] never reads past its slice: a
//! fixed field that is missing answers [`ServiceError::Truncated`], a counted field whose
//! count runs past the end answers [`ServiceError::BadLength`]. Bytes after the last field are
//! ignored (clients may pad requests to a fixed size). A [`Response`] writes the success status
//! byte first and answers [`ServiceError::ResponseTooSmall`] instead of overrunning.

use alloc::vec::Vec;

use crate::service::ServiceError;

/// A cursor over one request.
#[derive(Clone, Debug)]
pub struct Request<'a> {
    bytes: &'a [u8],
}

macro_rules! read_le {
    ($($name:ident: $ty:ty),* $(,)?) => {$(
        #[doc = concat!("Reads a little-endian `", stringify!($ty), "`.")]
        pub fn $name(&mut self) -> Result<$ty, ServiceError> {
            Ok(<$ty>::from_le_bytes(self.array()?))
        }
    )*};
}

impl<'a> Request<'a> {
    /// A cursor at the start of `bytes`.
    pub fn new(bytes: &'a [u8]) -> Self {
        Self { bytes }
    }

    /// Bytes not read yet.
    pub fn remaining(&self) -> usize {
        self.bytes.len()
    }

    /// The unread bytes, consuming them all.
    pub fn rest(&mut self) -> &'a [u8] {
        core::mem::take(&mut self.bytes)
    }

    /// The next `N` bytes of a fixed field.
    pub fn array<const N: usize>(&mut self) -> Result<[u8; N], ServiceError> {
        let (head, tail) = self
            .bytes
            .split_first_chunk::<N>()
            .ok_or(ServiceError::Truncated)?;
        self.bytes = tail;
        Ok(*head)
    }

    /// The next `len` bytes, where `len` came from a length field of the request.
    pub fn bytes(&mut self, len: usize) -> Result<&'a [u8], ServiceError> {
        if len > self.bytes.len() {
            return Err(ServiceError::BadLength);
        }
        let (head, tail) = self.bytes.split_at(len);
        self.bytes = tail;
        Ok(head)
    }

    /// `count` records of `size` bytes each, where `count` came from the request.
    pub fn records(&mut self, count: usize, size: usize) -> Result<&'a [u8], ServiceError> {
        let len = count.checked_mul(size).ok_or(ServiceError::BadLength)?;
        self.bytes(len)
    }

    read_le! {
        u8: u8,
        u16: u16,
        u32: u32,
        u64: u64,
        i64: i64,
        f32: f32,
        f64: f64,
    }

    /// Reads an `f64` that must be finite.
    pub fn finite_f64(&mut self) -> Result<f64, ServiceError> {
        let value = self.f64()?;
        if value.is_finite() {
            Ok(value)
        } else {
            Err(ServiceError::BadField)
        }
    }

    /// Reads an `f32` that must be finite.
    pub fn finite_f32(&mut self) -> Result<f32, ServiceError> {
        let value = self.f32()?;
        if value.is_finite() {
            Ok(value)
        } else {
            Err(ServiceError::BadField)
        }
    }
}

/// A writer for one success response: the status byte `0` followed by the answer.
#[derive(Debug)]
pub struct Response<'a> {
    buf: &'a mut [u8],
    len: usize,
}

macro_rules! write_le {
    ($($name:ident: $ty:ty),* $(,)?) => {$(
        #[doc = concat!("Appends a little-endian `", stringify!($ty), "`.")]
        pub fn $name(&mut self, value: $ty) -> Result<&mut Self, ServiceError> {
            self.bytes(&value.to_le_bytes())
        }
    )*};
}

impl<'a> Response<'a> {
    /// Starts a success response in `buf` (writes the status byte).
    pub fn new(buf: &'a mut [u8]) -> Result<Self, ServiceError> {
        let status = buf.first_mut().ok_or(ServiceError::ResponseTooSmall)?;
        *status = 0;
        Ok(Self { buf, len: 1 })
    }

    /// Appends raw bytes.
    pub fn bytes(&mut self, bytes: &[u8]) -> Result<&mut Self, ServiceError> {
        let end = self.len + bytes.len();
        self.buf
            .get_mut(self.len..end)
            .ok_or(ServiceError::ResponseTooSmall)?
            .copy_from_slice(bytes);
        self.len = end;
        Ok(self)
    }

    /// Reserves `len` bytes for the caller to fill in place; returns them.
    pub fn reserve(&mut self, len: usize) -> Result<&mut [u8], ServiceError> {
        let start = self.len;
        let end = start
            .checked_add(len)
            .ok_or(ServiceError::ResponseTooSmall)?;
        if end > self.buf.len() {
            return Err(ServiceError::ResponseTooSmall);
        }
        self.len = end;
        Ok(&mut self.buf[start..end])
    }

    /// Bytes still free after what was written.
    pub fn space(&self) -> usize {
        self.buf.len() - self.len
    }

    write_le! {
        u8: u8,
        u16: u16,
        u32: u32,
        u64: u64,
        i64: i64,
        f32: f32,
        f64: f64,
    }

    /// The response's length, status byte included.
    pub fn finish(self) -> usize {
        self.len
    }
}

/// Builds a request on the client side (allocates; never used by services).
#[derive(Clone, Debug, Default)]
pub struct RequestBuilder {
    bytes: Vec<u8>,
}

macro_rules! build_le {
    ($($name:ident: $ty:ty),* $(,)?) => {$(
        #[doc = concat!("Appends a little-endian `", stringify!($ty), "`.")]
        pub fn $name(self, value: $ty) -> Self {
            self.bytes(&value.to_le_bytes())
        }
    )*};
}

impl RequestBuilder {
    /// A request starting with operation code `op`.
    pub fn new(op: u8) -> Self {
        Self {
            bytes: alloc::vec![op],
        }
    }

    /// Appends raw bytes.
    pub fn bytes(mut self, bytes: &[u8]) -> Self {
        self.bytes.extend_from_slice(bytes);
        self
    }

    build_le! {
        u8: u8,
        u16: u16,
        u32: u32,
        u64: u64,
        f32: f32,
        f64: f64,
    }

    /// Appends a counted list: `u16` count (items past 65535 are dropped), then each item.
    pub fn list<T>(self, items: &[T], put: impl Fn(Self, &T) -> Self) -> Self {
        let items = &items[..items.len().min(usize::from(u16::MAX))];
        items.iter().fold(self.u16(items.len() as u16), put)
    }

    /// The request's bytes.
    pub fn build(self) -> Vec<u8> {
        self.bytes
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fixed_fields_report_truncation_and_counted_ones_bad_length() {
        let mut r = Request::new(&[1, 2, 3]);
        assert_eq!(r.u16(), Ok(0x0201));
        assert_eq!(r.u16(), Err(ServiceError::Truncated));
        assert_eq!(r.bytes(2), Err(ServiceError::BadLength));
        assert_eq!(r.records(usize::MAX, 2), Err(ServiceError::BadLength));
        assert_eq!(r.bytes(1), Ok(&[3u8][..]));
        assert_eq!(r.remaining(), 0);
    }

    #[test]
    fn non_finite_floats_are_refused() {
        let nan = f64::NAN.to_le_bytes();
        let mut r = Request::new(&nan);
        assert_eq!(r.finite_f64(), Err(ServiceError::BadField));
    }

    #[test]
    fn responses_never_overrun() {
        let mut buf = [0xffu8; 4];
        let mut w = Response::new(&mut buf).unwrap();
        w.u16(7).unwrap();
        assert_eq!(w.u16(8).unwrap_err(), ServiceError::ResponseTooSmall);
        assert_eq!(w.reserve(2).unwrap_err(), ServiceError::ResponseTooSmall);
        assert_eq!(w.finish(), 3);
        assert_eq!(buf[..3], [0, 7, 0]);
        assert!(Response::new(&mut []).is_err());
    }
}
