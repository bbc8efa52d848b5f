//! The Internet checksum (RFC 1071): one's-complement sums over bytes and pseudo-headers.
//!
//! Bytes are summed as native-endian 64-bit words with end-around carry, folded to 16 bits and
//! byte-swapped into big-endian order at the end: the one's-complement sum does not depend on
//! word width or byte order up to that swap (RFC 1071 section 2), so this gives the RFC's
//! 16-bit result at one add per 8 bytes.

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
        // Native-endian words, end-around carry: the one's-complement sum is the same in
        // either byte order up to a final swap (RFC 1071 section 2(B)), done in `fold`.
        let mut sum = 0u64;
        let mut words = bytes.chunks_exact(8);
        for chunk in &mut words {
            let mut eight = [0u8; 8];
            eight.copy_from_slice(chunk);
            let (added, carry) = sum.overflowing_add(u64::from_ne_bytes(eight));
            sum = added + u64::from(carry);
        }
        let tail = words.remainder();
        if !tail.is_empty() {
            // Zero padding after the last byte is the RFC's padding of an odd byte too.
            let mut eight = [0u8; 8];
            eight[..tail.len()].copy_from_slice(tail);
            let (added, carry) = sum.overflowing_add(u64::from_ne_bytes(eight));
            sum = added + u64::from(carry);
        }
        self.add_u16(to_big_endian_word(fold_to_16(sum)))
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
        fold_to_16(self.0)
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

/// Folds a one's-complement sum of any width to 16 bits.
fn fold_to_16(mut sum: u64) -> u16 {
    while sum > 0xffff {
        sum = (sum & 0xffff) + (sum >> 16);
    }
    sum as u16
}

/// A 16-bit sum of native-endian words as the sum of the same bytes read big-endian.
fn to_big_endian_word(native: u16) -> u16 {
    u16::from_be_bytes(native.to_ne_bytes())
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
