//! The NIC's engines (crypto, pattern matching, fetch-and-add) behind traits.
//!
//! A service calls engines only through [`Engines`]; the NIC firmware hands it hardware-backed
//! implementations (`nic-firmware/src/accel/`) and the host hands it [`SoftwareEngines`], so the
//! service code is the same. [`kat`] holds the published known-answer vectors every
//! implementation must reproduce.

use alloc::boxed::Box;
use alloc::vec::Vec;
use core::fmt;
use core::sync::atomic::AtomicU64;

use aho_corasick::{AhoCorasick, AhoCorasickKind, MatchKind};

pub mod kat;
mod software;

pub use software::SoftwareEngines;

/// Why an engine call failed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum EngineError {
    /// The buffer length does not suit the operation (for example not a multiple of the block).
    BadLength,
}

impl fmt::Display for EngineError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            EngineError::BadLength => "buffer length does not suit the operation",
        })
    }
}

/// AES block size in bytes.
pub const AES_BLOCK: usize = 16;
/// HMAC-SHA1 output size in bytes.
pub const SHA1_DIGEST: usize = 20;

/// Symmetric crypto: AES-128-CBC and HMAC-SHA1.
pub trait CryptoEngine: Sync {
    /// Encrypts `buf` in place; its length must be a multiple of 16 (no padding is added).
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
    /// HMAC-SHA1 of the concatenation of the `message` parts under `key` (any key length).
    fn hmac_sha1(&self, key: &[u8], message: &[&[u8]]) -> [u8; SHA1_DIGEST];
}

/// One match found by a [`PatternEngine`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct PatternMatch {
    /// Index of the pattern in the set it was compiled from.
    pub pattern: u32,
    /// Offset one past the last byte of the match in the haystack.
    pub end: usize,
}

/// Multi-pattern matching over a pattern set compiled at deploy time.
pub trait PatternEngine: Sync {
    /// Calls `on_match` for every occurrence of every pattern of `set` in `haystack`,
    /// overlapping ones included (Aho-Corasick semantics), in order of end offset (ties in
    /// any order); stops early when `on_match` returns `false`.
    fn scan(
        &self,
        set: &PatternSet,
        haystack: &[u8],
        on_match: &mut dyn FnMut(PatternMatch) -> bool,
    );
}

/// Why a pattern set could not be compiled.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum PatternError {
    /// More patterns than a match can name (`u32`), or an empty pattern.
    BadPattern,
    /// The automaton would exceed the engine's limits.
    TooLarge,
}

impl fmt::Display for PatternError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            PatternError::BadPattern => "empty pattern or too many patterns",
            PatternError::TooLarge => "pattern automaton too large",
        })
    }
}

/// A multi-pattern set compiled at deploy time (never on the request path).
///
/// It keeps the patterns themselves, so that an engine with its own automaton format (a
/// hardware DFA unit) can compile them its way, and a deterministic Aho-Corasick automaton
/// that software and CPU-only engines scan with.
pub struct PatternSet {
    patterns: Vec<Box<[u8]>>,
    automaton: AhoCorasick,
}

impl PatternSet {
    /// Compiles `patterns` (each non-empty); pattern `i` is reported as `PatternMatch::pattern == i`.
    pub fn new<I, P>(patterns: I) -> Result<Self, PatternError>
    where
        I: IntoIterator<Item = P>,
        P: AsRef<[u8]>,
    {
        let patterns: Vec<Box<[u8]>> = patterns.into_iter().map(|p| p.as_ref().into()).collect();
        if patterns.iter().any(|p| p.is_empty()) || u32::try_from(patterns.len()).is_err() {
            return Err(PatternError::BadPattern);
        }
        let automaton = AhoCorasick::builder()
            .kind(Some(AhoCorasickKind::DFA))
            .match_kind(MatchKind::Standard)
            .build(&patterns)
            .map_err(|_| PatternError::TooLarge)?;
        Ok(Self {
            patterns,
            automaton,
        })
    }

    /// Heap bytes compiling `patterns` takes, at most: the patterns; the automaton, a row of
    /// 4-byte transitions per trie state (one per distinct pattern prefix) over the byte
    /// classes the patterns' bytes split the alphabet into (rows padded to a power of two);
    /// the NFA it is built from (about 64 bytes a state); and 32 KiB for the prefilters and
    /// the builder's fixed tables.
    pub fn footprint<P: AsRef<[u8]>>(patterns: &[P]) -> usize {
        let mut sorted: Vec<&[u8]> = patterns.iter().map(AsRef::as_ref).collect();
        sorted.sort_unstable();
        let mut states = 2;
        let mut used = [false; 256];
        let mut previous: &[u8] = &[];
        for pattern in &sorted {
            let shared = pattern
                .iter()
                .zip(previous)
                .take_while(|(a, b)| a == b)
                .count();
            states += pattern.len() - shared;
            previous = pattern;
            for &byte in pattern.iter() {
                used[usize::from(byte)] = true;
            }
        }
        let distinct = used.iter().filter(|&&u| u).count();
        // Each distinct byte splits at most one range of unused bytes in two; one more class
        // stands for the end of input.
        let classes = (2 * distinct + 1).min(256) + 1;
        let bytes: usize = sorted.iter().map(|p| p.len()).sum();
        let patterns = bytes + sorted.len() * (16 + 16);
        (32 << 10) + patterns + states * (classes.next_power_of_two() * size_of::<u32>() + 64)
    }

    /// Number of patterns.
    pub fn len(&self) -> usize {
        self.patterns.len()
    }

    /// Whether the set has no pattern.
    pub fn is_empty(&self) -> bool {
        self.patterns.is_empty()
    }

    /// Pattern `index`, as compiled.
    pub fn pattern(&self, index: u32) -> Option<&[u8]> {
        self.patterns.get(index as usize).map(|p| &p[..])
    }

    /// The compiled automaton, for engines that scan on the CPU.
    pub fn automaton(&self) -> &AhoCorasick {
        &self.automaton
    }
}

impl fmt::Debug for PatternSet {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PatternSet")
            .field("patterns", &self.patterns.len())
            .finish_non_exhaustive()
    }
}

/// Atomic fetch-and-add units.
pub trait FetchAddEngine: Sync {
    /// Adds `delta` to `cell` (wrapping), returns the previous value.
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
