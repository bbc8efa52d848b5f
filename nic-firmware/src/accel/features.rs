//! Which ARMv8 extensions the core offers, from the `ID_AA64ISAR0_EL1` register.

/// A hardware engine the features select: its instructions are used when the core has them
/// and the boot self-test passed them, and software takes its place otherwise.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum HardwareEngine {
    /// AES-128 on `AESE`/`AESMC`/`AESD`/`AESIMC`.
    Aes,
    /// SHA-1 compression on `SHA1C`/`SHA1P`/`SHA1M`/`SHA1H`/`SHA1SU0`/`SHA1SU1`.
    Sha1,
    /// Fetch-and-add on the LSE `LDADD`.
    Lse,
}

impl HardwareEngine {
    /// Every hardware engine.
    pub const ALL: [HardwareEngine; 3] = [
        HardwareEngine::Aes,
        HardwareEngine::Sha1,
        HardwareEngine::Lse,
    ];

    /// Its name in messages.
    pub const fn name(self) -> &'static str {
        match self {
            HardwareEngine::Aes => "AES",
            HardwareEngine::Sha1 => "SHA-1",
            HardwareEngine::Lse => "LSE",
        }
    }
}

/// The extensions the engines use, as the core reports them.
///
/// A value says which instructions the engines may execute, so safe code cannot make one up:
/// the only ways to get one are [`CpuFeatures::detect`] (`unsafe`: the caller vouches for the
/// core), [`CpuFeatures::NONE`], and narrowing one of those ([`CpuFeatures::without`],
/// [`CpuFeatures::only`]), which only ever turns instructions off.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub struct CpuFeatures {
    aes: bool,
    sha1: bool,
    lse: bool,
}

impl CpuFeatures {
    /// No extension: every engine in software.
    pub const NONE: CpuFeatures = CpuFeatures {
        aes: false,
        sha1: false,
        lse: false,
    };

    /// Decodes a value of `ID_AA64ISAR0_EL1`. Not public: a made-up register value would
    /// enable instructions the core may lack.
    #[cfg_attr(not(target_arch = "aarch64"), allow(dead_code))]
    pub(super) const fn from_isar0(isar0: u64) -> Self {
        Self {
            aes: (isar0 >> 4) & 0xf >= 1,
            sha1: (isar0 >> 8) & 0xf >= 1,
            lse: (isar0 >> 20) & 0xf >= 2,
        }
    }

    /// Reads this core's features.
    ///
    /// # Safety
    /// Must run at EL1 or above (or under an OS that emulates ID register reads at EL0, as
    /// Linux does); at bare EL0 the read is an undefined instruction. The value describes the
    /// calling core: every core that runs engines built from it must implement at least the
    /// same extensions (the cores of one SoC are of one kind; a big.LITTLE part would need the
    /// intersection of its clusters').
    #[cfg(target_arch = "aarch64")]
    pub unsafe fn detect() -> Self {
        let isar0: u64;
        // SAFETY: reading an ID register has no side effect; the caller guarantees the
        // exception level allows it.
        unsafe {
            core::arch::asm!(
                "mrs {}, ID_AA64ISAR0_EL1",
                out(reg) isar0,
                options(nomem, nostack, preserves_flags)
            );
        }
        Self::from_isar0(isar0)
    }

    /// Reads this core's features: none on a core that is not aarch64.
    ///
    /// # Safety
    /// Always safe here; `unsafe` to match the aarch64 signature.
    #[cfg(not(target_arch = "aarch64"))]
    pub unsafe fn detect() -> Self {
        Self::NONE
    }

    /// Whether `engine`'s instructions are enabled.
    pub const fn has(self, engine: HardwareEngine) -> bool {
        match engine {
            HardwareEngine::Aes => self.aes,
            HardwareEngine::Sha1 => self.sha1,
            HardwareEngine::Lse => self.lse,
        }
    }

    /// The AES instructions (`ID_AA64ISAR0_EL1.AES >= 1`).
    pub const fn aes(self) -> bool {
        self.aes
    }

    /// The SHA-1 instructions (`ID_AA64ISAR0_EL1.SHA1 >= 1`).
    pub const fn sha1(self) -> bool {
        self.sha1
    }

    /// LSE atomics, `LDADD` and friends (`ID_AA64ISAR0_EL1.Atomic >= 2`).
    pub const fn lse(self) -> bool {
        self.lse
    }

    /// These features with `engine`'s instructions turned off.
    pub const fn without(self, engine: HardwareEngine) -> Self {
        match engine {
            HardwareEngine::Aes => Self { aes: false, ..self },
            HardwareEngine::Sha1 => Self {
                sha1: false,
                ..self
            },
            HardwareEngine::Lse => Self { lse: false, ..self },
        }
    }

    /// These features with every engine but `engine` turned off (and `engine` only if these
    /// features have it).
    pub const fn only(self, engine: HardwareEngine) -> Self {
        Self {
            aes: self.aes && matches!(engine, HardwareEngine::Aes),
            sha1: self.sha1 && matches!(engine, HardwareEngine::Sha1),
            lse: self.lse && matches!(engine, HardwareEngine::Lse),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decodes_the_registers_of_known_cores() {
        // QEMU `-cpu max` (QEMU 10, checked by the board notes).
        assert_eq!(
            CpuFeatures::from_isar0(0x1221_1111_1021_2120),
            CpuFeatures {
                aes: true,
                sha1: true,
                lse: true,
            }
        );
        // Cortex-A72 with the crypto extension: AES+PMULL, SHA1, SHA2, CRC32, no LSE.
        assert_eq!(
            CpuFeatures::from_isar0(0x0000_0000_0001_1120),
            CpuFeatures {
                aes: true,
                sha1: true,
                lse: false,
            }
        );
        assert_eq!(CpuFeatures::from_isar0(0), CpuFeatures::NONE);
    }

    #[test]
    fn narrowing_only_turns_engines_off() {
        let all = CpuFeatures::from_isar0(0x1221_1111_1021_2120);
        for engine in HardwareEngine::ALL {
            assert!(all.has(engine));
            assert!(!all.without(engine).has(engine));
            let only = all.only(engine);
            for other in HardwareEngine::ALL {
                assert_eq!(only.has(other), other == engine);
                assert_eq!(all.without(engine).has(other), other != engine);
            }
            assert_eq!(CpuFeatures::NONE.only(engine), CpuFeatures::NONE);
        }
    }
}
