//! Ethernet II frames: addresses, EtherType and the 14-byte header.

use core::fmt;

use zerocopy::byteorder::network_endian::U16;
use zerocopy::{FromBytes, Immutable, IntoBytes, KnownLayout, Unaligned};

use super::{header, put_header, Result};

/// A 48-bit Ethernet MAC address.
#[derive(
    Clone,
    Copy,
    Default,
    PartialEq,
    Eq,
    Hash,
    PartialOrd,
    Ord,
    FromBytes,
    IntoBytes,
    KnownLayout,
    Immutable,
    Unaligned,
)]
#[repr(transparent)]
pub struct MacAddress(pub [u8; 6]);

impl MacAddress {
    /// The broadcast address ff:ff:ff:ff:ff:ff.
    pub const BROADCAST: MacAddress = MacAddress([0xff; 6]);

    /// Whether the group bit is set (broadcast or multicast).
    pub const fn is_multicast(&self) -> bool {
        self.0[0] & 1 != 0
    }
}

impl fmt::Display for MacAddress {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let [a, b, c, d, e, g] = self.0;
        write!(f, "{a:02x}:{b:02x}:{c:02x}:{d:02x}:{e:02x}:{g:02x}")
    }
}

impl fmt::Debug for MacAddress {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

/// The EtherType values the runtime tells apart.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum EtherType {
    /// 0x0800.
    Ipv4,
    /// 0x0806.
    Arp,
    /// Anything else (IPv6, VLAN tags, ...), carried as the raw value.
    Other(u16),
}

impl From<u16> for EtherType {
    fn from(value: u16) -> Self {
        match value {
            0x0800 => EtherType::Ipv4,
            0x0806 => EtherType::Arp,
            other => EtherType::Other(other),
        }
    }
}

impl From<EtherType> for u16 {
    fn from(value: EtherType) -> Self {
        match value {
            EtherType::Ipv4 => 0x0800,
            EtherType::Arp => 0x0806,
            EtherType::Other(other) => other,
        }
    }
}

/// The Ethernet II header as it lies on the wire.
#[derive(Clone, Copy, Debug, FromBytes, IntoBytes, KnownLayout, Immutable, Unaligned)]
#[repr(C)]
pub struct EthernetHeader {
    /// Destination address, bytes 0..6.
    pub destination: MacAddress,
    /// Source address, bytes 6..12.
    pub source: MacAddress,
    /// EtherType, bytes 12..14.
    pub ethertype: U16,
}

/// Length of the Ethernet II header.
pub const HEADER_LEN: usize = 14;
/// Shortest frame a MAC sends, without the frame check sequence; shorter replies are padded.
pub const MIN_FRAME_LEN: usize = 60;

/// A parsed frame: its header and the bytes after it.
#[derive(Clone, Copy, Debug)]
pub struct EthernetFrame<'a> {
    /// The header, in place.
    pub header: &'a EthernetHeader,
    /// Everything after the header (may include link-layer padding).
    pub payload: &'a [u8],
}

impl<'a> EthernetFrame<'a> {
    /// Checks that `bytes` hold a whole header.
    #[inline]
    pub fn parse(bytes: &'a [u8]) -> Result<Self> {
        let (header, payload) = header::<EthernetHeader>(bytes)?;
        Ok(EthernetFrame { header, payload })
    }

    /// The EtherType.
    pub fn ethertype(&self) -> EtherType {
        self.header.ethertype.get().into()
    }
}

/// The fields of an Ethernet header, to emit.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct EthernetRepr {
    /// Source address.
    pub source: MacAddress,
    /// Destination address.
    pub destination: MacAddress,
    /// EtherType.
    pub ethertype: EtherType,
}

impl EthernetRepr {
    /// Writes the header at the front of `buffer`; returns the payload area after it.
    pub fn emit<'b>(&self, buffer: &'b mut [u8]) -> Result<&'b mut [u8]> {
        let header = EthernetHeader {
            destination: self.destination,
            source: self.source,
            ethertype: U16::new(self.ethertype.into()),
        };
        put_header(&header, buffer)
    }
}

/// Pads a frame of `len` bytes in `buffer` with zeros to [`MIN_FRAME_LEN`], as a MAC does;
/// returns the length to send. A short frame may have up to [`MIN_FRAME_LEN`] bytes after it
/// zeroed (bytes past the length to send).
#[inline]
pub fn pad_to_minimum(buffer: &mut [u8], len: usize) -> usize {
    if len >= MIN_FRAME_LEN {
        return len;
    }
    // A fixed-size write (a few vector stores, no call) where the buffer has room past the
    // minimum, as frame buffers do: what lies past the frame is not sent.
    if let Some(tail) = buffer.get_mut(len..len + MIN_FRAME_LEN) {
        tail.copy_from_slice(&[0; MIN_FRAME_LEN]);
        return MIN_FRAME_LEN;
    }
    let padded = MIN_FRAME_LEN.min(buffer.len());
    if let Some(tail) = buffer.get_mut(len..padded) {
        tail.fill(0);
    }
    padded.max(len)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wire::fixtures;
    use crate::wire::Error;

    #[test]
    fn header_is_fourteen_bytes() {
        assert_eq!(core::mem::size_of::<EthernetHeader>(), HEADER_LEN);
    }

    #[test]
    fn parses_the_fixture() {
        let frame = EthernetFrame::parse(&fixtures::UDP_REQUEST_FRAME).unwrap();
        assert_eq!(frame.header.destination, fixtures::NIC_MAC);
        assert_eq!(frame.header.source, fixtures::PEER_MAC);
        assert_eq!(frame.ethertype(), EtherType::Ipv4);
        assert_eq!(frame.payload.len(), fixtures::UDP_REQUEST_FRAME.len() - 14);
    }

    #[test]
    fn short_frames_are_truncated() {
        for len in 0..HEADER_LEN {
            assert_eq!(
                EthernetFrame::parse(&fixtures::UDP_REQUEST_FRAME[..len]).err(),
                Some(Error::Truncated)
            );
        }
    }

    #[test]
    fn emit_writes_the_fixture_header() {
        let mut buffer = [0u8; 20];
        let repr = EthernetRepr {
            source: fixtures::PEER_MAC,
            destination: fixtures::NIC_MAC,
            ethertype: EtherType::Ipv4,
        };
        let rest = repr.emit(&mut buffer).unwrap();
        assert_eq!(rest.len(), 6);
        assert_eq!(buffer[..14], fixtures::UDP_REQUEST_FRAME[..14]);
        assert_eq!(repr.emit(&mut [0u8; 13]), Err(Error::BufferTooSmall));
    }

    #[test]
    fn padding() {
        let mut buffer = [0xaau8; 64];
        assert_eq!(pad_to_minimum(&mut buffer, 42), 60);
        assert!(buffer[42..60].iter().all(|&b| b == 0));
        assert_eq!(buffer[60], 0xaa);
        assert_eq!(pad_to_minimum(&mut buffer, 61), 61);
        assert_eq!(pad_to_minimum(&mut [0u8; 50], 42), 50);
    }

    #[test]
    fn display() {
        extern crate alloc;
        use alloc::string::ToString;
        assert_eq!(fixtures::NIC_MAC.to_string(), "52:54:00:12:34:56");
        assert!(MacAddress::BROADCAST.is_multicast());
    }
}
