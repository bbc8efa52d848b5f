//! The typed header at the front of every message on the channel (docs/pcie-channel.md §6):
//! what kind of message it is and, for UDP datagrams, the addressing the other side needs.
//!
//! The channel itself moves opaque bytes; this module is the convention both sides of the
//! platform agree on. `Header` is the zero-copy wire view, [`MessageHeader`] the checked form.

use core::fmt;
use core::net::Ipv4Addr;

use zerocopy::byteorder::little_endian::U16;
use zerocopy::{FromBytes, Immutable, IntoBytes, KnownLayout, Unaligned};

/// Bytes of the header in front of every message.
pub const HEADER_BYTES: usize = 16;

/// The header as it sits in the first 16 bytes of a message.
#[derive(
    Clone, Copy, Debug, PartialEq, Eq, FromBytes, IntoBytes, KnownLayout, Immutable, Unaligned,
)]
#[repr(C)]
pub struct Header {
    /// Message kind ([`Kind`]).
    pub kind: u8,
    /// Flags, 0 in this version.
    pub flags: u8,
    /// Reserved, 0.
    pub reserved: U16,
    /// UDP kinds: source IPv4 address (network byte order). Other kinds: 0.
    pub src_ip: [u8; 4],
    /// UDP kinds: destination IPv4 address (network byte order). Other kinds: 0.
    pub dst_ip: [u8; 4],
    /// UDP kinds: source port. Other kinds: 0.
    pub src_port: U16,
    /// UDP kinds: destination port. Other kinds: 0.
    pub dst_port: U16,
}

const _: () = assert!(core::mem::size_of::<Header>() == HEADER_BYTES);

/// What a message carries.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Kind {
    /// NIC to host: a UDP datagram that arrived for the host IP. `src` is the client, `dst` the
    /// host IP and the service's port. The payload is the UDP payload.
    UdpRequest,
    /// Host to NIC: a UDP datagram to send. `src` is the host IP and service port, `dst` the
    /// client. The NIC builds the frame from these and its own MAC/neighbour state.
    UdpReply,
    /// Either way: a liveness/statistics heartbeat; the payload (16 bytes) is defined by the
    /// agent (docs/heartbeat.md).
    Heartbeat,
    /// Either way: an orchestrator command or its answer; the payload is defined by the agent
    /// (docs/orchestrator-commands.md).
    Control,
}

impl Kind {
    /// The byte that stands for this kind.
    pub const fn code(self) -> u8 {
        match self {
            Kind::UdpRequest => 1,
            Kind::UdpReply => 2,
            Kind::Heartbeat => 3,
            Kind::Control => 4,
        }
    }

    /// The kind a byte stands for.
    pub const fn from_code(code: u8) -> Option<Kind> {
        match code {
            1 => Some(Kind::UdpRequest),
            2 => Some(Kind::UdpReply),
            3 => Some(Kind::Heartbeat),
            4 => Some(Kind::Control),
            _ => None,
        }
    }

    /// Whether the header's addressing fields are meaningful.
    pub const fn is_udp(self) -> bool {
        matches!(self, Kind::UdpRequest | Kind::UdpReply)
    }
}

/// Source and destination of a UDP datagram.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct UdpAddressing {
    /// Source address.
    pub src_ip: Ipv4Addr,
    /// Source port.
    pub src_port: u16,
    /// Destination address.
    pub dst_ip: Ipv4Addr,
    /// Destination port.
    pub dst_port: u16,
}

impl UdpAddressing {
    /// The addressing of the answer: source and destination swapped.
    pub const fn reply(&self) -> UdpAddressing {
        UdpAddressing {
            src_ip: self.dst_ip,
            src_port: self.dst_port,
            dst_ip: self.src_ip,
            dst_port: self.src_port,
        }
    }

    const UNSPECIFIED: UdpAddressing = UdpAddressing {
        src_ip: Ipv4Addr::UNSPECIFIED,
        src_port: 0,
        dst_ip: Ipv4Addr::UNSPECIFIED,
        dst_port: 0,
    };
}

/// A checked message header.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum MessageHeader {
    /// A UDP datagram for the host ([`Kind::UdpRequest`]).
    UdpRequest(UdpAddressing),
    /// A UDP datagram from the host ([`Kind::UdpReply`]).
    UdpReply(UdpAddressing),
    /// A heartbeat ([`Kind::Heartbeat`]).
    Heartbeat,
    /// A control command ([`Kind::Control`]).
    Control,
}

/// Why a message header was refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MessageError {
    /// Fewer than 16 bytes.
    Truncated(usize),
    /// Unknown kind byte.
    Kind(u8),
    /// Flags or reserved bytes not 0, or addressing on a kind without it.
    Reserved,
    /// The output buffer is smaller than header plus payload.
    BufferTooSmall {
        /// Bytes needed.
        need: usize,
    },
}

impl fmt::Display for MessageError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            MessageError::Truncated(n) => {
                write!(f, "message of {n} bytes is shorter than its 16-byte header")
            }
            MessageError::Kind(k) => write!(f, "unknown message kind {k}"),
            MessageError::Reserved => f.write_str("reserved header bytes are not zero"),
            MessageError::BufferTooSmall { need } => {
                write!(f, "buffer too small: the message needs {need} bytes")
            }
        }
    }
}

impl MessageHeader {
    /// The kind.
    pub const fn kind(&self) -> Kind {
        match self {
            MessageHeader::UdpRequest(_) => Kind::UdpRequest,
            MessageHeader::UdpReply(_) => Kind::UdpReply,
            MessageHeader::Heartbeat => Kind::Heartbeat,
            MessageHeader::Control => Kind::Control,
        }
    }

    /// The addressing of a UDP kind.
    pub const fn udp(&self) -> Option<UdpAddressing> {
        match self {
            MessageHeader::UdpRequest(a) | MessageHeader::UdpReply(a) => Some(*a),
            _ => None,
        }
    }

    /// Splits a received message into its checked header and payload.
    pub fn parse(message: &[u8]) -> Result<(MessageHeader, &[u8]), MessageError> {
        let Ok((header, payload)) = Header::ref_from_prefix(message) else {
            return Err(MessageError::Truncated(message.len()));
        };
        let kind = Kind::from_code(header.kind).ok_or(MessageError::Kind(header.kind))?;
        if header.flags != 0 || header.reserved.get() != 0 {
            return Err(MessageError::Reserved);
        }
        let addressing = UdpAddressing {
            src_ip: Ipv4Addr::from(header.src_ip),
            src_port: header.src_port.get(),
            dst_ip: Ipv4Addr::from(header.dst_ip),
            dst_port: header.dst_port.get(),
        };
        let parsed = match kind {
            Kind::UdpRequest => MessageHeader::UdpRequest(addressing),
            Kind::UdpReply => MessageHeader::UdpReply(addressing),
            _ if addressing != UdpAddressing::UNSPECIFIED => return Err(MessageError::Reserved),
            Kind::Heartbeat => MessageHeader::Heartbeat,
            Kind::Control => MessageHeader::Control,
        };
        Ok((parsed, payload))
    }

    /// The wire form.
    pub fn to_header(&self) -> Header {
        let a = self.udp().unwrap_or(UdpAddressing::UNSPECIFIED);
        Header {
            kind: self.kind().code(),
            flags: 0,
            reserved: U16::new(0),
            src_ip: a.src_ip.octets(),
            dst_ip: a.dst_ip.octets(),
            src_port: U16::new(a.src_port),
            dst_port: U16::new(a.dst_port),
        }
    }

    /// Writes the header into the first 16 bytes of `out` (for a zero-copy reservation).
    pub fn emit(&self, out: &mut [u8]) -> Result<(), MessageError> {
        let Some(front) = out.get_mut(..HEADER_BYTES) else {
            return Err(MessageError::BufferTooSmall { need: HEADER_BYTES });
        };
        front.copy_from_slice(self.to_header().as_bytes());
        Ok(())
    }

    /// Writes header and `payload` into `out`; returns the message length.
    pub fn encode(&self, payload: &[u8], out: &mut [u8]) -> Result<usize, MessageError> {
        let need = HEADER_BYTES + payload.len();
        let Some(out) = out.get_mut(..need) else {
            return Err(MessageError::BufferTooSmall { need });
        };
        self.emit(out)?;
        out[HEADER_BYTES..].copy_from_slice(payload);
        Ok(need)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const REQUEST: UdpAddressing = UdpAddressing {
        src_ip: Ipv4Addr::new(10, 0, 0, 9),
        src_port: 40000,
        dst_ip: Ipv4Addr::new(10, 0, 0, 1),
        dst_port: 7000,
    };

    #[test]
    fn udp_request_bytes_match_the_spec_fixture() {
        let mut out = [0u8; 20];
        let n = MessageHeader::UdpRequest(REQUEST)
            .encode(b"ping", &mut out)
            .unwrap();
        assert_eq!(n, 20);
        // docs/pcie-channel.md §6.
        assert_eq!(
            out,
            [
                1, 0, 0, 0, 10, 0, 0, 9, 10, 0, 0, 1, 0x40, 0x9c, 0x58, 0x1b, b'p', b'i', b'n',
                b'g'
            ]
        );
        let (header, payload) = MessageHeader::parse(&out).unwrap();
        assert_eq!(header, MessageHeader::UdpRequest(REQUEST));
        assert_eq!(payload, b"ping");
    }

    #[test]
    fn reply_swaps_the_addressing() {
        let reply = REQUEST.reply();
        assert_eq!(reply.src_ip, REQUEST.dst_ip);
        assert_eq!(reply.dst_port, REQUEST.src_port);
        assert_eq!(reply.reply(), REQUEST);
    }

    #[test]
    fn bad_headers_are_typed_errors() {
        assert_eq!(
            MessageHeader::parse(&[1; 15]),
            Err(MessageError::Truncated(15))
        );
        let mut bytes = [0u8; 16];
        assert_eq!(MessageHeader::parse(&bytes), Err(MessageError::Kind(0)));
        bytes[0] = 3;
        assert_eq!(
            MessageHeader::parse(&bytes),
            Ok((MessageHeader::Heartbeat, &[][..]))
        );
        bytes[4] = 1;
        assert_eq!(MessageHeader::parse(&bytes), Err(MessageError::Reserved));
        bytes[4] = 0;
        bytes[1] = 1;
        assert_eq!(MessageHeader::parse(&bytes), Err(MessageError::Reserved));
        assert_eq!(
            MessageHeader::Control.encode(&[0; 8], &mut [0; 20]),
            Err(MessageError::BufferTooSmall { need: 24 })
        );
    }
}
