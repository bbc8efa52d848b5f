//! Which ARMv8 extensions the core offers, from the `ID_AA64ISAR0_EL1` register.

/// The extensions the engines use.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub struct CpuFeatures {
    /// AES instructions (`ID_AA64ISAR0_EL1.AES >= 1`).
    pub aes: bool,
    /// SHA-1 instructions (`ID_AA64ISAR0_EL1.SHA1 >= 1`).
    pub sha1: bool,
    /// LSE atomics, `LDADD` and friends (`ID_AA64ISAR0_EL1.Atomic >= 2`).
    pub lse: bool,
}

impl CpuFeatures {
    /// No extension: every engine in software.
    pub const NONE: CpuFeatures = CpuFeatures {
        aes: false,
        sha1: false,
        lse: false,
    };

    /// Decodes a value of `ID_AA64ISAR0_EL1`.
    pub const fn from_isar0(isar0: u64) -> Self {
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
    /// Linux does); at bare EL0 the read is an undefined instruction.
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
}
