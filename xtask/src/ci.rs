//! `cargo xtask ci`: every check CI runs, in the order a developer wants to see them fail.

use std::time::Instant;

use anyhow::Result;

use crate::toolchain::{self, cargo, run_checked, FIRMWARE_TARGET};

/// Options of `cargo xtask ci`.
#[derive(clap::Args)]
pub struct Args {
    /// Seconds each fuzz target runs (0 only builds them).
    #[arg(long, default_value_t = 5)]
    fuzz_seconds: u64,
}

/// Entry point of the subcommand: runs every check, stops at the first failure.
pub fn run(args: Args) -> Result<()> {
    let started = Instant::now();
    step("rustfmt", || {
        run_checked(cargo().args(["fmt", "--all", "--check"]))
    })?;
    step("system packages", crate::system::ensure_packages)?;
    step("clippy", || {
        run_checked(cargo().args([
            "clippy",
            "--workspace",
            "--all-targets",
            "--",
            "-D",
            "warnings",
        ]))
    })?;
    step("tests", || {
        run_checked(cargo().args(["test", "--workspace"]))
    })?;
    step("loom model", || {
        // A separate target directory: `--cfg loom` would otherwise invalidate the main build.
        run_checked(
            cargo()
                .env("RUSTFLAGS", "--cfg loom")
                .env(
                    "CARGO_TARGET_DIR",
                    toolchain::workspace_root().join("target/loom"),
                )
                .args(["test", "--package", "pcie-channel", "--test", "loom_ring"]),
        )
    })?;
    step("firmware cross-build", || {
        toolchain::ensure_firmware_target()?;
        run_checked(cargo().args([
            "build",
            "--package",
            "nic-firmware",
            "--target",
            FIRMWARE_TARGET,
            "--release",
        ]))?;
        run_checked(cargo().args([
            "clippy",
            "--package",
            "nic-firmware",
            "--target",
            FIRMWARE_TARGET,
            "--release",
            "--",
            "-D",
            "warnings",
        ]))
    })?;
    step("fuzz smoke", || {
        crate::fuzz::run(crate::fuzz::Args {
            seconds: args.fuzz_seconds,
            targets: Vec::new(),
        })
    })?;
    match crate::hil::unavailable() {
        None => step("hardware-in-loop", || crate::hil::run(Default::default()))?,
        Some(reason) => eprintln!("ci: == hardware-in-loop == SKIPPED: {reason}"),
    }
    eprintln!(
        "ci: all checks passed in {:.0} s",
        started.elapsed().as_secs_f64()
    );
    Ok(())
}

fn step(name: &str, body: impl FnOnce() -> Result<()>) -> Result<()> {
    eprintln!("ci: == {name} ==");
    let started = Instant::now();
    let result = body();
    let seconds = started.elapsed().as_secs_f64();
    match &result {
        Ok(()) => eprintln!("ci: {name} passed ({seconds:.0} s)"),
        Err(error) => eprintln!("ci: {name} FAILED ({seconds:.0} s): {error:#}"),
    }
    result
}
