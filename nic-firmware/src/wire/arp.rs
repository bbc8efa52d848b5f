//! ARP for Ethernet and IPv4 (RFC 826): the 28-byte packet, requests and replies.

use zerocopy::byteorder::network_endian::U16;
use zerocopy::{FromBytes, Immutable, IntoBytes, KnownLayout, Unaligned};

use super::ethernet::MacAddress;
use super::ipv4::Ipv4Address;
use super::{header, put_header, Error, Result};

/// An ARP packet for Ethernet and IPv4 as it lies on the wire.
#[derive(Clone, Copy, Debug, FromBytes, IntoBytes, KnownLayout, Immutable, Unaligned)]
#[repr(C)]
pub struct ArpPacket {
    /// Hardware type (1 = Ethernet), bytes 0..2.
    pub hardware_type: U16,
    /// Protocol type (0x0800 = IPv4), bytes 2..4.
    pub protocol_type: U16,
    /// Hardware address length (6), byte 4.
    pub hardware_len: u8,
    /// Protocol address length (4), byte 5.
    pub protocol_len: u8,
    /// Operation (1 = request, 2 = reply), bytes 6..8.
    pub operation: U16,
    /// Sender hardware address, bytes 8..14.
    pub sender_mac: MacAddress,
    /// Sender protocol address, bytes 14..18.
    pub sender_ip: Ipv4Address,
    /// Target hardware address, bytes 18..24.
    pub target_mac: MacAddress,
    /// Target protocol address, bytes 24..28.
    pub target_ip: Ipv4Address,
}

/// Length of an Ethernet/IPv4 ARP packet.
pub const PACKET_LEN: usize = 28;

/// The ARP operation.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ArpOperation {
    /// 1: who has `target_ip`?
    Request,
    /// 2: `sender_ip` is at `sender_mac`.
    Reply,
}

/// A checked Ethernet/IPv4 ARP packet.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ArpRepr {
    /// Request or reply.
    pub operation: ArpOperation,
    /// Who sends.
    pub sender_mac: MacAddress,
    /// The sender's IP.
    pub sender_ip: Ipv4Address,
    /// Who it is for (zero in requests).
    pub target_mac: MacAddress,
    /// The IP asked about or answered to.
    pub target_ip: Ipv4Address,
}

impl ArpRepr {
    /// Parses an ARP packet (the Ethernet payload; padding after it is ignored). Other
    /// hardware or protocol types and unknown operations are [`Error::Unsupported`].
    pub fn parse(bytes: &[u8]) -> Result<Self> {
        let (packet, _) = header::<ArpPacket>(bytes)?;
        if packet.hardware_type.get() != 1
            || packet.protocol_type.get() != 0x0800
            || packet.hardware_len != 6
            || packet.protocol_len != 4
        {
            return Err(Error::Unsupported);
        }
        let operation = match packet.operation.get() {
            1 => ArpOperation::Request,
            2 => ArpOperation::Reply,
            _ => return Err(Error::Unsupported),
        };
        Ok(ArpRepr {
            operation,
            sender_mac: packet.sender_mac,
            sender_ip: packet.sender_ip,
            target_mac: packet.target_mac,
            target_ip: packet.target_ip,
        })
    }

    /// The reply to this request from `mac`, which owns `target_ip`.
    pub fn reply_from(&self, mac: MacAddress) -> ArpRepr {
        ArpRepr {
            operation: ArpOperation::Reply,
            sender_mac: mac,
            sender_ip: self.target_ip,
            target_mac: self.sender_mac,
            target_ip: self.sender_ip,
        }
    }

    /// Writes the packet at the front of `buffer`; returns its length.
    pub fn emit(&self, buffer: &mut [u8]) -> Result<usize> {
        let packet = ArpPacket {
            hardware_type: U16::new(1),
            protocol_type: U16::new(0x0800),
            hardware_len: 6,
            protocol_len: 4,
            operation: U16::new(match self.operation {
                ArpOperation::Request => 1,
                ArpOperation::Reply => 2,
            }),
            sender_mac: self.sender_mac,
            sender_ip: self.sender_ip,
            target_mac: self.target_mac,
            target_ip: self.target_ip,
        };
        put_header(&packet, buffer)?;
        Ok(PACKET_LEN)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wire::fixtures;

    #[test]
    fn packet_is_28_bytes() {
        assert_eq!(core::mem::size_of::<ArpPacket>(), PACKET_LEN);
    }

    #[test]
    fn parses_the_request_and_emits_the_reply() {
        let request = ArpRepr::parse(&fixtures::ARP_REQUEST_FRAME[14..]).unwrap();
        assert_eq!(request.operation, ArpOperation::Request);
        assert_eq!(request.sender_ip, fixtures::PEER_IP);
        assert_eq!(request.target_ip, fixtures::NIC_IP);
        let mut buffer = [0u8; PACKET_LEN];
        assert_eq!(
            request.reply_from(fixtures::NIC_MAC).emit(&mut buffer),
            Ok(28)
        );
        assert_eq!(buffer[..], fixtures::ARP_REPLY_FRAME[14..]);
        assert_eq!(request.emit(&mut [0u8; 27]), Err(Error::BufferTooSmall));
    }

    #[test]
    fn refuses_other_kinds() {
        let good = &fixtures::ARP_REQUEST_FRAME[14..];
        assert_eq!(ArpRepr::parse(&good[..27]), Err(Error::Truncated));
        for (offset, value) in [(1, 6), (2, 0x86), (4, 8), (5, 16), (7, 3)] {
            let mut bytes = [0u8; PACKET_LEN];
            bytes.copy_from_slice(good);
            bytes[offset] = value;
            assert_eq!(
                ArpRepr::parse(&bytes),
                Err(Error::Unsupported),
                "byte {offset}"
            );
        }
    }
}
