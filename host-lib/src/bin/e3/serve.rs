//! `e3 serve`: runs the host half on one NIC channel: answers the UDP requests the NIC forwards
//! for the host IP with microservices on host worker threads (`host_lib::HostNode`).
//!
//! The hardware-in-loop harness uses it to play the host: either attach to a channel file the
//! harness created, or create it (`--create`, with the NIC's boot configuration) before QEMU
//! maps it.

use std::path::PathBuf;
use std::str::FromStr;
use std::time::{Duration, Instant};

use host_lib::HostNode;
use microservices::services::{deploy, Echo};
use microservices::{Service, ServiceId, ServiceKind};
use pcie_channel::Geometry;
use std::error::Error;

/// Options of `e3 serve`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// The channel file (`/dev/shm/NAME` of an emulated NIC, or a PCI BAR resource file).
    #[arg(long)]
    channel: PathBuf,
    /// Create (or truncate) the channel file and initialise the channel, instead of attaching.
    #[arg(long)]
    create: bool,
    /// With --create: the file size in bytes (default: what the geometry needs, rounded up to a
    /// power of two as a PCI BAR must be).
    #[arg(long)]
    size: Option<u64>,
    /// With --create: engines per direction.
    #[arg(long, default_value_t = Geometry::DEFAULT.engines)]
    engines: u32,
    /// With --create: a file whose bytes become the NIC's boot configuration.
    #[arg(long)]
    boot_config: Option<PathBuf>,
    /// A service on a UDP port of the host IP, as PORT=KIND (echo, or any catalogue kind in
    /// its standard configuration: kvs, count, nat, sql, ...); repeatable.
    #[arg(long = "service", value_name = "PORT=KIND", required = true)]
    services: Vec<String>,
    /// Worker threads.
    #[arg(long, default_value_t = 1)]
    workers: usize,
    /// Stop after this many seconds (default: run until killed).
    #[arg(long)]
    seconds: Option<u64>,
    /// Print the counters every this many seconds (0: only at the end).
    #[arg(long, default_value_t = 5)]
    report_every: u64,
}

type Result<T> = std::result::Result<T, Box<dyn Error>>;

/// A service instance for a kind name: `echo`, or a catalogue kind in its standard
/// configuration (built by `microservices::services::deploy`, as a NIC's deploy builds it).
fn service(kind: &str, id: u16) -> Result<Box<dyn Service>> {
    let name = kind.to_ascii_lowercase();
    if name == "echo" {
        return Ok(Box::new(Echo::new(ServiceId(id))));
    }
    let kind = ServiceKind::from_str(&name).map_err(|_| {
        format!("unknown service kind {name:?} (echo, or a catalogue kind: kvs, count, nat, ...)")
    })?;
    Ok(deploy::build_on_host(kind, ServiceId(id), &[]).map_err(|e| e.to_string())?)
}

/// Entry point of the subcommand.
pub fn run(args: Args) -> Result<()> {
    let mut builder = HostNode::builder().workers(args.workers);
    builder = if args.create {
        let geometry = Geometry {
            engines: args.engines,
            ..Geometry::DEFAULT
        };
        geometry.validate().map_err(|e| e.to_string())?;
        let size = args
            .size
            .unwrap_or((geometry.region_bytes() as u64).next_power_of_two());
        let boot_config =
            match &args.boot_config {
                Some(path) => Some(std::fs::read(path).map_err(|e| {
                    format!("reading the boot configuration {}: {e}", path.display())
                })?),
                None => None,
            };
        builder.create_nic(&args.channel, Some(size), geometry, boot_config)
    } else {
        builder.nic(&args.channel)
    };
    for (i, spec) in args.services.iter().enumerate() {
        let Some((port, kind)) = spec.split_once('=') else {
            return Err(format!("--service {spec:?}: expected PORT=KIND").into());
        };
        let port: u16 = port
            .parse()
            .map_err(|e| format!("--service {spec:?}: bad port: {e}"))?;
        builder = builder.service(port, service(kind, i as u16 + 1)?);
    }
    let node = builder.spawn()?;
    eprintln!(
        "e3 serve: {} {} services on {}",
        if args.create {
            "created"
        } else {
            "attached to"
        },
        args.services.len(),
        args.channel.display()
    );
    let started = Instant::now();
    let mut last_report = Instant::now();
    loop {
        std::thread::sleep(Duration::from_millis(100));
        if args
            .seconds
            .is_some_and(|s| started.elapsed() >= Duration::from_secs(s))
        {
            break;
        }
        if args.report_every > 0 && last_report.elapsed() >= Duration::from_secs(args.report_every)
        {
            last_report = Instant::now();
            let stats = node.stats();
            eprintln!("e3 serve: {:?}", stats.nics.first());
        }
    }
    let stats = node.shutdown()?;
    println!("{stats:#?}");
    Ok(())
}
