//! Known-answer checks every engine implementation must pass: the published vectors of
//! FIPS-197 (appendix C.1) and NIST SP 800-38A (F.2.1, F.2.2) for AES-128-CBC, RFC 2202 for
//! HMAC-SHA1, and brute-force references for pattern matching and fetch-and-add.
//!
//! These are plain functions (not `#[test]`s) so that the NIC firmware can run them at boot on
//! its own engines and report the first failure.

use alloc::vec::Vec;
use core::fmt;
use core::sync::atomic::AtomicU64;

use super::{CryptoEngine, FetchAddEngine, PatternEngine, PatternMatch, PatternSet};

/// Which known-answer check failed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum KatFailure {
    /// FIPS-197 appendix C.1, single-block AES-128 (CBC with a zero IV).
    Fips197,
    /// SP 800-38A F.2.1 (encrypt) or F.2.2 (decrypt), CBC-AES128.
    Sp80038aCbc,
    /// RFC 2202 HMAC-SHA1 test case `n` (1-based); message split at every byte when `split`.
    Rfc2202 {
        /// Test case number.
        case: u8,
        /// Whether the message was passed in parts.
        split: bool,
    },
    /// The engine accepted a buffer that is not a whole number of blocks.
    PartialBlockAccepted,
    /// Pattern scan differs from the brute-force reference on haystack `n`.
    Pattern(u8),
    /// Fetch-and-add returned a wrong previous value or left a wrong sum.
    FetchAdd,
}

impl fmt::Display for KatFailure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            KatFailure::Fips197 => f.write_str("AES-128 differs from FIPS-197 C.1"),
            KatFailure::Sp80038aCbc => f.write_str("AES-128-CBC differs from SP 800-38A F.2"),
            KatFailure::Rfc2202 { case, split } => write!(
                f,
                "HMAC-SHA1 differs from RFC 2202 case {case}{}",
                if *split { " (message in parts)" } else { "" }
            ),
            KatFailure::PartialBlockAccepted => f.write_str("CBC accepted a partial block"),
            KatFailure::Pattern(n) => write!(f, "pattern scan differs on haystack {n}"),
            KatFailure::FetchAdd => f.write_str("fetch-and-add gave a wrong result"),
        }
    }
}

/// Decodes a hexadecimal string of exactly `2 * N` digits at compile time.
const fn hex<const N: usize>(digits: &str) -> [u8; N] {
    const fn nibble(c: u8) -> u8 {
        match c {
            b'0'..=b'9' => c - b'0',
            b'a'..=b'f' => c - b'a' + 10,
            b'A'..=b'F' => c - b'A' + 10,
            _ => panic!("not a hex digit"),
        }
    }
    let bytes = digits.as_bytes();
    assert!(bytes.len() == 2 * N, "wrong number of hex digits");
    let mut out = [0u8; N];
    let mut i = 0;
    while i < N {
        out[i] = (nibble(bytes[2 * i]) << 4) | nibble(bytes[2 * i + 1]);
        i += 1;
    }
    out
}

const FIPS197_KEY: [u8; 16] = hex("000102030405060708090a0b0c0d0e0f");
const FIPS197_PLAIN: [u8; 16] = hex("00112233445566778899aabbccddeeff");
const FIPS197_CIPHER: [u8; 16] = hex("69c4e0d86a7b0430d8cdb78070b4c55a");

const SP800_38A_KEY: [u8; 16] = hex("2b7e151628aed2a6abf7158809cf4f3c");
const SP800_38A_IV: [u8; 16] = hex("000102030405060708090a0b0c0d0e0f");
const SP800_38A_PLAIN: [u8; 64] = hex(concat!(
    "6bc1bee22e409f96e93d7e117393172a",
    "ae2d8a571e03ac9c9eb76fac45af8e51",
    "30c81c46a35ce411e5fbc1191a0a52ef",
    "f69f2445df4f9b17ad2b417be66c3710"
));
const SP800_38A_CIPHER: [u8; 64] = hex(concat!(
    "7649abac8119b246cee98e9b12e9197d",
    "5086cb9b507219ee95db113a917678b2",
    "73bed6b8e3c1743b7116e69e22229516",
    "3ff1caa1681fac09120eca307586e1a7"
));

/// One RFC 2202 HMAC-SHA1 case: key, data, digest.
struct HmacCase {
    key: &'static [u8],
    data: &'static [u8],
    digest: [u8; 20],
}

const RFC2202_KEY4: [u8; 25] = hex("0102030405060708090a0b0c0d0e0f10111213141516171819");

const RFC2202: [HmacCase; 7] = [
    HmacCase {
        key: &[0x0b; 20],
        data: b"Hi There",
        digest: hex("b617318655057264e28bc0b6fb378c8ef146be00"),
    },
    HmacCase {
        key: b"Jefe",
        data: b"what do ya want for nothing?",
        digest: hex("effcdf6ae5eb2fa2d27416d5f184df9c259a7c79"),
    },
    HmacCase {
        key: &[0xaa; 20],
        data: &[0xdd; 50],
        digest: hex("125d7342b9ac11cd91a39af48aa17b4f63f175d3"),
    },
    HmacCase {
        key: &RFC2202_KEY4,
        data: &[0xcd; 50],
        digest: hex("4c9007f4026250c6bc8414f9bf50c86c2d7235da"),
    },
    HmacCase {
        key: &[0x0c; 20],
        data: b"Test With Truncation",
        digest: hex("4c1a03424b55e07fe7f27be1d58bb9324a9a5a04"),
    },
    HmacCase {
        key: &[0xaa; 80],
        data: b"Test Using Larger Than Block-Size Key - Hash Key First",
        digest: hex("aa4ae5e15272d00e95705637ce8a3b55ed402112"),
    },
    HmacCase {
        key: &[0xaa; 80],
        data: b"Test Using Larger Than Block-Size Key and Larger Than One Block-Size Data",
        digest: hex("e8e99d0f45237d786d6bbaa7965c7808bbff1a91"),
    },
];

/// Runs every crypto vector against `engine`; stops at the first failure.
pub fn check_crypto(engine: &dyn CryptoEngine) -> Result<(), KatFailure> {
    let mut block = FIPS197_PLAIN;
    engine
        .aes128_cbc_encrypt(&FIPS197_KEY, &[0; 16], &mut block)
        .map_err(|_| KatFailure::Fips197)?;
    if block != FIPS197_CIPHER {
        return Err(KatFailure::Fips197);
    }
    engine
        .aes128_cbc_decrypt(&FIPS197_KEY, &[0; 16], &mut block)
        .map_err(|_| KatFailure::Fips197)?;
    if block != FIPS197_PLAIN {
        return Err(KatFailure::Fips197);
    }

    let mut buf = SP800_38A_PLAIN;
    engine
        .aes128_cbc_encrypt(&SP800_38A_KEY, &SP800_38A_IV, &mut buf)
        .map_err(|_| KatFailure::Sp80038aCbc)?;
    if buf != SP800_38A_CIPHER {
        return Err(KatFailure::Sp80038aCbc);
    }
    engine
        .aes128_cbc_decrypt(&SP800_38A_KEY, &SP800_38A_IV, &mut buf)
        .map_err(|_| KatFailure::Sp80038aCbc)?;
    if buf != SP800_38A_PLAIN {
        return Err(KatFailure::Sp80038aCbc);
    }
    let mut partial = [0u8; 20];
    if engine
        .aes128_cbc_encrypt(&SP800_38A_KEY, &SP800_38A_IV, &mut partial)
        .is_ok()
    {
        return Err(KatFailure::PartialBlockAccepted);
    }

    for (number, case) in (1u8..).zip(RFC2202.iter()) {
        if engine.hmac_sha1(case.key, &[case.data]) != case.digest {
            return Err(KatFailure::Rfc2202 {
                case: number,
                split: false,
            });
        }
        let mut parts: Vec<&[u8]> = case.data.chunks(1).collect();
        parts.insert(1, &[]);
        if engine.hmac_sha1(case.key, &parts) != case.digest {
            return Err(KatFailure::Rfc2202 {
                case: number,
                split: true,
            });
        }
    }
    Ok(())
}

/// Every occurrence of every pattern in `haystack`, overlapping ones included, sorted by end
/// offset then pattern: the brute-force reference for [`PatternEngine::scan`].
pub fn naive_scan(patterns: &[&[u8]], haystack: &[u8]) -> Vec<PatternMatch> {
    let mut found = Vec::new();
    for end in 1..=haystack.len() {
        for (index, pattern) in (0u32..).zip(patterns) {
            if !pattern.is_empty() && haystack[..end].ends_with(pattern) {
                found.push(PatternMatch {
                    pattern: index,
                    end,
                });
            }
        }
    }
    found
}

/// Everything `engine` reports for `set` on `haystack`, sorted like [`naive_scan`].
pub fn collect_scan(
    engine: &dyn PatternEngine,
    set: &PatternSet,
    haystack: &[u8],
) -> Vec<PatternMatch> {
    let mut found = Vec::new();
    engine.scan(set, haystack, &mut |m| {
        found.push(m);
        true
    });
    found.sort_unstable_by_key(|m| (m.end, m.pattern));
    found
}

/// Checks `engine` against the brute-force reference on fixed pattern sets and haystacks.
pub fn check_pattern(engine: &dyn PatternEngine) -> Result<(), KatFailure> {
    let patterns: [&[u8]; 6] = [b"he", b"she", b"his", b"hers", b"\x00\xff", b"aaa"];
    let Ok(set) = PatternSet::new(patterns) else {
        return Err(KatFailure::Pattern(0));
    };
    let haystacks: [&[u8]; 4] = [
        b"ushers",
        b"",
        b"this shell hides his hershey bars; aaaaa",
        b"\x00\xff\x00\xff\xffhe",
    ];
    for (number, haystack) in (1u8..).zip(haystacks) {
        if collect_scan(engine, &set, haystack) != naive_scan(&patterns, haystack) {
            return Err(KatFailure::Pattern(number));
        }
    }
    Ok(())
}

/// Checks `engine`'s fetch-and-add: previous values, wrap-around and the final sum.
pub fn check_atomics(engine: &dyn FetchAddEngine) -> Result<(), KatFailure> {
    let cell = AtomicU64::new(40);
    let ok = engine.fetch_add(&cell, 2) == 40
        && engine.fetch_add(&cell, u64::MAX) == 42
        && engine.fetch_add(&cell, 0) == 41
        && cell.into_inner() == 41;
    if ok {
        Ok(())
    } else {
        Err(KatFailure::FetchAdd)
    }
}
