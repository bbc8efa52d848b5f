//! The NIC's engines (crypto, pattern matching, fetch-and-add) behind traits.
//!
//! A service calls engines only through [`Engines`]; the NIC firmware hands it hardware-backed
//! implementations and the host hands it software ones, so the service code is the same.

use core::sync::atomic::AtomicU64;

/// Why an engine call failed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum EngineError {
    /// The buffer length does not suit the operation (for example not a multiple of the block).
    BadLength,
}

/// Symmetric crypto: AES-128-CBC and HMAC-SHA1.
pub trait CryptoEngine: Sync {
    /// Encrypts `buf` in place; its length must be a multiple of 16.
    fn aes128_cbc_encrypt(
        &self,
        key: &[u8; 16],
        iv: &[u8; 16],
        buf: &mut [u8],
    ) -> Result<(), EngineError>;
    /// Decrypts `buf` in place; its length must be a multiple of 16.
    fn aes128_cbc_decrypt(
        &self,
        key: &[u8; 16],
        iv: &[u8; 16],
        buf: &mut [u8],
    ) -> Result<(), EngineError>;
    /// HMAC-SHA1 of the concatenation of `message` parts under `key`.
    fn hmac_sha1(&self, key: &[u8], message: &[&[u8]]) -> [u8; 20];
}

/// One match found by a [`PatternEngine`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PatternMatch {
    /// Index of the pattern in the set it was compiled from.
    pub pattern: u32,
    /// Offset one past the last byte of the match in the haystack.
    pub end: usize,
}

/// Multi-pattern matching over a pattern set compiled at deploy time.
pub trait PatternEngine: Sync {
    /// Calls `on_match` for every match of `set` in `haystack`, in order of end offset;
    /// stops early when `on_match` returns `false`.
    fn scan(
        &self,
        set: &crate::engines::PatternSet,
        haystack: &[u8],
        on_match: &mut dyn FnMut(PatternMatch) -> bool,
    );
}

/// A compiled multi-pattern automaton (filled by the engines work).
pub struct PatternSet {
    _private: (),
}

/// Atomic fetch-and-add units.
pub trait FetchAddEngine: Sync {
    /// Adds `delta` to `cell`, returns the previous value.
    fn fetch_add(&self, cell: &AtomicU64, delta: u64) -> u64;
}

/// The engines a node offers to its services.
pub trait Engines: Sync {
    /// Symmetric crypto.
    fn crypto(&self) -> &dyn CryptoEngine;
    /// Multi-pattern matching.
    fn pattern(&self) -> &dyn PatternEngine;
    /// Fetch-and-add counters.
    fn atomics(&self) -> &dyn FetchAddEngine;
}
