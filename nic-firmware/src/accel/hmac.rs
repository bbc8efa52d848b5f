//! SHA-1 message padding and HMAC (RFC 2104) over any SHA-1 compression function, so the
//! hardware compression of [`super::armv8`] gets the same framing as the software one.

/// A SHA-1 compression function: folds one 64-byte block into the five-word state.
pub type Compress = fn(&mut [u32; 5], &[u8; 64]);

const INITIAL: [u32; 5] = [
    0x6745_2301,
    0xefcd_ab89,
    0x98ba_dcfe,
    0x1032_5476,
    0xc3d2_e1f0,
];
const BLOCK: usize = 64;

/// An incremental SHA-1 over a given compression function.
pub struct Sha1 {
    compress: Compress,
    state: [u32; 5],
    block: [u8; BLOCK],
    buffered: usize,
    length: u64,
}

impl Sha1 {
    /// A fresh hash.
    pub fn new(compress: Compress) -> Self {
        Self {
            compress,
            state: INITIAL,
            block: [0; BLOCK],
            buffered: 0,
            length: 0,
        }
    }

    /// Feeds `data`.
    pub fn update(&mut self, mut data: &[u8]) {
        self.length = self.length.wrapping_add(data.len() as u64);
        if self.buffered > 0 {
            let take = data.len().min(BLOCK - self.buffered);
            self.block[self.buffered..self.buffered + take].copy_from_slice(&data[..take]);
            self.buffered += take;
            data = &data[take..];
            if self.buffered < BLOCK {
                return;
            }
            (self.compress)(&mut self.state, &self.block);
            self.buffered = 0;
        }
        let mut blocks = data.chunks_exact(BLOCK);
        for block in &mut blocks {
            if let Ok(block) = block.try_into() {
                (self.compress)(&mut self.state, block);
            }
        }
        let rest = blocks.remainder();
        self.block[..rest.len()].copy_from_slice(rest);
        self.buffered = rest.len();
    }

    /// Pads, finishes and returns the digest.
    pub fn finish(mut self) -> [u8; 20] {
        let bits = self.length.wrapping_mul(8);
        self.block[self.buffered] = 0x80;
        self.block[self.buffered + 1..].fill(0);
        if self.buffered + 1 > BLOCK - 8 {
            (self.compress)(&mut self.state, &self.block);
            self.block.fill(0);
        }
        self.block[BLOCK - 8..].copy_from_slice(&bits.to_be_bytes());
        (self.compress)(&mut self.state, &self.block);
        let mut digest = [0u8; 20];
        for (out, word) in digest.chunks_exact_mut(4).zip(self.state) {
            out.copy_from_slice(&word.to_be_bytes());
        }
        digest
    }
}

/// HMAC-SHA1 of the concatenated `message` parts under `key` (RFC 2104; any key length).
pub fn hmac_sha1(compress: Compress, key: &[u8], message: &[&[u8]]) -> [u8; 20] {
    let mut padded = [0u8; BLOCK];
    if key.len() > BLOCK {
        let mut hashed = Sha1::new(compress);
        hashed.update(key);
        padded[..20].copy_from_slice(&hashed.finish());
    } else {
        padded[..key.len()].copy_from_slice(key);
    }
    let pad = |byte: u8| padded.map(|k| k ^ byte);
    let mut inner = Sha1::new(compress);
    inner.update(&pad(0x36));
    for part in message {
        inner.update(part);
    }
    let inner = inner.finish();
    let mut outer = Sha1::new(compress);
    outer.update(&pad(0x5c));
    outer.update(&inner);
    outer.finish()
}

#[cfg(test)]
mod tests {
    use super::*;
    use microservices::engines::kat;
    use microservices::engines::{CryptoEngine, EngineError, SoftwareEngines};

    /// The FIPS 180-4 compression written out plainly: the reference the framing is tested
    /// with on the host (the board runs the same framing over the SHA-1 instructions).
    fn textbook_compress(state: &mut [u32; 5], block: &[u8; 64]) {
        let mut w = [0u32; 80];
        for (t, word) in block.chunks_exact(4).enumerate() {
            w[t] = u32::from_be_bytes([word[0], word[1], word[2], word[3]]);
        }
        for t in 16..80 {
            w[t] = (w[t - 3] ^ w[t - 8] ^ w[t - 14] ^ w[t - 16]).rotate_left(1);
        }
        let [mut a, mut b, mut c, mut d, mut e] = *state;
        for (t, wt) in w.iter().enumerate() {
            let (f, k) = match t / 20 {
                0 => ((b & c) | (!b & d), 0x5a82_7999),
                1 => (b ^ c ^ d, 0x6ed9_eba1),
                2 => ((b & c) | (b & d) | (c & d), 0x8f1b_bcdc),
                _ => (b ^ c ^ d, 0xca62_c1d6),
            };
            let temp = a
                .rotate_left(5)
                .wrapping_add(f)
                .wrapping_add(e)
                .wrapping_add(k)
                .wrapping_add(*wt);
            (e, d, c, b, a) = (d, c, b.rotate_left(30), a, temp);
        }
        for (s, v) in state.iter_mut().zip([a, b, c, d, e]) {
            *s = s.wrapping_add(v);
        }
    }

    /// AES from the software engine, HMAC from this module's framing.
    struct Framing;

    impl CryptoEngine for Framing {
        fn aes128_cbc_encrypt(
            &self,
            key: &[u8; 16],
            iv: &[u8; 16],
            buf: &mut [u8],
        ) -> Result<(), EngineError> {
            SoftwareEngines.aes128_cbc_encrypt(key, iv, buf)
        }
        fn aes128_cbc_decrypt(
            &self,
            key: &[u8; 16],
            iv: &[u8; 16],
            buf: &mut [u8],
        ) -> Result<(), EngineError> {
            SoftwareEngines.aes128_cbc_decrypt(key, iv, buf)
        }
        fn hmac_sha1(&self, key: &[u8], message: &[&[u8]]) -> [u8; 20] {
            hmac_sha1(textbook_compress, key, message)
        }
    }

    #[test]
    fn framing_passes_rfc_2202() {
        assert_eq!(kat::check_crypto(&Framing), Ok(()));
    }

    #[test]
    fn padding_is_right_at_every_length_around_the_block_boundary() {
        let data: Vec<u8> = (0..200u8).collect();
        for len in 0..data.len() {
            for split in [0, len / 3, len] {
                let key = &data[..len % 70];
                let (a, b) = data[..len].split_at(split);
                assert_eq!(
                    hmac_sha1(textbook_compress, key, &[a, b]),
                    SoftwareEngines.hmac_sha1(key, &[&data[..len]]),
                    "length {len}"
                );
            }
        }
    }
}
