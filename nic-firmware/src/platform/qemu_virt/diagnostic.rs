//! Diagnostic switches: ways to exercise the board's own failure paths on purpose, off unless
//! QEMU is given the fw_cfg file `opt/e3/diagnostic`
//! (`-fw_cfg name=opt/e3/diagnostic,string=fault-after-boot`). The boot configuration cannot
//! turn them on, and an operator's flash never passes one.
//!
//! `fault-after-boot`: once the board is up (after its `ready:` line) core 0 reads the
//! unmapped address [`super::map::UNMAPPED`], so the exception handler must print the fault
//! (ESR, FAR, ELR) and stop the board with exit status 5. An unknown switch is refused with a
//! UART message and changes nothing.

use core::fmt;

/// A diagnostic the board can be asked to run.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Diagnostic {
    /// Read an unmapped address once the board is up.
    FaultAfterBoot,
}

/// A switch the firmware does not know.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct UnknownSwitch;

impl fmt::Display for UnknownSwitch {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("unknown diagnostic switch (the only one is `fault-after-boot`)")
    }
}

impl Diagnostic {
    /// The switch in the file's bytes (surrounding white space ignored).
    pub fn parse(bytes: &[u8]) -> Result<Diagnostic, UnknownSwitch> {
        match core::str::from_utf8(bytes).map(str::trim) {
            Ok("fault-after-boot") => Ok(Diagnostic::FaultAfterBoot),
            _ => Err(UnknownSwitch),
        }
    }
}

#[cfg(target_os = "none")]
mod run {
    //! Reading the switch from fw_cfg and running it.

    use log::{error, warn};

    use super::Diagnostic;
    use crate::qemu_virt::fw_cfg::{self, FwCfgError};
    use crate::qemu_virt::map;

    /// The fw_cfg file that holds the switch.
    const FILE: &str = "opt/e3/diagnostic";

    /// Runs the diagnostic QEMU was given, if any (core 0, once the board is up).
    pub fn run_requested() {
        let bytes = match fw_cfg::read_file(FILE) {
            Ok(bytes) => bytes,
            Err(FwCfgError::NotFound | FwCfgError::NoDevice) => return,
            Err(e) => {
                error!("diagnostic switch refused: fw_cfg {FILE}: {e}");
                return;
            }
        };
        match Diagnostic::parse(&bytes) {
            Ok(Diagnostic::FaultAfterBoot) => fault(),
            Err(e) => error!("diagnostic switch refused: fw_cfg {FILE}: {e}"),
        }
    }

    fn fault() {
        warn!(
            "diagnostic fault-after-boot: reading the unmapped address {:#x}",
            map::UNMAPPED
        );
        let address = map::UNMAPPED as *const u64;
        // SAFETY: not sound on purpose, and the point of the switch: no page table maps this
        // address, so the load raises a synchronous data abort and the exception handler stops
        // the board; the load never returns a value.
        let value = unsafe { address.read_volatile() };
        error!("diagnostic fault-after-boot: the unmapped read returned {value:#x}");
    }
}

#[cfg(target_os = "none")]
pub use run::run_requested;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_the_known_switch_parses() {
        assert_eq!(
            Diagnostic::parse(b"fault-after-boot\n"),
            Ok(Diagnostic::FaultAfterBoot)
        );
        assert_eq!(Diagnostic::parse(b"fault"), Err(UnknownSwitch));
        assert_eq!(Diagnostic::parse(b""), Err(UnknownSwitch));
        assert_eq!(Diagnostic::parse(&[0xff, 0xfe]), Err(UnknownSwitch));
    }
}
