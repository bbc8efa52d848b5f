//! ICMPv4 (RFC 792): the message header and echo request/reply.

use zerocopy::byteorder::network_endian::U16;
use zerocopy::{FromBytes, Immutable, IntoBytes, KnownLayout, Unaligned};

use super::checksum::Checksum;
use super::{header, put_header, Error, Result};

/// The first 8 bytes of every ICMP message as they lie on the wire; for echo messages the last
/// four are identifier and sequence number.
#[derive(Clone, Copy, Debug, FromBytes, IntoBytes, KnownLayout, Immutable, Unaligned)]
#[repr(C)]
pub struct IcmpHeader {
    /// Message type, byte 0.
    pub message_type: u8,
    /// Code, byte 1.
    pub code: u8,
    /// Checksum over the whole message, bytes 2..4.
    pub checksum: U16,
    /// Echo identifier (rest-of-header for other types), bytes 4..6.
    pub identifier: U16,
    /// Echo sequence number (rest-of-header for other types), bytes 6..8.
    pub sequence: U16,
}

/// Length of the header.
pub const HEADER_LEN: usize = 8;
/// Type of an echo reply.
pub const ECHO_REPLY: u8 = 0;
/// Type of an echo request.
pub const ECHO_REQUEST: u8 = 8;

/// A checked ICMP message.
#[derive(Clone, Copy, Debug)]
pub struct IcmpPacket<'a> {
    /// The header, in place.
    pub header: &'a IcmpHeader,
    /// The data after the header.
    pub payload: &'a [u8],
}

impl<'a> IcmpPacket<'a> {
    /// Checks length and checksum of the message in `bytes` (the whole IPv4 payload).
    pub fn parse(bytes: &'a [u8]) -> Result<Self> {
        let (header, payload) = header::<IcmpHeader>(bytes)?;
        if !Checksum::new().add_bytes(bytes).verifies() {
            return Err(Error::BadChecksum);
        }
        Ok(IcmpPacket { header, payload })
    }

    /// The message as a [`IcmpRepr`].
    pub fn repr(&self) -> IcmpRepr<'a> {
        match (self.header.message_type, self.header.code) {
            (ECHO_REQUEST, 0) => IcmpRepr::EchoRequest {
                identifier: self.header.identifier.get(),
                sequence: self.header.sequence.get(),
                data: self.payload,
            },
            (ECHO_REPLY, 0) => IcmpRepr::EchoReply {
                identifier: self.header.identifier.get(),
                sequence: self.header.sequence.get(),
                data: self.payload,
            },
            (message_type, code) => IcmpRepr::Other { message_type, code },
        }
    }
}

/// The ICMP messages the runtime reads or writes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum IcmpRepr<'a> {
    /// Type 8: please answer.
    EchoRequest {
        /// Identifier chosen by the sender.
        identifier: u16,
        /// Sequence number.
        sequence: u16,
        /// Data to echo.
        data: &'a [u8],
    },
    /// Type 0: the answer.
    EchoReply {
        /// Identifier of the request.
        identifier: u16,
        /// Sequence number of the request.
        sequence: u16,
        /// The request's data.
        data: &'a [u8],
    },
    /// Any other message; the runtime does not send these.
    Other {
        /// Message type.
        message_type: u8,
        /// Code.
        code: u8,
    },
}

impl IcmpRepr<'_> {
    /// Length of the message this emits.
    pub fn len(&self) -> usize {
        match self {
            IcmpRepr::EchoRequest { data, .. } | IcmpRepr::EchoReply { data, .. } => {
                HEADER_LEN + data.len()
            }
            IcmpRepr::Other { .. } => HEADER_LEN,
        }
    }

    /// Whether [`IcmpRepr::len`] is zero (never: there is always a header).
    pub fn is_empty(&self) -> bool {
        false
    }

    /// Writes the echo message with its checksum into `buffer`; returns its length.
    /// [`IcmpRepr::Other`] is [`Error::Unsupported`].
    pub fn emit(&self, buffer: &mut [u8]) -> Result<usize> {
        let (message_type, identifier, sequence, data) = match *self {
            IcmpRepr::EchoRequest {
                identifier,
                sequence,
                data,
            } => (ECHO_REQUEST, identifier, sequence, data),
            IcmpRepr::EchoReply {
                identifier,
                sequence,
                data,
            } => (ECHO_REPLY, identifier, sequence, data),
            IcmpRepr::Other { .. } => return Err(Error::Unsupported),
        };
        let len = self.len();
        let message = buffer.get_mut(..len).ok_or(Error::BufferTooSmall)?;
        let header = IcmpHeader {
            message_type,
            code: 0,
            checksum: U16::new(0),
            identifier: U16::new(identifier),
            sequence: U16::new(sequence),
        };
        put_header(&header, message)?.copy_from_slice(data);
        let sum = Checksum::new().add_bytes(message).finish();
        message[2..4].copy_from_slice(&sum.to_be_bytes());
        Ok(len)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wire::fixtures;

    #[test]
    fn header_is_eight_bytes() {
        assert_eq!(core::mem::size_of::<IcmpHeader>(), HEADER_LEN);
    }

    #[test]
    fn parses_an_echo_request() {
        let packet =
            IcmpPacket::parse(fixtures::after_ipv4(&fixtures::ICMP_ECHO_REQUEST_FRAME)).unwrap();
        assert_eq!(
            packet.repr(),
            IcmpRepr::EchoRequest {
                identifier: 0x1234,
                sequence: 1,
                data: b"abcdefgh"
            }
        );
    }

    #[test]
    fn refuses_truncation_and_bad_checksum() {
        let bytes = fixtures::after_ipv4(&fixtures::ICMP_ECHO_REQUEST_FRAME);
        assert_eq!(IcmpPacket::parse(&bytes[..7]).err(), Some(Error::Truncated));
        assert_eq!(
            IcmpPacket::parse(&bytes[..15]).err(),
            Some(Error::BadChecksum)
        );
    }

    #[test]
    fn emit_matches_the_reply_fixture() {
        let reply = IcmpRepr::EchoReply {
            identifier: 0x1234,
            sequence: 1,
            data: b"abcdefgh",
        };
        let mut buffer = [0u8; 16];
        assert_eq!(reply.emit(&mut buffer), Ok(16));
        assert_eq!(buffer[..], fixtures::ICMP_ECHO_REPLY_FRAME[34..]);
        assert_eq!(reply.emit(&mut [0u8; 15]), Err(Error::BufferTooSmall));
        let other = IcmpRepr::Other {
            message_type: 3,
            code: 1,
        };
        assert_eq!(other.emit(&mut buffer), Err(Error::Unsupported));
    }
}
