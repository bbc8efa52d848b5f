//! The NIC runtime: a `no_std`, run-to-completion packet and microservice runtime for the ARM
//! cores of a SmartNIC (after E3, Liu et al., USENIX ATC 2019). All of its logic is tested on
//! the host; the board layer is thin.
//!
//! # Layers
//!
//! From the wire up:
//! - [`wire`]: zerocopy views and checked parse/emit for Ethernet, ARP, IPv4, UDP, ICMP, TCP.
//! - [`tm`]: the traffic manager: frame pool, steering (round-robin or flow-affine), per-core
//!   queues, queue depth over time, work stealing.
//! - [`demux`]: one frame to one [`Verdict`](demux::Verdict) by destination: NIC IP (service
//!   table by UDP port, ICMP echo, TCP reset), host IP (host path), ARP, or a counted drop.
//! - [`service_table`]: UDP port to service slot, host or agent; the deployed services.
//! - [`host_path`]: the [`HostPath`](platform::HostPath) over the real PCIe channel.
//! - [`runtime`]: the [`Runtime`] shared by all cores and the per-core loop.
//! - [`agent`]: per-service execution-time averages, heartbeats, orchestrator commands.
//! - [`counters`]: per-core counters and drop reasons.
//! - [`accel`]: the engines services call, on the NIC's own hardware (crypto extensions, LSE).
//! - [`boot_config`]: the boot configuration a board reads at start-up (NIC IP, host IP, MAC,
//!   services by UDP port), parsed and refused with a message naming the line.
//! - [`platform`]: the [`Board`](platform::Board) trait a board implements, and (feature
//!   `std`) the software NIC in [`platform::host`].
//!
//! # Entry points for a board
//!
//! ```ignore
//! let config = Config::new(addresses, &ENGINES)
//!     .with_service(7001, Box::new(count_service));
//! let runtime = Runtime::new(config, board)?;    // once, on the boot core; allocates
//! // then on every core i in 0..board.core_count():
//! runtime.run_core(i)?;                          // loops until runtime.stop()
//! ```
//!
//! `Runtime::new` allocates the frame pool (`config.frames` x 3072 bytes), the per-core queues
//! and the service table; nothing allocates after it. `Runtime` is `Sync`: put it in a static
//! (or leak it) and hand `&Runtime` to every core.
//!
//! # Features
//!
//! - `std`: the software NIC ([`platform::host`]) and the test doubles in [`testing`]. The
//!   firmware build (`--target aarch64-unknown-none`) never enables it.
#![cfg_attr(not(any(test, feature = "std")), no_std)]

extern crate alloc;

pub mod accel;
pub mod agent;
pub mod boot_config;
pub mod counters;
pub mod demux;
pub mod host_path;
pub mod neighbours;
pub mod platform;
pub mod runtime;
pub mod service_table;
#[cfg(any(test, feature = "std"))]
pub mod testing;
pub mod tm;
pub mod wire;

pub use runtime::{Config, Core, Runtime, RuntimeError};
