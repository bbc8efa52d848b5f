//! `cargo xtask hil`: the hardware-in-loop scenarios (tests/tests/hil.rs) on emulated SmartNICs.
//! Installs QEMU when it is missing and the machine allows, builds the qemu-virt image, then runs
//! the scenarios one at a time (each boots its own NICs and has its own time limit).
//!
//! The network-namespace scenario (5) also needs root and `ip`/`ping`: without root it is
//! skipped, and its tools are installed only for it (when they cannot be, it is skipped, except
//! on CI, `CI=true`, where that fails the run); each skip is printed and returned, so
//! `cargo xtask ci` can say what did not run.

use std::path::Path;

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

/// The scenario that needs root (network namespaces, tap devices) and `ip`/`ping`.
const NAMESPACE_SCENARIO: &str = "ping_and_udp_from_a_linux_namespace";

/// What a run left out.
#[derive(Debug, Default)]
pub struct Outcome {
    /// Scenarios skipped, each with why.
    pub skipped: Vec<String>,
}

/// Entry point of the subcommand: fails when QEMU cannot be installed.
pub fn run(args: Args) -> Result<()> {
    let qemu = crate::system::ensure_qemu()?;
    let outcome = run_with(&qemu, &args)?;
    for skip in &outcome.skipped {
        eprintln!("hil: passed, but SKIPPED {skip}");
    }
    Ok(())
}

/// Builds the image and runs the scenarios under `qemu`; fails when a scenario fails.
pub fn run_with(qemu: &Path, args: &Args) -> Result<Outcome> {
    eprintln!(
        "hil: {}",
        qemu::version(qemu).unwrap_or_else(|| qemu.display().to_string())
    );
    toolchain::ensure_firmware_target()?;
    let image = firmware::build(Board::QemuVirt)?;
    eprintln!(
        "hil: firmware {} ({} bytes, sha256 {})",
        image.manifest.git_revision, image.manifest.size, image.manifest.sha256
    );
    let mut command = cargo();
    command.env(qemu::QEMU_VARIABLE, qemu);
    command.args(["test", "--package", "e3-tests", "--test", "hil", "--"]);
    // --show-output: each scenario prints how long it took.
    command.args(["--ignored", "--test-threads=1", "--show-output"]);
    if let Some(filter) = &args.filter {
        command.arg(filter);
    }
    let mut outcome = Outcome::default();
    let wanted = args
        .filter
        .as_deref()
        .is_none_or(|filter| NAMESPACE_SCENARIO.contains(filter));
    if wanted {
        let unavailable = if !qemu::is_root() {
            Some("it needs root (network namespaces, taps)".to_owned())
        } else {
            match crate::system::ensure_netns_tools() {
                Ok(()) => None,
                Err(e) if crate::ci::on_ci() => {
                    return Err(e.context(format!(
                        "scenario `{NAMESPACE_SCENARIO}` cannot run, and CI runs every scenario"
                    )))
                }
                Err(e) => Some(format!("{e:#}")),
            }
        };
        if let Some(why) = unavailable {
            eprintln!("hil: SKIPPING scenario `{NAMESPACE_SCENARIO}`: {why}");
            command.args(["--skip", NAMESPACE_SCENARIO]);
            outcome
                .skipped
                .push(format!("scenario `{NAMESPACE_SCENARIO}`: {why}"));
        }
    }
    run_checked(&mut command)?;
    Ok(outcome)
}
