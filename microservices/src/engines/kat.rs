//! Known-answer checks every engine implementation must pass: the published vectors of
//! FIPS-197 (appendix C.1), NIST SP 800-38A (F.2.1, F.2.2) and RFC 3602 (section 4, cases 1 to
//! 4) for AES-128-CBC, RFC 2202 for HMAC-SHA1, and brute-force references for pattern matching
//! and fetch-and-add.
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
    /// RFC 3602 AES-CBC test case `n` (1-based), encryption or decryption.
    Rfc3602(u8),
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
            KatFailure::Rfc3602(case) => write!(f, "AES-128-CBC differs from RFC 3602 case {case}"),
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

/// One RFC 3602 AES-128-CBC case: key, IV, plaintext, ciphertext.
struct CbcCase {
    key: [u8; 16],
    iv: [u8; 16],
    plain: &'static [u8],
    cipher: &'static [u8],
}

const RFC3602_CIPHER2: [u8; 32] = hex(concat!(
    "d296cd94c2cccf8a3a863028b5e1dc0a",
    "7586602d253cfff91b8266bea6d61ab1"
));
const RFC3602_PLAIN2: [u8; 32] = hex(concat!(
    "000102030405060708090a0b0c0d0e0f",
    "101112131415161718191a1b1c1d1e1f"
));
const RFC3602_CIPHER3: [u8; 48] = hex(concat!(
    "d0a02b3836451753d493665d33f0e886",
    "2dea54cdb293abc7506939276772f8d5",
    "021c19216bad525c8579695d83ba2684"
));
const RFC3602_PLAIN4: [u8; 64] = hex(concat!(
    "a0a1a2a3a4a5a6a7a8a9aaabacadaeaf",
    "b0b1b2b3b4b5b6b7b8b9babbbcbdbebf",
    "c0c1c2c3c4c5c6c7c8c9cacbcccdcecf",
    "d0d1d2d3d4d5d6d7d8d9dadbdcdddedf"
));
const RFC3602_CIPHER4: [u8; 64] = hex(concat!(
    "c30e32ffedc0774e6aff6af0869f71aa",
    "0f3af07a9a31a9c684db207eb0ef8e4e",
    "35907aa632c3ffdf868bb7b29d3d46ad",
    "83ce9f9a102ee99d49a53e87f4c3da55"
));

/// RFC 3602 section 4, cases 1 to 4 (AES-128-CBC without ESP framing).
const RFC3602: [CbcCase; 4] = [
    CbcCase {
        key: hex("06a9214036b8a15b512e03d534120006"),
        iv: hex("3dafba429d9eb430b422da802c9fac41"),
        plain: b"Single block msg",
        cipher: &hex::<16>("e353779c1079aeb82708942dbe77181a"),
    },
    CbcCase {
        key: hex("c286696d887c9aa0611bbb3e2025a45a"),
        iv: hex("562e17996d093d28ddb3ba695a2e6f58"),
        plain: &RFC3602_PLAIN2,
        cipher: &RFC3602_CIPHER2,
    },
    CbcCase {
        key: hex("6c3ea0477630ce21a2ce334aa746c2cd"),
        iv: hex("c782dc4c098c66cbd9cd27d825682c81"),
        plain: b"This is a 48-byte message (exactly 3 AES blocks)",
        cipher: &RFC3602_CIPHER3,
    },
    CbcCase {
        key: hex("56e47a38c5598974bc46903dba290349"),
        iv: hex("8ce82eefbea0da3c44699ed7db51b7d9"),
        plain: &RFC3602_PLAIN4,
        cipher: &RFC3602_CIPHER4,
    },
];

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
    for (number, case) in (1u8..).zip(RFC3602.iter()) {
        let mut buf = [0u8; 64];
        let buf = &mut buf[..case.plain.len()];
        buf.copy_from_slice(case.plain);
        engine
            .aes128_cbc_encrypt(&case.key, &case.iv, buf)
            .map_err(|_| KatFailure::Rfc3602(number))?;
        if *buf != *case.cipher {
            return Err(KatFailure::Rfc3602(number));
        }
        engine
            .aes128_cbc_decrypt(&case.key, &case.iv, buf)
            .map_err(|_| KatFailure::Rfc3602(number))?;
        if *buf != *case.plain {
            return Err(KatFailure::Rfc3602(number));
        }
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
