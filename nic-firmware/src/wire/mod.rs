//! Packet formats: zerocopy header views over untrusted bytes, a checked parse for each layer
//! and an emit that fills in lengths and checksums.
//!
//! Every layer follows the same pattern (after smoltcp's `wire`): a `#[repr(C)]` header struct
//! of unaligned big-endian fields that zerocopy lays over the bytes, a `parse` that checks every
//! length and checksum once (so nothing after it can index out of bounds), and a `Repr` that
//! `emit`s the header into a buffer. No function here panics on any byte string.
//!
//! | module | format |
//! |---|---|
//! | [`ethernet`] | Ethernet II frame header |
//! | [`arp`] | ARP for Ethernet and IPv4 (RFC 826) |
//! | [`ipv4`] | IPv4 header with options (RFC 791) |
//! | [`udp`] | UDP (RFC 768) |
//! | [`icmp`] | ICMPv4 (RFC 792) |
//! | [`tcp`] | TCP header with options (RFC 9293) |
//! | [`checksum`] | the Internet checksum (RFC 1071) |

use core::fmt;

pub mod arp;
pub mod checksum;
pub mod ethernet;
pub mod icmp;
pub mod ipv4;
pub mod tcp;
pub mod udp;

pub use arp::{ArpOperation, ArpPacket, ArpRepr};
pub use ethernet::{EtherType, EthernetFrame, EthernetRepr, MacAddress};
pub use icmp::{IcmpPacket, IcmpRepr};
pub use ipv4::{IpProtocol, Ipv4Address, Ipv4Packet, Ipv4Repr};
pub use tcp::{TcpFlags, TcpPacket, TcpRepr};
pub use udp::{UdpFrameRepr, UdpPacket, UdpRepr};

/// Why bytes are not a valid packet of a layer. Small and `Copy`: the receive path maps it to a
/// drop reason and counts it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Error {
    /// Shorter than the layer's fixed header.
    Truncated,
    /// A version field other than the one this layer parses.
    BadVersion,
    /// A header-length field smaller than the fixed header or past the end of the bytes.
    BadHeaderLength,
    /// A total-length field smaller than the header or past the end of the bytes.
    BadLength,
    /// The checksum does not verify.
    BadChecksum,
    /// An IPv4 fragment (more-fragments set or a non-zero offset); the runtime does not
    /// reassemble.
    Fragmented,
    /// An option whose length is malformed or overruns the header's option area.
    BadOption,
    /// A well-formed packet of a kind this layer does not handle (for example ARP over another
    /// hardware type).
    Unsupported,
    /// The output buffer is too small for what is being emitted.
    BufferTooSmall,
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Error::Truncated => "shorter than the header",
            Error::BadVersion => "wrong version",
            Error::BadHeaderLength => "bad header length",
            Error::BadLength => "bad total length",
            Error::BadChecksum => "checksum does not verify",
            Error::Fragmented => "fragment",
            Error::BadOption => "option overruns the header",
            Error::Unsupported => "unsupported kind",
            Error::BufferTooSmall => "output buffer too small",
        })
    }
}

/// The result of every parse and emit in this module.
pub type Result<T> = core::result::Result<T, Error>;

/// Lays a header struct over the front of `bytes`, or reports [`Error::Truncated`].
fn header<T>(bytes: &[u8]) -> Result<(&T, &[u8])>
where
    T: zerocopy::FromBytes + zerocopy::KnownLayout + zerocopy::Immutable + zerocopy::Unaligned,
{
    T::ref_from_prefix(bytes).map_err(|_| Error::Truncated)
}

/// Writes a header struct at the front of `buffer`; returns the bytes after it.
fn put_header<'a, T>(value: &T, buffer: &'a mut [u8]) -> Result<&'a mut [u8]>
where
    T: zerocopy::IntoBytes + zerocopy::Immutable,
{
    let len = core::mem::size_of_val(value);
    if buffer.len() < len {
        return Err(Error::BufferTooSmall);
    }
    let (head, rest) = buffer.split_at_mut(len);
    head.copy_from_slice(value.as_bytes());
    Ok(rest)
}

/// The checksum field of a TCP or UDP `segment` whose own field is still zero, under the IPv4
/// pseudo-header.
fn transport_checksum(
    segment: &[u8],
    source: ipv4::Ipv4Address,
    destination: ipv4::Ipv4Address,
    protocol: IpProtocol,
) -> u16 {
    checksum::Checksum::new()
        .add_pseudo_header(source, destination, protocol.into(), segment.len() as u16)
        .add_bytes(segment)
        .finish()
}

/// Walks an IPv4 or TCP option list (the two share the format): kinds 0 (end of list) and 1
/// (no-operation) are one byte; every other option has a length byte of at least 2 that must
/// stay inside the option area.
fn check_options(options: &[u8]) -> Result<()> {
    let mut rest = options;
    while let Some((&kind, after_kind)) = rest.split_first() {
        match kind {
            0 => return Ok(()),
            1 => rest = after_kind,
            _ => {
                let len = usize::from(*after_kind.first().ok_or(Error::BadOption)?);
                if len < 2 || len > rest.len() {
                    return Err(Error::BadOption);
                }
                rest = rest.get(len..).ok_or(Error::BadOption)?;
            }
        }
    }
    Ok(())
}

#[cfg(any(test, feature = "std"))]
pub mod fixtures;
