//! The Internet checksum (RFC 1071): one's-complement sums over bytes and pseudo-headers.
//!
//! Bytes are summed as native-endian 64-bit words into a 128-bit accumulator, folded to 16 bits
//! with end-around carry and byte-swapped into big-endian order at the end: the one's-complement
//! sum does not depend on word width or byte order up to that swap (RFC 1071 section 2), so this
//! gives the RFC's 16-bit result at about two instructions per 8 bytes. A short datagram's last
//! bytes are summed in straight-line code, and the fold is two adds with end-around carry.

use super::ipv4::Ipv4Address;

/// A running one's-complement sum of native-endian words, not yet folded to 16 bits: adding
/// costs no fold, only [`Checksum::fold`] folds and swaps into network order.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Checksum(u64);

/// `a + b` with the carry out added back in (one's-complement addition on 64 bits).
const fn add_with_carry(a: u64, b: u64) -> u64 {
    let (sum, carry) = a.overflowing_add(b);
    sum + carry as u64
}

impl Checksum {
    /// An empty sum.
    pub const fn new() -> Self {
        Checksum(0)
    }

    /// Adds `bytes` as big-endian 16-bit words; an odd last byte is padded with zero.
    ///
    /// Every slice added must start at an even offset of the summed data, so only the last
    /// slice added may have an odd length (as in every pseudo-header + header + payload sum in
    /// this crate).
    #[must_use]
    #[inline]
    pub fn add_bytes(self, bytes: &[u8]) -> Self {
        // Native-endian words, end-around carry: the one's-complement sum is the same in
        // either byte order up to a final swap (RFC 1071 section 2(B)), done in `fold`. The
        // words go into a 128-bit accumulator (an add and an add-with-carry per word, no
        // dependency on a folded carry), four words per step.
        let word = |eight: &[u8; 8]| u128::from(u64::from_ne_bytes(*eight));
        let mut sum = 0u128;
        let (words, tail) = bytes.as_chunks::<8>();
        let (blocks, words) = words.as_chunks::<4>();
        for [a, b, c, d] in blocks {
            sum += word(a) + word(b) + word(c);
            sum += word(d);
        }
        // The last 0 to 3 words, then the last 0 to 7 bytes as a 4-, a 2- and a 1-byte piece,
        // each read at once and each starting at an even offset, so that each sums to the same
        // 16-bit words as the bytes would in one padded word: straight-line code for the short
        // datagrams the runtime sees most. (A loop over the last words, or a tail copied into
        // a zeroed word, costs more than the sum itself; the copy, a call to memcpy.)
        let (pairs, words) = words.as_chunks::<2>();
        if let Some([a, b]) = pairs.first() {
            sum += word(a) + word(b);
        }
        if let Some(last) = words.first() {
            sum += word(last);
        }
        let mut tail = tail;
        if let Some((four, rest)) = tail.split_first_chunk::<4>() {
            sum += u128::from(u32::from_ne_bytes(*four));
            tail = rest;
        }
        if let Some((two, rest)) = tail.split_first_chunk::<2>() {
            sum += u128::from(u16::from_ne_bytes(*two));
            tail = rest;
        }
        if let Some(&last) = tail.first() {
            // Zero padding after the last byte is the RFC's padding of an odd byte.
            sum += u128::from(u16::from_ne_bytes([last, 0]));
        }
        let folded = add_with_carry(sum as u64, (sum >> 64) as u64);
        Checksum(add_with_carry(self.0, folded))
    }

    /// Adds one 16-bit word (in host order; it is summed as its big-endian bytes).
    #[must_use]
    #[inline]
    pub const fn add_u16(self, word: u16) -> Self {
        let native = u16::from_ne_bytes(word.to_be_bytes());
        Checksum(add_with_carry(self.0, native as u64))
    }

    /// Adds the IPv4 pseudo-header of a TCP or UDP segment (RFC 768, RFC 793).
    #[must_use]
    #[inline]
    pub fn add_pseudo_header(
        self,
        source: Ipv4Address,
        destination: Ipv4Address,
        protocol: u8,
        length: u16,
    ) -> Self {
        self.add_addresses(source, destination)
            .add_u16(u16::from(protocol))
            .add_u16(length)
    }

    /// Adds two IPv4 addresses (as in a header or a pseudo-header).
    #[must_use]
    #[inline]
    pub fn add_addresses(self, source: Ipv4Address, destination: Ipv4Address) -> Self {
        let addresses =
            u64::from(u32::from_ne_bytes(source.0)) + u64::from(u32::from_ne_bytes(destination.0));
        Checksum(add_with_carry(self.0, addresses))
    }

    /// The folded 16-bit one's-complement sum, in host order.
    #[inline]
    pub fn fold(self) -> u16 {
        to_big_endian_word(fold_to_16(self.0))
    }

    /// The checksum field value: the complement of the folded sum.
    #[inline]
    pub fn finish(self) -> u16 {
        !self.fold()
    }

    /// Whether data that includes its own checksum field sums to all ones (is intact).
    #[inline]
    pub fn verifies(self) -> bool {
        // All ones is all ones in either byte order: no swap needed.
        fold_to_16(self.0) == 0xffff
    }
}

/// Folds a one's-complement sum of 64-bit words to 16 bits: each half added to the other with
/// the carry out added back in (an add and an add-with-carry per step on most machines).
#[inline]
const fn fold_to_16(sum: u64) -> u16 {
    let (sum, carry) = (sum as u32).overflowing_add((sum >> 32) as u32);
    // Cannot overflow: with a carry out, the sum is at most 0xffff_fffe.
    let sum = sum + carry as u32;
    let (sum, carry) = (sum as u16).overflowing_add((sum >> 16) as u16);
    sum + carry as u16
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
    fn sums_in_pieces_and_with_words_match_one_sum() {
        let bytes: [u8; 64] = core::array::from_fn(|i| (i * 91 + 5) as u8);
        let whole = Checksum::new().add_bytes(&bytes).finish();
        for cut in (0..bytes.len()).step_by(2) {
            let pieces = Checksum::new()
                .add_bytes(&bytes[..cut])
                .add_bytes(&bytes[cut..])
                .finish();
            assert_eq!(pieces, whole, "cut at {cut}");
        }
        let words = Checksum::new()
            .add_u16(u16::from_be_bytes([bytes[0], bytes[1]]))
            .add_bytes(&bytes[2..])
            .finish();
        assert_eq!(words, whole);
        let pseudo = Checksum::new()
            .add_pseudo_header(
                Ipv4Address([bytes[0], bytes[1], bytes[2], bytes[3]]),
                Ipv4Address([bytes[4], bytes[5], bytes[6], bytes[7]]),
                bytes[9],
                u16::from_be_bytes([bytes[10], bytes[11]]),
            )
            .add_bytes(&bytes[12..])
            .finish();
        let mut zeroed = bytes;
        zeroed[8] = 0;
        assert_eq!(pseudo, reference(&zeroed));
    }

    #[test]
    fn folds_like_the_16_bit_loop() {
        // The fold of a 64-bit sum against folding 16 bits at a time, end-around carry and
        // all, on the words where carries ripple.
        let slow = |mut sum: u64| {
            while sum > 0xffff {
                sum = (sum & 0xffff) + (sum >> 16);
            }
            sum as u16
        };
        let mut values = vec![0, 1, 0xffff, 0x1_0000, 0xffff_ffff, 0x1_0000_0000, u64::MAX];
        values.extend([u64::MAX - 1, 0xffff_0000_ffff, 0x8000_8000_8000_8000]);
        values.extend((0..64).map(|shift| 0x9e37_79b9_7f4a_7c15u64.rotate_left(shift)));
        for value in values {
            assert_eq!(fold_to_16(value), slow(value), "{value:#x}");
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
