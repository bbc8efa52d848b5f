//! `cargo xtask fuzz`: builds the libFuzzer targets in `fuzz/` on the pinned stable toolchain
//! (coverage instrumentation through `-Cpasses=sancov-module`, as cargo-fuzz does without a
//! sanitizer) and runs each for a bounded time; an input that fails is written to
//! `target/fuzz-artifacts/<target>/`. `cargo +nightly fuzz run NAME` works as well.

use std::fs;
use std::path::Path;

use anyhow::{bail, Context, Result};

use crate::toolchain::{cargo, run_checked, workspace_root};

/// Options of `cargo xtask fuzz`.
#[derive(clap::Args)]
pub struct Args {
    /// Seconds each target runs (0 only builds them).
    #[arg(long, default_value_t = 30)]
    pub seconds: u64,
    /// Targets to run (default: every target in fuzz/fuzz_targets).
    pub targets: Vec<String>,
}

const HOST_TARGET: &str = "x86_64-unknown-linux-gnu";

const INSTRUMENTATION: &str = "--cfg fuzzing -Cpasses=sancov-module \
     -Cllvm-args=-sanitizer-coverage-level=4 \
     -Cllvm-args=-sanitizer-coverage-inline-8bit-counters \
     -Cllvm-args=-sanitizer-coverage-pc-table \
     -Cllvm-args=-sanitizer-coverage-trace-compares \
     -Cdebug-assertions -Coverflow-checks";

/// Entry point of the subcommand.
pub fn run(args: Args) -> Result<()> {
    let fuzz_dir = workspace_root().join("fuzz");
    let mut targets = if args.targets.is_empty() {
        all_targets(&fuzz_dir)?
    } else {
        args.targets
    };
    targets.sort();
    if targets.is_empty() {
        eprintln!("fuzz: no fuzz targets yet in fuzz/fuzz_targets");
        return Ok(());
    }
    run_checked(
        cargo()
            .current_dir(&fuzz_dir)
            .env("RUSTFLAGS", INSTRUMENTATION)
            .args([
                "build",
                "--release",
                "--target",
                HOST_TARGET,
                "--manifest-path",
            ])
            .arg(fuzz_dir.join("Cargo.toml"))
            .args(targets.iter().flat_map(|t| ["--bin", t.as_str()])),
    )?;
    if args.seconds == 0 {
        return Ok(());
    }
    for target in &targets {
        let binary = fuzz_dir
            .join("target")
            .join(HOST_TARGET)
            .join("release")
            .join(target);
        let corpus = fuzz_dir.join("corpus").join(target);
        fs::create_dir_all(&corpus)
            .with_context(|| format!("could not create {}", corpus.display()))?;
        // Crash, leak and timeout inputs go under target/ (ignored by git), one directory per
        // target; libFuzzer's prefix is a plain string prefix, hence the trailing slash.
        let artifacts = workspace_root()
            .join("target")
            .join("fuzz-artifacts")
            .join(target);
        fs::create_dir_all(&artifacts)
            .with_context(|| format!("could not create {}", artifacts.display()))?;
        let mut command = std::process::Command::new(&binary);
        command
            .current_dir(&fuzz_dir)
            .arg(format!("-artifact_prefix={}/", artifacts.display()))
            .arg(format!("-max_total_time={}", args.seconds))
            .arg(format!("-timeout={INPUT_TIMEOUT_SECONDS}"))
            .arg("-print_final_stats=1")
            .arg(&corpus);
        let seeds = fuzz_dir.join("seeds").join(target);
        if seeds.is_dir() {
            command.arg(&seeds);
        }
        run_checked(&mut command).with_context(|| {
            format!(
                "fuzz target {target} found a failure (its input is in {})",
                artifacts.display()
            )
        })?;
    }
    Ok(())
}

/// One input taking longer than this is a failure (a hang; libFuzzer's default, 1200 s, would
/// outlast any smoke run and report nothing). Every target handles an input in well under a
/// millisecond, so this leaves room for a loaded machine.
const INPUT_TIMEOUT_SECONDS: u32 = 10;

fn all_targets(fuzz_dir: &Path) -> Result<Vec<String>> {
    let dir = fuzz_dir.join("fuzz_targets");
    if !dir.is_dir() {
        return Ok(Vec::new());
    }
    let mut targets = Vec::new();
    for entry in fs::read_dir(&dir).with_context(|| format!("reading {}", dir.display()))? {
        let path = entry?.path();
        if path.extension().is_some_and(|e| e == "rs") {
            match path.file_stem().and_then(|s| s.to_str()) {
                Some(stem) => targets.push(stem.to_owned()),
                None => bail!("fuzz target with a non-UTF-8 name: {}", path.display()),
            }
        }
    }
    Ok(targets)
}
