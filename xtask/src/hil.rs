//! `cargo xtask hil`: the hardware-in-loop scenarios (tests/tests/hil.rs) on emulated SmartNICs.
//! Installs QEMU when it is missing and the machine allows, builds the qemu-virt image, then runs
//! the scenarios one at a time (each boots its own NICs and has its own timeout).

use anyhow::Result;
use e3_tests::firmware::{self, Board};
use e3_tests::qemu;

use crate::toolchain::{self, cargo, run_checked};

/// Options of `cargo xtask hil`.
#[derive(clap::Args, Default)]
pub struct Args {
    /// Run only the scenarios whose name contains this.
    pub filter: Option<String>,
}

/// Scenarios that need root (network namespaces, tap devices).
const ROOT_ONLY: &[&str] = &["ping"];

/// Why `hil` cannot run on this machine, if it cannot: no QEMU and no way to install it.
pub fn unavailable() -> Option<String> {
    crate::system::qemu_unavailable()
}

/// Entry point of the subcommand.
pub fn run(args: Args) -> Result<()> {
    let qemu = crate::system::ensure_qemu()?;
    eprintln!(
        "hil: {}",
        qemu::version(&qemu).unwrap_or_else(|| qemu.display().to_string())
    );
    toolchain::ensure_firmware_target()?;
    let image = firmware::build(Board::QemuVirt)?;
    eprintln!(
        "hil: firmware {} ({} bytes, sha256 {})",
        image.manifest.git_revision, image.manifest.size, image.manifest.sha256
    );
    let mut command = cargo();
    command.args(["test", "--package", "e3-tests", "--test", "hil", "--"]);
    command.args(["--ignored", "--test-threads=1"]);
    if let Some(filter) = &args.filter {
        command.arg(filter);
    }
    if !qemu::is_root() {
        for name in ROOT_ONLY {
            eprintln!("hil: SKIPPING scenario `{name}`: it needs root (network namespaces, taps)");
            command.args(["--skip", name]);
        }
    }
    run_checked(&mut command)
}
