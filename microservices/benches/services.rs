//! `cargo xtask bench services`: requests per second on one core for every service's standard
//! instance at 512-byte requests with software engines, beside the host figure of E3's Table 1
//! (the kernel-bypass host's throughput divided by the cores it used), with the ratio per
//! service and the geometric mean of the ratios.
//!
//! A second baseline is measured in the same run: the copy floor, the same replay loop with a
//! "service" that only copies each request into the response. Its column (cost in copies) does
//! not move with the machine's load the way absolute rates do; the load average at the start
//! is printed for that reason.
//!
//! The request-bytes column is the mean size of the replayed requests: the generators pad
//! shorter requests up to the size (`apps::traffic`), and a KNN request of the standard model's
//! 127 features is 512 bytes with no padding.
//!
//! Options: `--seconds S` per service (default 1), `--size BYTES` (default 512), and service
//! names to run only those.

use std::hint::black_box;
use std::time::{Duration, Instant};

use microservices::apps::traffic::ServiceTraffic;
use microservices::codec::Response;
use microservices::engines::SoftwareEngines;
use microservices::services::standard::instantiate;
use microservices::{Context, Service, ServiceError, ServiceId, ServiceIdentity, ServiceKind};

/// E3 Table 1, host with DPDK: (requests per second, active cores).
fn paper_host(kind: ServiceKind) -> (f64, f64) {
    match kind {
        ServiceKind::IpSec => (911.9e3, 12.0),
        ServiceKind::Bm25 => (99.5e3, 12.0),
        ServiceKind::Nids => (1841.1e3, 12.0),
        ServiceKind::Recommend => (4.1e3, 12.0),
        ServiceKind::Nat => (1917.5e3, 4.0),
        ServiceKind::Count => (1960.0e3, 4.0),
        ServiceKind::Ema => (2009.2e3, 4.0),
        ServiceKind::Kvs => (2005.0e3, 2.0),
        ServiceKind::FlowMonitor => (2014.4e3, 4.0),
        ServiceKind::Ddos => (1844.8e3, 12.0),
        ServiceKind::Knn => (42.4e3, 12.0),
        ServiceKind::Spike => (104.3e3, 12.0),
        ServiceKind::Bayes => (13.7e3, 12.0),
        ServiceKind::ApiGateway => (1584.3e3, 12.0),
        ServiceKind::TopRanker => (771.9e3, 12.0),
        ServiceKind::Sql => (528.0e3, 12.0),
    }
}

struct Options {
    seconds: f64,
    size: usize,
    only: Vec<ServiceKind>,
}

fn options() -> Options {
    let mut options = Options {
        seconds: 1.0,
        size: 512,
        only: Vec::new(),
    };
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--seconds" => {
                options.seconds = args.next().and_then(|s| s.parse().ok()).unwrap_or(1.0)
            }
            "--size" => options.size = args.next().and_then(|s| s.parse().ok()).unwrap_or(512),
            "--bench" => {}
            name => match name.parse() {
                Ok(kind) => options.only.push(kind),
                Err(_) => eprintln!("services bench: ignoring unknown argument {name:?}"),
            },
        }
    }
    options
}

/// The copy floor: answers every request with a copy of it.
struct CopyFloor;

impl Service for CopyFloor {
    fn identity(&self) -> ServiceIdentity {
        ServiceIdentity::new(ServiceId(0), ServiceKind::Kvs, 512, 0)
    }

    fn handle(
        &mut self,
        _ctx: &mut Context<'_>,
        request: &[u8],
        response: &mut [u8],
    ) -> Result<usize, ServiceError> {
        let mut out = Response::new(response)?;
        out.bytes(request)?;
        Ok(out.finish())
    }
}

/// A fixed, pre-generated trace of `kind` requests: generation stays out of the timing.
fn trace_of(kind: ServiceKind, size: usize) -> Vec<(u64, Vec<u8>)> {
    let mut traffic = ServiceTraffic::new(kind, 0xbe4c, size);
    (0..4096).map(|_| traffic.next_request()).collect()
}

/// Requests per second of `kind`'s standard instance on this core, the share of requests
/// that answered an error, and the mean request size in bytes.
fn measure(kind: ServiceKind, size: usize, seconds: f64) -> Option<(f64, f64, f64)> {
    let service = instantiate(kind, ServiceId(1))?;
    let trace = trace_of(kind, size);
    let bytes = trace.iter().map(|(_, r)| r.len()).sum::<usize>() as f64 / trace.len() as f64;
    let (rps, errors) = replay(service, &trace, seconds);
    Some((rps, errors, bytes))
}

/// Replays `trace` through `service` in order for `seconds`; requests per second and error
/// share.
fn replay(mut service: Box<dyn Service>, trace: &[(u64, Vec<u8>)], seconds: f64) -> (f64, f64) {
    let span = trace.last().map_or(0, |(t, _)| *t) + 1;
    let mut response = vec![0u8; 4096];
    let budget = Duration::from_secs_f64(seconds);
    let (mut done, mut errors, mut round) = (0u64, 0u64, 0u64);
    let started = Instant::now();
    while started.elapsed() < budget {
        for (at, request) in trace {
            let mut ctx = Context::new(&SoftwareEngines, round * span + at);
            let (len, error) = service.serve(&mut ctx, black_box(request), &mut response);
            black_box(len);
            errors += u64::from(error.is_some());
        }
        done += trace.len() as u64;
        round += 1;
    }
    let elapsed = started.elapsed().as_secs_f64();
    (done as f64 / elapsed, errors as f64 / done as f64)
}

fn main() {
    let options = options();
    let kinds: Vec<ServiceKind> = if options.only.is_empty() {
        ServiceKind::ALL.to_vec()
    } else {
        options.only.clone()
    };
    println!(
        "services: one core, software engines, {}-byte requests, {:.1} s per service",
        options.size, options.seconds
    );
    let load = std::fs::read_to_string("/proc/loadavg").unwrap_or_default();
    let load: Vec<&str> = load.split_whitespace().take(3).collect();
    println!("load average at start: {}", load.join(" "));
    let floor_trace = trace_of(ServiceKind::Kvs, options.size);
    let (floor, _) = replay(Box::new(CopyFloor), &floor_trace, options.seconds);
    println!("baselines: E3 Table 1, host with DPDK (RPS / cores); copy floor {floor:.0} req/s");
    println!();
    println!(
        "| service | request bytes | ours (req/s/core) | E3 host (req/s/core) | ratio | cost in copies | errors |"
    );
    println!("|---|---:|---:|---:|---:|---:|---:|");
    let mut log_sum = 0.0;
    let mut measured = 0;
    for kind in kinds {
        let (rps, cores) = paper_host(kind);
        let paper = rps / cores;
        match measure(kind, options.size, options.seconds) {
            Some((ours, error_share, bytes)) => {
                let ratio = ours / paper;
                log_sum += ratio.ln();
                measured += 1;
                println!(
                    "| {} | {:.0} | {:.0} | {:.0} | {:.2} | {:.1} | {:.1}% |",
                    kind,
                    bytes,
                    ours,
                    paper,
                    ratio,
                    floor / ours,
                    100.0 * error_share
                );
            }
            None => {
                println!("| {kind} | - | not built (feature `sql` off) | {paper:.0} | - | - | - |")
            }
        }
    }
    if measured > 0 {
        println!();
        println!(
            "geometric mean of ratios over {} services: {:.2}",
            measured,
            (log_sum / f64::from(measured)).exp()
        );
    }
}
