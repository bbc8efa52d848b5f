//! IPv4 (RFC 791): addresses, the header with its options, the header checksum.

use core::fmt;

use zerocopy::byteorder::network_endian::U16;
use zerocopy::{FromBytes, Immutable, IntoBytes, KnownLayout, Unaligned};

use super::checksum::Checksum;
use super::{check_options, header, put_header, Error, Result};

/// An IPv4 address.
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
pub struct Ipv4Address(pub [u8; 4]);

impl Ipv4Address {
    /// 0.0.0.0.
    pub const UNSPECIFIED: Ipv4Address = Ipv4Address([0; 4]);

    /// The address from its four octets, most significant first.
    pub const fn new(a: u8, b: u8, c: u8, d: u8) -> Self {
        Ipv4Address([a, b, c, d])
    }

    /// The address as a host-order integer.
    pub const fn to_bits(self) -> u32 {
        u32::from_be_bytes(self.0)
    }

    /// The address from a host-order integer.
    pub const fn from_bits(bits: u32) -> Self {
        Ipv4Address(bits.to_be_bytes())
    }
}

impl fmt::Display for Ipv4Address {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let [a, b, c, d] = self.0;
        write!(f, "{a}.{b}.{c}.{d}")
    }
}

impl fmt::Debug for Ipv4Address {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

/// The IP protocol numbers the runtime tells apart.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum IpProtocol {
    /// 1.
    Icmp,
    /// 6.
    Tcp,
    /// 17.
    Udp,
    /// Anything else, as the raw number.
    Other(u8),
}

impl From<u8> for IpProtocol {
    fn from(value: u8) -> Self {
        match value {
            1 => IpProtocol::Icmp,
            6 => IpProtocol::Tcp,
            17 => IpProtocol::Udp,
            other => IpProtocol::Other(other),
        }
    }
}

impl From<IpProtocol> for u8 {
    fn from(value: IpProtocol) -> Self {
        match value {
            IpProtocol::Icmp => 1,
            IpProtocol::Tcp => 6,
            IpProtocol::Udp => 17,
            IpProtocol::Other(other) => other,
        }
    }
}

/// The fixed 20-byte IPv4 header as it lies on the wire (options follow it).
#[derive(Clone, Copy, Debug, FromBytes, IntoBytes, KnownLayout, Immutable, Unaligned)]
#[repr(C)]
pub struct Ipv4Header {
    /// Version (high nibble) and header length in 32-bit words (low nibble), byte 0.
    pub version_ihl: u8,
    /// DSCP and ECN, byte 1.
    pub dscp_ecn: u8,
    /// Length of header plus payload, bytes 2..4.
    pub total_length: U16,
    /// Identification, bytes 4..6.
    pub identification: U16,
    /// Flags (reserved, DF, MF) and fragment offset in 8-byte units, bytes 6..8.
    pub flags_fragment: U16,
    /// Time to live, byte 8.
    pub ttl: u8,
    /// Protocol of the payload, byte 9.
    pub protocol: u8,
    /// Header checksum, bytes 10..12.
    pub checksum: U16,
    /// Source address, bytes 12..16.
    pub source: Ipv4Address,
    /// Destination address, bytes 16..20.
    pub destination: Ipv4Address,
}

/// Length of the header without options.
pub const HEADER_LEN: usize = 20;
/// Longest header: 15 words.
pub const MAX_HEADER_LEN: usize = 60;
/// The don't-fragment flag in `flags_fragment`.
pub const DONT_FRAGMENT: u16 = 0x4000;
const MORE_FRAGMENTS_AND_OFFSET: u16 = 0x3fff;
/// Time to live of the packets this crate sends.
pub const DEFAULT_TTL: u8 = 64;

/// A checked IPv4 packet: header, options and the payload cut to the total length (link
/// padding removed).
#[derive(Clone, Copy, Debug)]
pub struct Ipv4Packet<'a> {
    /// The fixed header, in place.
    pub header: &'a Ipv4Header,
    /// The option bytes (possibly empty), already checked to be well formed.
    pub options: &'a [u8],
    /// The payload: `total_length` minus the header.
    pub payload: &'a [u8],
}

impl<'a> Ipv4Packet<'a> {
    /// Checks version, header length, total length, header checksum and options, and refuses
    /// fragments.
    #[inline]
    pub fn parse(bytes: &'a [u8]) -> Result<Self> {
        let (header, _) = header::<Ipv4Header>(bytes)?;
        if header.version_ihl >> 4 != 4 {
            return Err(Error::BadVersion);
        }
        let header_len = usize::from(header.version_ihl & 0x0f) * 4;
        if header_len < HEADER_LEN || header_len > bytes.len() {
            return Err(Error::BadHeaderLength);
        }
        let total_len = usize::from(header.total_length.get());
        if total_len < header_len || total_len > bytes.len() {
            return Err(Error::BadLength);
        }
        let header_bytes = bytes.get(..header_len).ok_or(Error::BadHeaderLength)?;
        if !Checksum::new().add_bytes(header_bytes).verifies() {
            return Err(Error::BadChecksum);
        }
        let options = header_bytes.get(HEADER_LEN..).unwrap_or_default();
        check_options(options)?;
        if header.flags_fragment.get() & MORE_FRAGMENTS_AND_OFFSET != 0 {
            return Err(Error::Fragmented);
        }
        let payload = bytes.get(header_len..total_len).ok_or(Error::BadLength)?;
        Ok(Ipv4Packet {
            header,
            options,
            payload,
        })
    }

    /// Source address.
    pub fn source(&self) -> Ipv4Address {
        self.header.source
    }

    /// Destination address.
    pub fn destination(&self) -> Ipv4Address {
        self.header.destination
    }

    /// Payload protocol.
    pub fn protocol(&self) -> IpProtocol {
        self.header.protocol.into()
    }
}

/// The fields of an IPv4 header to emit (no options; DF set; identification 0, which RFC 6864
/// allows for unfragmentable datagrams).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Ipv4Repr {
    /// Source address.
    pub source: Ipv4Address,
    /// Destination address.
    pub destination: Ipv4Address,
    /// Payload protocol.
    pub protocol: IpProtocol,
    /// Payload length in bytes.
    pub payload_len: usize,
    /// Time to live.
    pub ttl: u8,
}

impl Ipv4Repr {
    /// Writes the header with its checksum; returns the payload area after it.
    pub fn emit<'b>(&self, buffer: &'b mut [u8]) -> Result<&'b mut [u8]> {
        let total_len =
            u16::try_from(HEADER_LEN + self.payload_len).map_err(|_| Error::BadLength)?;
        let mut header = Ipv4Header {
            version_ihl: 0x45,
            dscp_ecn: 0,
            total_length: U16::new(total_len),
            identification: U16::new(0),
            flags_fragment: U16::new(DONT_FRAGMENT),
            ttl: self.ttl,
            protocol: self.protocol.into(),
            checksum: U16::new(0),
            source: self.source,
            destination: self.destination,
        };
        header.checksum = U16::new(Checksum::new().add_bytes(header.as_bytes()).finish());
        put_header(&header, buffer)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wire::fixtures;

    fn ip_part(frame: &[u8]) -> &[u8] {
        &frame[14..]
    }

    #[test]
    fn header_is_twenty_bytes() {
        assert_eq!(core::mem::size_of::<Ipv4Header>(), HEADER_LEN);
    }

    #[test]
    fn published_checksum_example() {
        // The worked example of the IPv4 header checksum on Wikipedia: checksum 0xb861.
        let mut header = [
            0x45, 0x00, 0x00, 0x73, 0x00, 0x00, 0x40, 0x00, 0x40, 0x11, 0x00, 0x00, 0xc0, 0xa8,
            0x00, 0x01, 0xc0, 0xa8, 0x00, 0xc7,
        ];
        assert_eq!(Checksum::new().add_bytes(&header).finish(), 0xb861);
        header[10..12].copy_from_slice(&0xb861u16.to_be_bytes());
        assert!(Checksum::new().add_bytes(&header).verifies());
    }

    #[test]
    fn parses_the_fixture() {
        let packet = Ipv4Packet::parse(ip_part(&fixtures::UDP_REQUEST_FRAME)).unwrap();
        assert_eq!(packet.source(), fixtures::PEER_IP);
        assert_eq!(packet.destination(), fixtures::NIC_IP);
        assert_eq!(packet.protocol(), IpProtocol::Udp);
        assert_eq!(packet.header.ttl, 64);
        assert!(packet.options.is_empty());
        assert_eq!(packet.payload.len(), 8 + 9);
    }

    #[test]
    fn parses_options() {
        let packet = Ipv4Packet::parse(ip_part(&fixtures::UDP_WITH_OPTIONS_FRAME)).unwrap();
        assert_eq!(packet.options, [0x94, 0x04, 0x00, 0x00]);
        assert_eq!(packet.payload.len(), 8 + 9);
    }

    #[test]
    fn ignores_link_padding() {
        let mut padded = [0u8; 80];
        let ip = ip_part(&fixtures::UDP_REQUEST_FRAME);
        padded[..ip.len()].copy_from_slice(ip);
        let packet = Ipv4Packet::parse(&padded).unwrap();
        assert_eq!(packet.payload.len(), 17);
    }

    /// A copy of the fixture with `edit` applied and the checksum recomputed.
    fn edited(edit: impl FnOnce(&mut [u8])) -> [u8; 37] {
        let mut bytes = [0u8; 37];
        bytes.copy_from_slice(ip_part(&fixtures::UDP_REQUEST_FRAME));
        edit(&mut bytes);
        let header_len = (usize::from(bytes[0] & 0x0f) * 4).clamp(20, 37);
        bytes[10..12].fill(0);
        let sum = Checksum::new().add_bytes(&bytes[..header_len]).finish();
        bytes[10..12].copy_from_slice(&sum.to_be_bytes());
        bytes
    }

    #[test]
    fn refuses_each_malformation() {
        let ip = ip_part(&fixtures::UDP_REQUEST_FRAME);
        assert_eq!(Ipv4Packet::parse(&ip[..19]).err(), Some(Error::Truncated));
        type Edit = fn(&mut [u8]);
        let cases: [(Edit, Error); 7] = [
            (|b| b[0] = 0x65, Error::BadVersion),
            (|b| b[0] = 0x44, Error::BadHeaderLength),
            (|b| b[0] = 0x4f, Error::BadHeaderLength),
            (
                |b| b[2..4].copy_from_slice(&19u16.to_be_bytes()),
                Error::BadLength,
            ),
            (
                |b| b[2..4].copy_from_slice(&38u16.to_be_bytes()),
                Error::BadLength,
            ),
            (|b| b[6] = 0x20, Error::Fragmented),
            (|b| b[7] = 0x01, Error::Fragmented),
        ];
        for (edit, error) in cases {
            assert_eq!(Ipv4Packet::parse(&edited(edit)).err(), Some(error));
        }
        let mut bad_sum = [0u8; 37];
        bad_sum.copy_from_slice(ip);
        bad_sum[11] ^= 1;
        assert_eq!(Ipv4Packet::parse(&bad_sum).err(), Some(Error::BadChecksum));
    }

    #[test]
    fn refuses_overrunning_options() {
        let frame = &fixtures::UDP_WITH_OPTIONS_FRAME;
        for (option, verdict) in [
            ([0x94, 0x05, 0x00, 0x00], Err(Error::BadOption)),
            ([0x94, 0x01, 0x00, 0x00], Err(Error::BadOption)),
            ([0x01, 0x01, 0x01, 0x44], Err(Error::BadOption)),
            ([0x01, 0x01, 0x01, 0x00], Ok(())),
            ([0x00, 0xff, 0xff, 0xff], Ok(())),
        ] {
            let mut bytes = [0u8; 41];
            bytes.copy_from_slice(ip_part(frame));
            bytes[20..24].copy_from_slice(&option);
            bytes[10..12].fill(0);
            let sum = Checksum::new().add_bytes(&bytes[..24]).finish();
            bytes[10..12].copy_from_slice(&sum.to_be_bytes());
            assert_eq!(
                Ipv4Packet::parse(&bytes).map(|_| ()),
                verdict,
                "{option:x?}"
            );
        }
    }

    #[test]
    fn emit_matches_the_reply_fixture() {
        let repr = Ipv4Repr {
            source: fixtures::NIC_IP,
            destination: fixtures::PEER_IP,
            protocol: IpProtocol::Udp,
            payload_len: 18,
            ttl: DEFAULT_TTL,
        };
        let mut buffer = [0u8; 38];
        let rest = repr.emit(&mut buffer).unwrap();
        assert_eq!(rest.len(), 18);
        assert_eq!(buffer[..20], fixtures::UDP_REPLY_FRAME[14..34]);
        assert_eq!(repr.emit(&mut [0u8; 19]), Err(Error::BufferTooSmall));
        let huge = Ipv4Repr {
            payload_len: 70_000,
            ..repr
        };
        assert_eq!(huge.emit(&mut buffer), Err(Error::BadLength));
    }

    #[test]
    fn address_display_and_bits() {
        extern crate alloc;
        use alloc::string::ToString;
        assert_eq!(fixtures::PEER_IP.to_string(), "10.0.1.7");
        assert_eq!(
            Ipv4Address::from_bits(fixtures::PEER_IP.to_bits()),
            fixtures::PEER_IP
        );
    }
}
