//! Just enough IPv4 for the packet services: a checked header view and RFC 1624 incremental
//! checksum updates for the IPv4 header and the TCP/UDP pseudo-header.

#[cfg(any(test, feature = "std"))]
use alloc::vec::Vec;

use crate::service::ServiceError;

/// IP protocol number of TCP.
pub const PROTO_TCP: u8 = 6;
/// IP protocol number of UDP.
pub const PROTO_UDP: u8 = 17;

/// A checked IPv4 packet: version 4, header length and total length within the buffer, valid
/// header checksum. Bytes past the total length are not part of it.
#[derive(Debug)]
pub struct Ipv4<'a> {
    packet: &'a mut [u8],
    header_len: usize,
}

/// The Internet checksum (RFC 1071) of `bytes`, folded, not complemented.
pub fn ones_complement_sum(bytes: &[u8]) -> u16 {
    let mut sum: u32 = 0;
    let mut words = bytes.chunks_exact(2);
    for word in &mut words {
        sum += u32::from(u16::from_be_bytes([word[0], word[1]]));
    }
    if let [last] = words.remainder() {
        sum += u32::from(*last) << 8;
    }
    while sum > 0xffff {
        sum = (sum & 0xffff) + (sum >> 16);
    }
    sum as u16
}

/// Updates the checksum field at `at` in `bytes` for a 32-bit field changing from `old` to
/// `new` (RFC 1624, eqn. 3). `udp` keeps a transmitted zero meaning "no checksum".
fn update_checksum(bytes: &mut [u8], at: usize, old: u32, new: u32, udp: bool) {
    let Some(field) = bytes.get_mut(at..at + 2) else {
        return;
    };
    let current = u16::from_be_bytes([field[0], field[1]]);
    if udp && current == 0 {
        return;
    }
    let mut sum = u32::from(!current);
    for (o, n) in [(old >> 16, new >> 16), (old & 0xffff, new & 0xffff)] {
        sum += (!o & 0xffff) + n;
    }
    while sum > 0xffff {
        sum = (sum & 0xffff) + (sum >> 16);
    }
    let mut updated = !(sum as u16);
    if udp && updated == 0 {
        updated = 0xffff;
    }
    field.copy_from_slice(&updated.to_be_bytes());
}

impl<'a> Ipv4<'a> {
    /// Checks `packet` and views its first total-length bytes.
    pub fn parse(packet: &'a mut [u8]) -> Result<Self, ServiceError> {
        let header: &[u8; 20] = packet.first_chunk::<20>().ok_or(ServiceError::Truncated)?;
        if header[0] >> 4 != 4 {
            return Err(ServiceError::BadField);
        }
        let header_len = usize::from(header[0] & 0x0f) * 4;
        let total_len = usize::from(u16::from_be_bytes([header[2], header[3]]));
        if header_len < 20 || total_len < header_len || total_len > packet.len() {
            return Err(ServiceError::BadLength);
        }
        if ones_complement_sum(&packet[..header_len]) != 0xffff {
            return Err(ServiceError::BadField);
        }
        Ok(Self {
            packet: &mut packet[..total_len],
            header_len,
        })
    }

    /// The whole packet (header and payload).
    pub fn bytes(&self) -> &[u8] {
        self.packet
    }

    /// IP protocol number.
    pub fn protocol(&self) -> u8 {
        self.packet[9]
    }

    /// Destination address.
    pub fn destination(&self) -> u32 {
        self.address(16)
    }

    fn address(&self, at: usize) -> u32 {
        u32::from_be_bytes([
            self.packet[at],
            self.packet[at + 1],
            self.packet[at + 2],
            self.packet[at + 3],
        ])
    }

    /// Whether this is the first (or only) fragment, the one that carries the L4 header.
    fn first_fragment(&self) -> bool {
        u16::from_be_bytes([self.packet[6], self.packet[7]]) & 0x1fff == 0
    }

    /// Rewrites the destination address, updating the IPv4 header checksum and, in a first
    /// fragment, the TCP or UDP checksum (its pseudo-header covers the address).
    pub fn set_destination(&mut self, address: u32) {
        self.set_address(16, address);
    }

    fn set_address(&mut self, at: usize, address: u32) {
        let old = self.address(at);
        self.packet[at..at + 4].copy_from_slice(&address.to_be_bytes());
        update_checksum(self.packet, 10, old, address, false);
        if self.first_fragment() {
            let l4 = self.header_len;
            match self.protocol() {
                PROTO_UDP => update_checksum(self.packet, l4 + 6, old, address, true),
                PROTO_TCP => update_checksum(self.packet, l4 + 16, old, address, false),
                _ => {}
            }
        }
    }
}

#[cfg(any(test, feature = "std"))]
/// A UDP/IPv4 packet with correct checksums (client side; allocates).
pub fn udp_packet(src: u32, dst: u32, ports: (u16, u16), payload: &[u8]) -> Vec<u8> {
    let total = 28 + payload.len();
    let mut p = Vec::with_capacity(total);
    p.extend_from_slice(&[0x45, 0, 0, 0, 0x12, 0x34, 0x40, 0, 64, PROTO_UDP, 0, 0]);
    p[2..4].copy_from_slice(&(total as u16).to_be_bytes());
    p.extend_from_slice(&src.to_be_bytes());
    p.extend_from_slice(&dst.to_be_bytes());
    let csum = !ones_complement_sum(&p[..20]);
    p[10..12].copy_from_slice(&csum.to_be_bytes());
    p.extend_from_slice(&ports.0.to_be_bytes());
    p.extend_from_slice(&ports.1.to_be_bytes());
    p.extend_from_slice(&((8 + payload.len()) as u16).to_be_bytes());
    p.extend_from_slice(&[0, 0]);
    p.extend_from_slice(payload);
    let udp_csum = !udp_sum(&p);
    let udp_csum = if udp_csum == 0 { 0xffff } else { udp_csum };
    p[26..28].copy_from_slice(&udp_csum.to_be_bytes());
    p
}

#[cfg(any(test, feature = "std"))]
/// The one's-complement sum of the UDP pseudo-header and datagram of a UDP/IPv4 packet with a
/// 20-byte header.
pub fn udp_sum(packet: &[u8]) -> u16 {
    let udp = &packet[20..];
    let mut pseudo = Vec::with_capacity(12 + udp.len());
    pseudo.extend_from_slice(&packet[12..20]);
    pseudo.extend_from_slice(&[0, PROTO_UDP]);
    pseudo.extend_from_slice(&(udp.len() as u16).to_be_bytes());
    pseudo.extend_from_slice(udp);
    ones_complement_sum(&pseudo)
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    #[test]
    fn rewriting_keeps_both_checksums_valid() {
        let mut p = udp_packet(0x0a00_0001, 0xc0a8_0102, (12345, 53), b"hello, world");
        let mut ip = Ipv4::parse(&mut p).unwrap();
        ip.set_destination(0x0102_0304);
        assert_eq!(ones_complement_sum(&p[..20]), 0xffff);
        assert_eq!(udp_sum(&p), 0xffff);
    }

    #[test]
    fn malformed_headers_are_refused() {
        let good = udp_packet(1, 2, (12345, 53), b"x");
        assert_eq!(
            Ipv4::parse(&mut good[..19].to_vec()).unwrap_err(),
            ServiceError::Truncated
        );
        let mut v6 = good.clone();
        v6[0] = 0x65;
        assert_eq!(Ipv4::parse(&mut v6).unwrap_err(), ServiceError::BadField);
        let mut long = good.clone();
        long[3] += 1;
        assert_eq!(Ipv4::parse(&mut long).unwrap_err(), ServiceError::BadLength);
        let mut ihl = good.clone();
        ihl[0] = 0x44;
        assert_eq!(Ipv4::parse(&mut ihl).unwrap_err(), ServiceError::BadLength);
        let mut sum = good.clone();
        sum[8] -= 1;
        assert_eq!(Ipv4::parse(&mut sum).unwrap_err(), ServiceError::BadField);
    }
}
