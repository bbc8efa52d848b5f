//! The Internet checksum (RFC 1071): one's-complement sums over bytes and pseudo-headers.
//!
//! Sums are accumulated as 32-bit big-endian words into a `u64` and folded to 16 bits at the
//! end; the one's-complement sum is the same whatever the word width, so this gives the RFC's
//! 16-bit result while touching each byte once.

use super::ipv4::Ipv4Address;

/// A running one's-complement sum, not yet folded.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Checksum(u64);

impl Checksum {
    /// An empty sum.
    pub const fn new() -> Self {
        Checksum(0)
    }

    /// Adds `bytes` as big-endian 16-bit words; an odd last byte is padded with zero.
    ///
    /// Only the last slice added may have an odd length (as in every pseudo-header + header +
    /// payload sum in this crate).
    #[must_use]
    pub fn add_bytes(self, bytes: &[u8]) -> Self {
        let mut sum = self.0;
        let mut words = bytes.chunks_exact(8);
        for chunk in &mut words {
            let mut eight = [0u8; 8];
            eight.copy_from_slice(chunk);
            let value = u64::from_be_bytes(eight);
            sum += (value >> 32) + (value & 0xffff_ffff);
        }
        let mut tail = words.remainder().chunks_exact(2);
        for pair in &mut tail {
            sum += u64::from(u16::from_be_bytes([pair[0], pair[1]]));
        }
        if let [last] = tail.remainder() {
            sum += u64::from(*last) << 8;
        }
        Checksum(sum)
    }

    /// Adds one 16-bit word.
    #[must_use]
    pub const fn add_u16(self, word: u16) -> Self {
        Checksum(self.0 + word as u64)
    }

    /// Adds the IPv4 pseudo-header of a TCP or UDP segment (RFC 768, RFC 793).
    #[must_use]
    pub fn add_pseudo_header(
        self,
        source: Ipv4Address,
        destination: Ipv4Address,
        protocol: u8,
        length: u16,
    ) -> Self {
        self.add_bytes(&source.0)
            .add_bytes(&destination.0)
            .add_u16(u16::from(protocol))
            .add_u16(length)
    }

    /// The folded 16-bit one's-complement sum.
    pub fn fold(self) -> u16 {
        let mut sum = self.0;
        while sum > 0xffff {
            sum = (sum & 0xffff) + (sum >> 16);
        }
        sum as u16
    }

    /// The checksum field value: the complement of the folded sum.
    pub fn finish(self) -> u16 {
        !self.fold()
    }

    /// Whether data that includes its own checksum field sums to all ones (is intact).
    pub fn verifies(self) -> bool {
        self.fold() == 0xffff
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The reference: RFC 1071's 16-bit loop.
    fn reference(bytes: &[u8]) -> u16 {
        let mut sum: u32 = 0;
        for pair in bytes.chunks(2) {
            let word = u16::from_be_bytes([pair[0], *pair.get(1).unwrap_or(&0)]);
            sum += u32::from(word);
        }
        while sum > 0xffff {
            sum = (sum & 0xffff) + (sum >> 16);
        }
        !(sum as u16)
    }

    #[test]
    fn rfc1071_example() {
        // RFC 1071 section 3: the bytes 00 01 f2 03 f4 f5 f6 f7 sum to 0xddf2.
        let bytes = [0x00, 0x01, 0xf2, 0x03, 0xf4, 0xf5, 0xf6, 0xf7];
        assert_eq!(Checksum::new().add_bytes(&bytes).fold(), 0xddf2);
    }

    #[test]
    fn matches_the_16_bit_loop_for_every_length() {
        let bytes: [u8; 300] = core::array::from_fn(|i| (i * 37 + 11) as u8);
        for len in 0..bytes.len() {
            let wide = Checksum::new().add_bytes(&bytes[..len]).finish();
            assert_eq!(wide, reference(&bytes[..len]), "length {len}");
        }
    }

    #[test]
    fn all_ones_bytes_do_not_overflow() {
        let bytes = [0xffu8; 2048];
        assert_eq!(
            Checksum::new().add_bytes(&bytes).finish(),
            reference(&bytes)
        );
    }
}
