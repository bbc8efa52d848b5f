//! TCP (RFC 9293): the header with its options, flags and pseudo-header checksum.

use bitflags::bitflags;
use zerocopy::byteorder::network_endian::{U16, U32};
use zerocopy::{FromBytes, Immutable, IntoBytes, KnownLayout, Unaligned};

use super::checksum::Checksum;
use super::ipv4::{IpProtocol, Ipv4Address};
use super::{check_options, header, put_header, transport_checksum, Error, Result};

/// The fixed 20-byte TCP header as it lies on the wire (options follow it).
#[derive(Clone, Copy, Debug, FromBytes, IntoBytes, KnownLayout, Immutable, Unaligned)]
#[repr(C)]
pub struct TcpHeader {
    /// Source port, bytes 0..2.
    pub source_port: U16,
    /// Destination port, bytes 2..4.
    pub destination_port: U16,
    /// Sequence number, bytes 4..8.
    pub sequence: U32,
    /// Acknowledgment number, bytes 8..12.
    pub acknowledgment: U32,
    /// Data offset in 32-bit words (high nibble), byte 12.
    pub data_offset: u8,
    /// Flags, byte 13.
    pub flags: u8,
    /// Receive window, bytes 14..16.
    pub window: U16,
    /// Checksum over pseudo-header, header and data, bytes 16..18.
    pub checksum: U16,
    /// Urgent pointer, bytes 18..20.
    pub urgent: U16,
}

/// Length of the header without options.
pub const HEADER_LEN: usize = 20;

bitflags! {
    /// The TCP header flags.
    #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
    pub struct TcpFlags: u8 {
        /// No more data from the sender.
        const FIN = 0x01;
        /// Synchronise sequence numbers.
        const SYN = 0x02;
        /// Reset the connection.
        const RST = 0x04;
        /// Push.
        const PSH = 0x08;
        /// The acknowledgment field is significant.
        const ACK = 0x10;
        /// The urgent pointer is significant.
        const URG = 0x20;
        /// ECN echo.
        const ECE = 0x40;
        /// Congestion window reduced.
        const CWR = 0x80;
    }
}

/// A checked TCP segment.
#[derive(Clone, Copy, Debug)]
pub struct TcpPacket<'a> {
    /// The fixed header, in place.
    pub header: &'a TcpHeader,
    /// The option bytes, already checked to be well formed.
    pub options: &'a [u8],
    /// The data.
    pub payload: &'a [u8],
}

impl<'a> TcpPacket<'a> {
    /// Checks the data offset, the options and the checksum of the segment in `bytes` (the
    /// whole IPv4 payload) sent from `source` to `destination`.
    pub fn parse(bytes: &'a [u8], source: Ipv4Address, destination: Ipv4Address) -> Result<Self> {
        let (header, _) = header::<TcpHeader>(bytes)?;
        let header_len = usize::from(header.data_offset >> 4) * 4;
        if header_len < HEADER_LEN || header_len > bytes.len() {
            return Err(Error::BadHeaderLength);
        }
        let length = u16::try_from(bytes.len()).map_err(|_| Error::BadLength)?;
        let sum = Checksum::new()
            .add_pseudo_header(source, destination, IpProtocol::Tcp.into(), length)
            .add_bytes(bytes);
        if !sum.verifies() {
            return Err(Error::BadChecksum);
        }
        let options = bytes.get(HEADER_LEN..header_len).unwrap_or_default();
        check_options(options)?;
        let payload = bytes.get(header_len..).unwrap_or_default();
        Ok(TcpPacket {
            header,
            options,
            payload,
        })
    }

    /// The segment as a [`TcpRepr`].
    pub fn repr(&self) -> TcpRepr {
        TcpRepr {
            source_port: self.header.source_port.get(),
            destination_port: self.header.destination_port.get(),
            sequence: self.header.sequence.get(),
            acknowledgment: self.header.acknowledgment.get(),
            flags: TcpFlags::from_bits_retain(self.header.flags),
            window: self.header.window.get(),
        }
    }
}

/// The fields of a TCP header to emit (no options, urgent pointer 0).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TcpRepr {
    /// Source port.
    pub source_port: u16,
    /// Destination port.
    pub destination_port: u16,
    /// Sequence number.
    pub sequence: u32,
    /// Acknowledgment number.
    pub acknowledgment: u32,
    /// Flags.
    pub flags: TcpFlags,
    /// Receive window.
    pub window: u16,
}

impl TcpRepr {
    /// The reset RFC 9293 (section 3.10.7.1) answers to `self`, a segment for a closed port:
    /// it acknowledges everything the segment occupied when it carried no ACK, or takes its
    /// acknowledgment number as sequence number when it did.
    pub fn reset_for(&self, payload_len: usize) -> TcpRepr {
        let (sequence, acknowledgment, flags) = if self.flags.contains(TcpFlags::ACK) {
            (self.acknowledgment, 0, TcpFlags::RST)
        } else {
            let occupied = payload_len as u32
                + u32::from(self.flags.contains(TcpFlags::SYN))
                + u32::from(self.flags.contains(TcpFlags::FIN));
            (
                0,
                self.sequence.wrapping_add(occupied),
                TcpFlags::RST | TcpFlags::ACK,
            )
        };
        TcpRepr {
            source_port: self.destination_port,
            destination_port: self.source_port,
            sequence,
            acknowledgment,
            flags,
            window: 0,
        }
    }

    /// Emits header and checksum for the `payload_len` data bytes that already sit after the
    /// 20-byte header in `segment`; returns the segment length.
    pub fn emit_in_place(
        &self,
        segment: &mut [u8],
        payload_len: usize,
        source: Ipv4Address,
        destination: Ipv4Address,
    ) -> Result<usize> {
        let length = HEADER_LEN + payload_len;
        u16::try_from(length).map_err(|_| Error::BadLength)?;
        let segment = segment.get_mut(..length).ok_or(Error::BufferTooSmall)?;
        let header = TcpHeader {
            source_port: U16::new(self.source_port),
            destination_port: U16::new(self.destination_port),
            sequence: U32::new(self.sequence),
            acknowledgment: U32::new(self.acknowledgment),
            data_offset: (HEADER_LEN as u8 / 4) << 4,
            flags: self.flags.bits(),
            window: U16::new(self.window),
            checksum: U16::new(0),
            urgent: U16::new(0),
        };
        put_header(&header, segment)?;
        let sum = transport_checksum(segment, source, destination, IpProtocol::Tcp);
        if let Some(field) = segment.get_mut(16..18) {
            field.copy_from_slice(&sum.to_be_bytes());
        }
        Ok(length)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wire::fixtures;

    #[test]
    fn header_is_twenty_bytes() {
        assert_eq!(core::mem::size_of::<TcpHeader>(), HEADER_LEN);
    }

    #[test]
    fn parses_the_syn() {
        let bytes = fixtures::after_ipv4(&fixtures::TCP_SYN_FRAME);
        let packet = TcpPacket::parse(bytes, fixtures::PEER_IP, fixtures::NIC_IP).unwrap();
        assert_eq!(packet.options, [2, 4, 0x05, 0xb4]);
        assert!(packet.payload.is_empty());
        let repr = packet.repr();
        assert_eq!(repr.source_port, 40002);
        assert_eq!(repr.destination_port, 80);
        assert_eq!(repr.sequence, 0x0102_0304);
        assert_eq!(repr.flags, TcpFlags::SYN);
        assert_eq!(repr.window, 64240);
    }

    #[test]
    fn refuses_malformed_segments() {
        let bytes = fixtures::after_ipv4(&fixtures::TCP_SYN_FRAME);
        let (peer, nic) = (fixtures::PEER_IP, fixtures::NIC_IP);
        assert_eq!(
            TcpPacket::parse(&bytes[..19], peer, nic).err(),
            Some(Error::Truncated)
        );
        assert_eq!(
            TcpPacket::parse(&bytes[..23], peer, nic).err(),
            Some(Error::BadHeaderLength)
        );
        assert_eq!(
            TcpPacket::parse(bytes, peer, fixtures::HOST_IP).err(),
            Some(Error::BadChecksum)
        );
        let mut small_offset = [0u8; 24];
        small_offset.copy_from_slice(bytes);
        small_offset[12] = 0x40;
        assert_eq!(
            TcpPacket::parse(&small_offset, peer, nic).err(),
            Some(Error::BadHeaderLength)
        );
    }

    #[test]
    fn refuses_overrunning_options() {
        let mut bytes = [0u8; 24];
        bytes.copy_from_slice(fixtures::after_ipv4(&fixtures::TCP_SYN_FRAME));
        bytes[21] = 5;
        // Recompute the checksum so that only the option is wrong.
        bytes[16..18].fill(0);
        let sum = Checksum::new()
            .add_pseudo_header(fixtures::PEER_IP, fixtures::NIC_IP, 6, 24)
            .add_bytes(&bytes)
            .finish();
        bytes[16..18].copy_from_slice(&sum.to_be_bytes());
        let parsed = TcpPacket::parse(&bytes, fixtures::PEER_IP, fixtures::NIC_IP);
        assert_eq!(parsed.err(), Some(Error::BadOption));
    }

    #[test]
    fn reset_for_a_syn_round_trips() {
        let bytes = fixtures::after_ipv4(&fixtures::TCP_SYN_FRAME);
        let syn = TcpPacket::parse(bytes, fixtures::PEER_IP, fixtures::NIC_IP)
            .unwrap()
            .repr();
        let reset = syn.reset_for(0);
        assert_eq!(reset.flags, TcpFlags::RST | TcpFlags::ACK);
        assert_eq!(reset.acknowledgment, 0x0102_0305);
        let mut segment = [0u8; 20];
        let len = reset
            .emit_in_place(&mut segment, 0, fixtures::NIC_IP, fixtures::PEER_IP)
            .unwrap();
        let parsed = TcpPacket::parse(&segment[..len], fixtures::NIC_IP, fixtures::PEER_IP);
        assert_eq!(parsed.unwrap().repr(), reset);
        let with_ack = TcpRepr {
            flags: TcpFlags::ACK,
            acknowledgment: 77,
            ..syn
        };
        assert_eq!(with_ack.reset_for(5).sequence, 77);
        assert_eq!(with_ack.reset_for(5).flags, TcpFlags::RST);
    }
}
