//! AES-128 and SHA-1 on the ARMv8 Cryptographic Extension (aarch64 only).
//!
//! Every function here needs the matching instructions: callers check [`super::CpuFeatures`]
//! first. Blocks are loaded and stored with unaligned NEON loads, so buffers need no alignment.

use core::arch::aarch64::{
    uint32x4_t, uint8x16_t, vaddq_u32, vaesdq_u8, vaeseq_u8, vaesimcq_u8, vaesmcq_u8, vdupq_n_u32,
    vdupq_n_u8, veorq_u8, vgetq_lane_u32, vld1q_u32, vld1q_u8, vreinterpretq_u32_u8,
    vreinterpretq_u8_u32, vrev32q_u8, vsha1cq_u32, vsha1h_u32, vsha1mq_u32, vsha1pq_u32,
    vsha1su0q_u32, vsha1su1q_u32, vst1q_u32, vst1q_u8,
};

use microservices::engines::{EngineError, AES_BLOCK};

const ROUND_CONSTANTS: [u8; 10] = [0x01, 0x02, 0x04, 0x08, 0x10, 0x20, 0x40, 0x80, 0x1b, 0x36];

/// The 11 round keys of AES-128 (FIPS-197 section 5.2).
#[target_feature(enable = "aes")]
fn expand_key(key: &[u8; 16]) -> [uint8x16_t; 11] {
    let mut words = [[0u8; 4]; 44];
    for (word, bytes) in words.iter_mut().zip(key.chunks_exact(4)) {
        word.copy_from_slice(bytes);
    }
    for i in 4..44 {
        let mut temp = words[i - 1];
        if i % 4 == 0 {
            temp.rotate_left(1);
            temp = sub_word(temp);
            temp[0] ^= ROUND_CONSTANTS[i / 4 - 1];
        }
        for (t, previous) in temp.iter_mut().zip(words[i - 4]) {
            *t ^= previous;
        }
        words[i] = temp;
    }
    let mut keys = [vdupq_n_u8(0); 11];
    for (round, key) in keys.iter_mut().enumerate() {
        let mut bytes = [0u8; 16];
        for (chunk, word) in bytes
            .chunks_exact_mut(4)
            .zip(&words[4 * round..4 * round + 4])
        {
            chunk.copy_from_slice(word);
        }
        // SAFETY: `bytes` is 16 readable bytes.
        *key = unsafe { vld1q_u8(bytes.as_ptr()) };
    }
    keys
}

/// The S-box applied to each byte of `word`, computed with `AESE`: with the word in all four
/// columns and a zero round key, ShiftRows only moves equal bytes, so column 0 is SubWord.
#[target_feature(enable = "aes")]
fn sub_word(word: [u8; 4]) -> [u8; 4] {
    let state = vreinterpretq_u8_u32(vdupq_n_u32(u32::from_ne_bytes(word)));
    let substituted = vaeseq_u8(state, vdupq_n_u8(0));
    vgetq_lane_u32::<0>(vreinterpretq_u32_u8(substituted)).to_ne_bytes()
}

#[target_feature(enable = "aes")]
fn encrypt_block(keys: &[uint8x16_t; 11], mut block: uint8x16_t) -> uint8x16_t {
    for key in &keys[..9] {
        block = vaesmcq_u8(vaeseq_u8(block, *key));
    }
    veorq_u8(vaeseq_u8(block, keys[9]), keys[10])
}

#[target_feature(enable = "aes")]
fn decrypt_block(keys: &[uint8x16_t; 11], mut block: uint8x16_t) -> uint8x16_t {
    for key in &keys[..9] {
        block = vaesimcq_u8(vaesdq_u8(block, *key));
    }
    veorq_u8(vaesdq_u8(block, keys[9]), keys[10])
}

/// AES-128-CBC encryption of `buf` in place.
///
/// # Safety
/// The core must implement the AES instructions.
#[target_feature(enable = "aes")]
pub unsafe fn cbc_encrypt(
    key: &[u8; 16],
    iv: &[u8; 16],
    buf: &mut [u8],
) -> Result<(), EngineError> {
    if !buf.len().is_multiple_of(AES_BLOCK) {
        return Err(EngineError::BadLength);
    }
    let keys = expand_key(key);
    // SAFETY: `iv` is 16 readable bytes.
    let mut chain = unsafe { vld1q_u8(iv.as_ptr()) };
    for block in buf.chunks_exact_mut(AES_BLOCK) {
        // SAFETY: `block` is 16 readable and writable bytes.
        unsafe {
            chain = encrypt_block(&keys, veorq_u8(vld1q_u8(block.as_ptr()), chain));
            vst1q_u8(block.as_mut_ptr(), chain);
        }
    }
    Ok(())
}

/// AES-128-CBC decryption of `buf` in place.
///
/// # Safety
/// The core must implement the AES instructions.
#[target_feature(enable = "aes")]
pub unsafe fn cbc_decrypt(
    key: &[u8; 16],
    iv: &[u8; 16],
    buf: &mut [u8],
) -> Result<(), EngineError> {
    if !buf.len().is_multiple_of(AES_BLOCK) {
        return Err(EngineError::BadLength);
    }
    let forward = expand_key(key);
    // The equivalent inverse cipher (FIPS-197 5.3.5): reversed keys, InvMixColumns on the
    // middle ones.
    let mut keys = [forward[10]; 11];
    for round in 1..10 {
        keys[round] = vaesimcq_u8(forward[10 - round]);
    }
    keys[10] = forward[0];
    // SAFETY: `iv` is 16 readable bytes.
    let mut chain = unsafe { vld1q_u8(iv.as_ptr()) };
    for block in buf.chunks_exact_mut(AES_BLOCK) {
        // SAFETY: `block` is 16 readable and writable bytes.
        unsafe {
            let cipher = vld1q_u8(block.as_ptr());
            vst1q_u8(
                block.as_mut_ptr(),
                veorq_u8(decrypt_block(&keys, cipher), chain),
            );
            chain = cipher;
        }
    }
    Ok(())
}

const SHA1_K: [u32; 4] = [0x5a82_7999, 0x6ed9_eba1, 0x8f1b_bcdc, 0xca62_c1d6];

/// One SHA-1 compression with the SHA-1 instructions: 20 groups of four rounds, the message
/// schedule computed four words at a time.
#[target_feature(enable = "sha2")]
fn sha1_compress(state: &mut [u32; 5], block: &[u8; 64]) {
    // SAFETY: `state` holds at least 4 readable words and `block` 64 readable bytes.
    let (mut abcd, mut w) = unsafe {
        (
            vld1q_u32(state.as_ptr()),
            [0, 16, 32, 48]
                .map(|at| vreinterpretq_u32_u8(vrev32q_u8(vld1q_u8(block[at..].as_ptr())))),
        )
    };
    let (abcd_in, e_in) = (abcd, state[4]);
    let mut e = e_in;
    for group in 0..20 {
        let wk: uint32x4_t = vaddq_u32(w[group % 4], vdupq_n_u32(SHA1_K[group / 5]));
        let next_e = vsha1h_u32(vgetq_lane_u32::<0>(abcd));
        abcd = match group / 5 {
            0 => vsha1cq_u32(abcd, e, wk),
            2 => vsha1mq_u32(abcd, e, wk),
            _ => vsha1pq_u32(abcd, e, wk),
        };
        e = next_e;
        if group < 16 {
            let partial = vsha1su0q_u32(w[group % 4], w[(group + 1) % 4], w[(group + 2) % 4]);
            w[group % 4] = vsha1su1q_u32(partial, w[(group + 3) % 4]);
        }
    }
    // SAFETY: `state` holds at least 4 writable words.
    unsafe { vst1q_u32(state.as_mut_ptr(), vaddq_u32(abcd, abcd_in)) };
    state[4] = e_in.wrapping_add(e);
}

/// [`sha1_compress`] behind the plain function type HMAC framing takes. Only handed out by
/// `ArmCrypto` after it checked the SHA-1 instructions exist (hence not public beyond
/// `accel`).
pub(super) fn sha1_compress_checked(state: &mut [u32; 5], block: &[u8; 64]) {
    // SAFETY: this function is only used by `ArmCrypto::hmac_sha1` when `features.sha1()` is
    // set, which only a `CpuFeatures::detect` on a core with the instructions can make so.
    unsafe { sha1_compress(state, block) }
}
