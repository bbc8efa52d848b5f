//! `cargo xtask`: the project's automation. No logic the product needs lives here.

mod bench;
mod ci;
mod demo;
mod firmware;
mod fuzz;
mod hil;
mod system;
mod toolchain;

use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(
    name = "cargo xtask",
    about = "Build, test, flash and benchmark the platform"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Everything CI checks: fmt, clippy, tests, firmware cross-build, fuzz smoke, hil.
    Ci(ci::Args),
    /// Run a benchmark and print its ratios against the baseline measured in the same run.
    Bench(bench::Args),
    /// Build the fuzz targets and run each for a while.
    Fuzz(fuzz::Args),
    /// Build the firmware image of a board into target/firmware/<board>/ with its manifest.
    BuildFw(firmware::BuildArgs),
    /// Put a built image on a NIC: start emulated NIC N, or show/run a real board's path.
    Flash(firmware::FlashArgs),
    /// Hardware-in-loop scenarios on emulated SmartNICs (installs QEMU if needed).
    Hil(hil::Args),
    /// The main job: two emulated NICs and a host serving a request stream, live table.
    Demo(demo::Args),
}

fn main() -> anyhow::Result<()> {
    match Cli::parse().command {
        Command::Ci(args) => ci::run(args),
        Command::Bench(args) => bench::run(args),
        Command::Fuzz(args) => fuzz::run(args),
        Command::BuildFw(args) => firmware::build(args),
        Command::Flash(args) => firmware::flash(args),
        Command::Hil(args) => hil::run(args),
        Command::Demo(args) => demo::run(args),
    }
}
