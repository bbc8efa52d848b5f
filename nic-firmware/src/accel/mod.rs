//! Engine implementations for the NIC's ARMv8 cores, behind the `microservices` engine traits.
//!
//! - crypto: AES-128-CBC on the ARMv8 Cryptographic Extension (`AESE`/`AESMC`,
//!   `AESD`/`AESIMC`) and HMAC-SHA1 on its SHA-1 instructions (`SHA1C`/`SHA1P`/`SHA1M`,
//!   `SHA1SU0`/`SHA1SU1`) ([`armv8`], [`hmac`]);
//! - fetch-and-add: the LSE `LDADD` instruction ([`atomics`]);
//! - pattern matching: the Aho-Corasick DFA scanned on the core (ARMv8 cores have no
//!   pattern-matching unit), i.e. the software engine.
//!
//! Each engine checks the CPU at start-up ([`CpuFeatures`], from `ID_AA64ISAR0_EL1`) and falls
//! back to [`SoftwareEngines`] when its instructions are absent, so one firmware image runs on
//! every ARMv8-A core. A [`CpuFeatures`] with an extension on can only come from
//! [`CpuFeatures::detect`] (`unsafe`: its caller vouches that the cores have what the register
//! says), so the safe constructors here cannot enable an instruction the core lacks.
//!
//! Why not RustCrypto's own ARMv8 back-ends: the `aes` and `sha1` crates pick them with
//! `cpufeatures`, which on `aarch64-unknown-none` has no OS to ask and reports "absent" unless
//! the whole image is compiled with `-C target-feature=+aes,+sha2`; such an image then faults on
//! a core without the extension. Reading the ID register ourselves (the firmware runs at EL1)
//! keeps one image and run-time selection. The software fallback is RustCrypto.
//!
//! [`tested_engines`] is what a board calls at boot: it runs the published known-answer vectors
//! (FIPS-197, SP 800-38A, RFC 2202, and reference checks of fetch-and-add and pattern matching)
//! on each hardware engine the core offers, and returns engines in which every engine that
//! failed runs in software instead, with a [`SelfTest`] report naming them. [`self_test`] runs
//! the same vectors on any set of engines.

mod atomics;
mod features;
pub mod hmac;
mod self_test;

#[cfg(target_arch = "aarch64")]
mod armv8;

use microservices::engines::{
    CryptoEngine, EngineError, Engines, FetchAddEngine, PatternEngine, SoftwareEngines, SHA1_DIGEST,
};

pub use atomics::LseAtomics;
pub use features::{CpuFeatures, HardwareEngine};
pub use self_test::{self_test, tested_engines, SelfTest};

/// Symmetric crypto on the ARMv8 Cryptographic Extension where the core has it.
#[derive(Clone, Copy, Debug)]
pub struct ArmCrypto {
    #[cfg_attr(not(target_arch = "aarch64"), allow(dead_code))]
    features: CpuFeatures,
}

impl ArmCrypto {
    /// Crypto using whichever of the AES and SHA-1 instructions `features` reports.
    pub const fn new(features: CpuFeatures) -> Self {
        Self { features }
    }
}

impl CryptoEngine for ArmCrypto {
    fn aes128_cbc_encrypt(
        &self,
        key: &[u8; 16],
        iv: &[u8; 16],
        buf: &mut [u8],
    ) -> Result<(), EngineError> {
        #[cfg(target_arch = "aarch64")]
        if self.features.aes() {
            // SAFETY: `features.aes()` says the core implements the AES instructions (only
            // `CpuFeatures::detect` makes it so).
            return unsafe { armv8::cbc_encrypt(key, iv, buf) };
        }
        SoftwareEngines.aes128_cbc_encrypt(key, iv, buf)
    }

    fn aes128_cbc_decrypt(
        &self,
        key: &[u8; 16],
        iv: &[u8; 16],
        buf: &mut [u8],
    ) -> Result<(), EngineError> {
        #[cfg(target_arch = "aarch64")]
        if self.features.aes() {
            // SAFETY: `features.aes()` says the core implements the AES instructions (only
            // `CpuFeatures::detect` makes it so).
            return unsafe { armv8::cbc_decrypt(key, iv, buf) };
        }
        SoftwareEngines.aes128_cbc_decrypt(key, iv, buf)
    }

    fn hmac_sha1(&self, key: &[u8], message: &[&[u8]]) -> [u8; SHA1_DIGEST] {
        #[cfg(target_arch = "aarch64")]
        if self.features.sha1() {
            return hmac::hmac_sha1(armv8::sha1_compress_checked, key, message);
        }
        SoftwareEngines.hmac_sha1(key, message)
    }
}

/// The engines of a NIC with ARMv8 cores.
#[derive(Clone, Copy, Debug)]
pub struct NicEngines {
    features: CpuFeatures,
    crypto: ArmCrypto,
    atomics: LseAtomics,
}

impl NicEngines {
    /// Engines for a core with `features` (use [`tested_engines`] on the board, which also
    /// turns off engines that fail their known answers; on the host, [`CpuFeatures::NONE`]
    /// gives the software engines).
    pub const fn new(features: CpuFeatures) -> Self {
        Self {
            features,
            crypto: ArmCrypto::new(features),
            atomics: LseAtomics::new(features),
        }
    }

    /// What the engines were built for.
    pub const fn features(&self) -> CpuFeatures {
        self.features
    }
}

impl Engines for NicEngines {
    fn crypto(&self) -> &dyn CryptoEngine {
        &self.crypto
    }

    fn pattern(&self) -> &dyn PatternEngine {
        &SoftwareEngines::SHARED
    }

    fn atomics(&self) -> &dyn FetchAddEngine {
        &self.atomics
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn engines_without_extensions_pass_the_known_answers() {
        assert_eq!(self_test(&NicEngines::new(CpuFeatures::NONE)), Ok(()));
    }
}
