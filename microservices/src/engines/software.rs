//! Software engines: RustCrypto's AES/CBC/HMAC-SHA1, the Aho-Corasick automaton scanned on
//! the CPU, and the CPU's own atomics. What the host gives its services, and the fallback on
//! a NIC without the matching unit.

use core::sync::atomic::{AtomicU64, Ordering};

use aes::cipher::{Array, BlockModeDecrypt, BlockModeEncrypt, KeyIvInit};
use aho_corasick::Input;
use hmac::{KeyInit, Mac};

use super::{
    CryptoEngine, EngineError, Engines, FetchAddEngine, PatternEngine, PatternMatch, PatternSet,
    AES_BLOCK, SHA1_DIGEST,
};

type Aes128CbcEnc = cbc::Encryptor<aes::Aes128>;
type Aes128CbcDec = cbc::Decryptor<aes::Aes128>;
type HmacSha1 = hmac::Hmac<sha1::Sha1>;

/// Every engine in software. Stateless: one value serves any number of cores.
#[derive(Clone, Copy, Debug, Default)]
pub struct SoftwareEngines;

impl SoftwareEngines {
    /// A shared instance.
    pub const SHARED: SoftwareEngines = SoftwareEngines;
}

fn blocks_of(buf: &mut [u8]) -> Result<&mut [Array<u8, aes::cipher::consts::U16>], EngineError> {
    if !buf.len().is_multiple_of(AES_BLOCK) {
        return Err(EngineError::BadLength);
    }
    let (blocks, rest) = Array::slice_as_chunks_mut(buf);
    debug_assert!(rest.is_empty());
    Ok(blocks)
}

impl CryptoEngine for SoftwareEngines {
    fn aes128_cbc_encrypt(
        &self,
        key: &[u8; 16],
        iv: &[u8; 16],
        buf: &mut [u8],
    ) -> Result<(), EngineError> {
        let blocks = blocks_of(buf)?;
        Aes128CbcEnc::new(key.into(), iv.into()).encrypt_blocks(blocks);
        Ok(())
    }

    fn aes128_cbc_decrypt(
        &self,
        key: &[u8; 16],
        iv: &[u8; 16],
        buf: &mut [u8],
    ) -> Result<(), EngineError> {
        let blocks = blocks_of(buf)?;
        Aes128CbcDec::new(key.into(), iv.into()).decrypt_blocks(blocks);
        Ok(())
    }

    fn hmac_sha1(&self, key: &[u8], message: &[&[u8]]) -> [u8; SHA1_DIGEST] {
        // HMAC accepts keys of every length (longer ones are hashed first), so this cannot fail.
        let mut mac = match HmacSha1::new_from_slice(key) {
            Ok(mac) => mac,
            Err(_) => unreachable!("HMAC takes keys of any length"),
        };
        for part in message {
            mac.update(part);
        }
        mac.finalize().into_bytes().into()
    }
}

impl PatternEngine for SoftwareEngines {
    fn scan(
        &self,
        set: &PatternSet,
        haystack: &[u8],
        on_match: &mut dyn FnMut(PatternMatch) -> bool,
    ) {
        for found in set.automaton().find_overlapping_iter(Input::new(haystack)) {
            let hit = PatternMatch {
                pattern: found.pattern().as_u32(),
                end: found.end(),
            };
            if !on_match(hit) {
                return;
            }
        }
    }
}

impl FetchAddEngine for SoftwareEngines {
    fn fetch_add(&self, cell: &AtomicU64, delta: u64) -> u64 {
        cell.fetch_add(delta, Ordering::Relaxed)
    }
}

impl Engines for SoftwareEngines {
    fn crypto(&self) -> &dyn CryptoEngine {
        self
    }

    fn pattern(&self) -> &dyn PatternEngine {
        self
    }

    fn atomics(&self) -> &dyn FetchAddEngine {
        self
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engines::kat;

    #[test]
    fn software_crypto_passes_the_published_vectors() {
        assert_eq!(kat::check_crypto(&SoftwareEngines), Ok(()));
    }

    #[test]
    fn software_atomics_and_patterns_pass_their_checks() {
        assert_eq!(kat::check_atomics(&SoftwareEngines), Ok(()));
        assert_eq!(kat::check_pattern(&SoftwareEngines), Ok(()));
    }

    #[test]
    fn cbc_rejects_partial_blocks() {
        let mut buf = [0u8; 17];
        assert_eq!(
            SoftwareEngines.aes128_cbc_encrypt(&[0; 16], &[0; 16], &mut buf),
            Err(EngineError::BadLength)
        );
        assert_eq!(
            SoftwareEngines.aes128_cbc_decrypt(&[0; 16], &[0; 16], &mut buf),
            Err(EngineError::BadLength)
        );
    }
}
