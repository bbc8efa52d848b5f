//! `cargo xtask bench NAME`: runs one of the workspace's benchmark binaries (custom harnesses in
//! each crate's `benches/`), which print their figures beside a baseline measured in the same run.

use anyhow::Result;

use crate::toolchain::{cargo, run_checked};

/// Options of `cargo xtask bench`.
#[derive(clap::Args)]
pub struct Args {
    /// Which benchmark.
    #[arg(value_enum)]
    which: Which,
    /// Arguments passed on to the benchmark binary.
    #[arg(last = true)]
    rest: Vec<String>,
}

#[derive(Clone, Copy, clap::ValueEnum)]
enum Which {
    /// The PCIe channel between two threads against a crossbeam queue and memcpy.
    Channel,
    /// One NIC core through dispatch, demux and Count against a copy-only loop.
    Dispatch,
    /// E3 Table 6: placement time per microservice for HCM, annealing and ILP at scale.
    Placement,
    /// Every microservice on one core at 512-byte requests against E3's host figures.
    Services,
}

impl Which {
    /// The package and bench target that implement this benchmark.
    fn target(self) -> (&'static str, &'static str) {
        match self {
            Which::Channel => ("pcie-channel", "channel"),
            Which::Dispatch => ("nic-firmware", "dispatch"),
            Which::Placement => ("host-lib", "placement"),
            Which::Services => ("microservices", "services"),
        }
    }
}

/// Entry point of the subcommand.
pub fn run(args: Args) -> Result<()> {
    if matches!(args.which, Which::Placement) {
        crate::system::ensure_cbc()?; // host-lib's ILP runs COIN-OR CBC
    }
    let (package, bench) = args.which.target();
    run_checked(
        cargo()
            .args(["bench", "--package", package, "--bench", bench, "--"])
            .args(&args.rest),
    )
}
