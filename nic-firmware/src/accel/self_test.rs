//! The boot self-test: the known-answer checks on each hardware engine the core offers, and the
//! engines to run with afterwards, in which an engine that failed is replaced by software.

use core::fmt;

use microservices::engines::kat::{self, KatFailure};
use microservices::engines::Engines;

use super::{CpuFeatures, HardwareEngine, NicEngines};

/// What [`tested_engines`] found.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SelfTest {
    /// What the core offered.
    pub detected: CpuFeatures,
    /// What the returned engines use: `detected` without the engines that failed.
    pub selected: CpuFeatures,
    /// Each hardware engine's first known-answer failure, indexed as [`HardwareEngine::ALL`];
    /// `None` for an engine that passed or that the core does not have.
    pub failed: [Option<KatFailure>; HardwareEngine::ALL.len()],
    /// A failure of the selected engines themselves (the software ones included): nothing is
    /// left to fall back to, and services calling that engine get wrong answers.
    pub remaining: Option<KatFailure>,
}

impl SelfTest {
    /// `engine`'s failure, if it failed and now runs in software.
    pub fn failure(&self, engine: HardwareEngine) -> Option<KatFailure> {
        let index = HardwareEngine::ALL.iter().position(|&e| e == engine)?;
        self.failed[index]
    }

    /// The hardware engines that failed and now run in software, with their first failure.
    pub fn fallbacks(&self) -> impl Iterator<Item = (HardwareEngine, KatFailure)> + '_ {
        HardwareEngine::ALL
            .into_iter()
            .zip(self.failed)
            .filter_map(|(engine, failure)| Some((engine, failure?)))
    }

    /// Whether every engine the core offered passed, and so did the selected set.
    pub fn passed(&self) -> bool {
        self.remaining.is_none() && self.fallbacks().next().is_none()
    }
}

impl fmt::Display for SelfTest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut any = false;
        for engine in HardwareEngine::ALL {
            let state = match (self.detected.has(engine), self.failure(engine)) {
                (false, _) => "absent, software",
                (true, None) => "hardware, passes",
                (true, Some(_)) => "hardware FAILS, software instead",
            };
            let separator = if any { ", " } else { "" };
            write!(f, "{separator}{} {state}", engine.name())?;
            if let Some(failure) = self.failure(engine) {
                write!(f, " ({failure})")?;
            }
            any = true;
        }
        match self.remaining {
            None => f.write_str("; known-answer tests pass"),
            Some(failure) => write!(f, "; the engines selected still fail: {failure}"),
        }
    }
}

/// Runs every known-answer check on `engines`; the first failure, if any.
pub fn self_test(engines: &dyn Engines) -> Result<(), KatFailure> {
    kat::check_crypto(engines.crypto())?;
    kat::check_atomics(engines.atomics())?;
    kat::check_pattern(engines.pattern())
}

/// The known answers of one hardware engine, run on `engines` (built with that engine alone).
fn check_engine(engine: HardwareEngine, engines: &NicEngines) -> Result<(), KatFailure> {
    match engine {
        HardwareEngine::Aes | HardwareEngine::Sha1 => kat::check_crypto(engines.crypto()),
        HardwareEngine::Lse => kat::check_atomics(engines.atomics()),
    }
}

/// Runs the known-answer checks on each hardware engine `features` offers, alone (the others
/// in software, so that a failure names its engine), and returns engines that use only those
/// that passed, with the report. A board calls this once at boot with
/// [`CpuFeatures::detect`] and logs the report; an engine that fails does not stop the NIC, it
/// just runs in software.
pub fn tested_engines(features: CpuFeatures) -> (NicEngines, SelfTest) {
    select(features, check_engine)
}

/// [`tested_engines`] with the per-engine check given (the tests fail engines on purpose).
fn select(
    detected: CpuFeatures,
    check: impl Fn(HardwareEngine, &NicEngines) -> Result<(), KatFailure>,
) -> (NicEngines, SelfTest) {
    let mut selected = detected;
    let mut failed = [None; HardwareEngine::ALL.len()];
    for (engine, failure) in HardwareEngine::ALL.into_iter().zip(failed.iter_mut()) {
        if !detected.has(engine) {
            continue;
        }
        if let Err(error) = check(engine, &NicEngines::new(detected.only(engine))) {
            *failure = Some(error);
            selected = selected.without(engine);
        }
    }
    let engines = NicEngines::new(selected);
    let report = SelfTest {
        detected,
        selected,
        failed,
        remaining: self_test(&engines).err(),
    };
    (engines, report)
}

#[cfg(test)]
mod tests {
    extern crate alloc;

    use alloc::string::ToString;

    use super::*;

    /// Every extension on (QEMU `-cpu max`'s register). Off aarch64 the engines never execute
    /// the instructions (they are compiled for aarch64 only), so these tests may pretend; on
    /// an aarch64 host they would run instructions the core may lack, so they do not build
    /// there, and the test below checks the real core instead.
    #[cfg(not(target_arch = "aarch64"))]
    fn all() -> CpuFeatures {
        CpuFeatures::from_isar0(0x1221_1111_1021_2120)
    }

    #[test]
    fn a_core_without_extensions_runs_software_that_passes() {
        let (engines, report) = tested_engines(CpuFeatures::NONE);
        assert_eq!(engines.features(), CpuFeatures::NONE);
        assert!(report.passed(), "{report}");
        assert_eq!(report.fallbacks().count(), 0);
        assert_eq!(
            report.to_string(),
            "AES absent, software, SHA-1 absent, software, LSE absent, software; known-answer \
             tests pass"
        );
    }

    #[cfg(not(target_arch = "aarch64"))]
    #[test]
    fn an_engine_that_fails_falls_back_to_software_and_is_named() {
        let checked = core::cell::RefCell::new(alloc::vec::Vec::new());
        let (engines, report) = select(all(), |engine, engines| {
            checked.borrow_mut().push((engine, engines.features()));
            match engine {
                HardwareEngine::Sha1 => Err(KatFailure::Rfc2202 {
                    case: 3,
                    split: false,
                }),
                _ => Ok(()),
            }
        });
        // Each engine was checked alone.
        let checked = checked.into_inner();
        assert_eq!(checked.len(), 3);
        for (engine, features) in checked {
            assert_eq!(features, all().only(engine));
        }
        let expected = all().without(HardwareEngine::Sha1);
        assert_eq!(engines.features(), expected);
        assert_eq!(report.selected, expected);
        assert_eq!(report.detected, all());
        assert!(!report.passed());
        let failure = KatFailure::Rfc2202 {
            case: 3,
            split: false,
        };
        assert_eq!(
            report.fallbacks().collect::<alloc::vec::Vec<_>>(),
            [(HardwareEngine::Sha1, failure)]
        );
        assert_eq!(report.failure(HardwareEngine::Aes), None);
        // The software engines that replaced it pass.
        assert_eq!(report.remaining, None);
        let text = report.to_string();
        assert!(
            text.contains("SHA-1 hardware FAILS, software instead"),
            "{text}"
        );
        assert!(text.contains("AES hardware, passes"), "{text}");
    }

    #[cfg(not(target_arch = "aarch64"))]
    #[test]
    fn every_engine_can_fall_back_at_once() {
        let (engines, report) = select(all(), |_, _| Err(KatFailure::FetchAdd));
        assert_eq!(engines.features(), CpuFeatures::NONE);
        assert_eq!(report.fallbacks().count(), 3);
        assert_eq!(report.remaining, None);
    }

    /// On an aarch64 host (Linux emulates the ID register read at EL0): the core's own
    /// engines pass, and every engine it has stays in hardware.
    #[cfg(target_arch = "aarch64")]
    #[test]
    fn this_cores_engines_pass() {
        // SAFETY: tests run under an OS that emulates ID register reads; the test threads run
        // on cores of one kind.
        let detected = unsafe { CpuFeatures::detect() };
        let (engines, report) = tested_engines(detected);
        assert!(report.passed(), "{report}");
        assert_eq!(engines.features(), detected);
    }
}
