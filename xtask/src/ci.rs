//! `cargo xtask ci`: every check CI runs, in the order a developer wants to see them fail. The
//! last line says whether everything ran or what was skipped, and why.
//!
//! On a developer's machine that cannot install QEMU (not Debian, neither root nor
//! passwordless sudo, the package archive out of reach) the hardware-in-loop step is skipped
//! with the reason; on CI (`CI=true`, as `.ci/run` is run) nothing may be skipped that way:
//! failing to get QEMU fails ci with the error, as does any failed install anywhere.

use std::path::PathBuf;
use std::time::Instant;

use anyhow::{bail, Context, Result};

use e3_tests::firmware::{self, Board};

use crate::system::InstallError;
use crate::toolchain::{self, cargo, run_checked, FIRMWARE_TARGET};

/// The environment variable CI sets to `true`.
const CI_VARIABLE: &str = "CI";

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
    step("system packages", crate::system::ensure_cbc)?;
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
    step("firmware cross-build, every board, no_std crates", || {
        toolchain::ensure_firmware_target()?;
        // qemu-virt last: the image the HIL step boots is then the one built last.
        for board in [Board::Bluefield, Board::Liquidio3, Board::QemuVirt] {
            let image = firmware::build(board)?;
            eprintln!(
                "ci: {board} image: {} bytes at {:#x}",
                image.manifest.size, image.manifest.load_address
            );
            let mut clippy = cargo();
            clippy.args([
                "clippy",
                "--package",
                "nic-firmware",
                "--target",
                FIRMWARE_TARGET,
                "--release",
            ]);
            if let Some(feature) = board.feature() {
                clippy.args(["--features", feature]);
            }
            run_checked(clippy.args(["--", "-D", "warnings"]))?;
        }
        // The shared crates as the firmware takes them (no_std, no default features), linted
        // on their own: the workspace clippy above sees them only with `std` on.
        for package in ["pcie-channel", "microservices"] {
            run_checked(cargo().args([
                "clippy",
                "--package",
                package,
                "--no-default-features",
                "--target",
                FIRMWARE_TARGET,
                "--",
                "-D",
                "warnings",
            ]))?;
        }
        Ok(())
    })?;
    step("firmware pulls no std crate", firmware_is_no_std)?;
    step("fuzz smoke", || {
        crate::fuzz::run(crate::fuzz::Args {
            seconds: args.fuzz_seconds,
            targets: Vec::new(),
        })
    })?;
    let mut skipped = Vec::new();
    match hil_plan(crate::system::ensure_qemu(), on_ci()) {
        HilPlan::Run(qemu) => step("hardware-in-loop", || {
            let outcome = crate::hil::run_with(&qemu, &Default::default())?;
            skipped.extend(outcome.skipped);
            Ok(())
        })?,
        HilPlan::Skip(why) => {
            eprintln!(
                "ci: == hardware-in-loop == SKIPPED: this machine cannot install QEMU ({why}); \
                 with {CI_VARIABLE}=true this fails ci"
            );
            skipped.push(format!(
                "hardware-in-loop (QEMU cannot be installed here): {why}"
            ));
        }
        HilPlan::Fail(error) => step("hardware-in-loop", || Err(error))?,
    }
    let seconds = started.elapsed().as_secs_f64();
    if skipped.is_empty() {
        eprintln!("ci: all checks passed in {seconds:.0} s");
    } else {
        eprintln!(
            "ci: all checks that ran passed in {seconds:.0} s; SKIPPED: {}",
            skipped.join("; ")
        );
    }
    Ok(())
}

/// Whether this runs on CI (`CI=true`).
pub fn on_ci() -> bool {
    std::env::var(CI_VARIABLE).is_ok_and(|value| value == "true")
}

/// What ci does about the hardware-in-loop step.
#[derive(Debug)]
enum HilPlan {
    /// Runs it under this QEMU.
    Run(PathBuf),
    /// Skips it, for this reason.
    Skip(String),
    /// Fails with this error.
    Fail(anyhow::Error),
}

/// The plan for the hardware-in-loop step, from how getting QEMU went: a machine that cannot
/// install skips it, except on CI; any other failure to get QEMU fails.
fn hil_plan(qemu: Result<PathBuf, InstallError>, on_ci: bool) -> HilPlan {
    match qemu {
        Ok(qemu) => HilPlan::Run(qemu),
        Err(InstallError::CannotInstall(why)) if !on_ci => HilPlan::Skip(format!("{why:#}")),
        Err(InstallError::CannotInstall(why)) => HilPlan::Fail(why.context(format!(
            "QEMU is needed on CI ({CI_VARIABLE}=true), and this machine cannot install it"
        ))),
        Err(InstallError::Failed(why)) => HilPlan::Fail(why.context("getting QEMU failed")),
    }
}

/// Lists the firmware's dependency tree for the bare-metal target and fails when any crate in
/// it has its `std` feature on (the target has no `std`, so such a crate could only build by
/// accident, and a host build of the same tree would silently link `std`).
fn firmware_is_no_std() -> Result<()> {
    let mut command = cargo();
    command.args([
        "tree",
        "--package",
        "nic-firmware",
        "--target",
        FIRMWARE_TARGET,
        "--edges",
        "normal",
        "--prefix",
        "none",
        "--format",
        "{p} [{f}]",
    ]);
    let rendered = toolchain::render(&command);
    eprintln!("$ {rendered}");
    let output = command
        .output()
        .with_context(|| format!("could not run `{rendered}`"))?;
    if !output.status.success() {
        bail!(
            "`{rendered}` failed: {}",
            String::from_utf8_lossy(&output.stderr)
        );
    }
    let tree = String::from_utf8_lossy(&output.stdout);
    let with_std = lines_with_std(&tree);
    if !with_std.is_empty() {
        bail!(
            "the firmware build enables `std` in: {}",
            with_std.join("; ")
        );
    }
    eprintln!(
        "ci: {} crates in the firmware build, none with std",
        tree.lines().count()
    );
    Ok(())
}

/// The lines of a `cargo tree --format "{p} [{f}]"` listing whose features include `std`.
fn lines_with_std(tree: &str) -> Vec<&str> {
    tree.lines()
        .filter(|line| {
            line.rsplit_once('[')
                .and_then(|(_, features)| features.split_once(']'))
                .is_some_and(|(features, _)| features.split(',').any(|f| f == "std"))
        })
        .collect()
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_a_machine_that_cannot_install_skips_and_never_on_ci() {
        let cannot = || Err(InstallError::CannotInstall(anyhow::anyhow!("no sudo")));
        let failed = || Err(InstallError::Failed(anyhow::anyhow!("unmet dependencies")));
        let found = || Ok(PathBuf::from("/usr/bin/qemu-system-aarch64"));
        assert!(matches!(hil_plan(found(), true), HilPlan::Run(_)));
        assert!(matches!(hil_plan(found(), false), HilPlan::Run(_)));
        match hil_plan(cannot(), false) {
            HilPlan::Skip(why) => assert_eq!(why, "no sudo"),
            other => panic!("{other:?}"),
        }
        for (plan, says) in [
            (hil_plan(cannot(), true), "no sudo"),
            (hil_plan(failed(), false), "unmet dependencies"),
            (hil_plan(failed(), true), "unmet dependencies"),
        ] {
            let HilPlan::Fail(error) = plan else {
                panic!("{plan:?}")
            };
            assert!(format!("{error:#}").contains(says), "{error:#}");
        }
    }

    #[test]
    fn finds_crates_with_std_on() {
        let tree = "heapless v0.8.0 []\nlog v0.4.35 [std]\ndigest v0.11.3 [block-api,default,mac]\nserde v1 [alloc,std] (*)\nstd-like v1 [nostd]\n";
        assert_eq!(
            lines_with_std(tree),
            ["log v0.4.35 [std]", "serde v1 [alloc,std] (*)"]
        );
    }
}
