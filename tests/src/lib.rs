//! Shared helpers for the cross-crate and hardware-in-loop (HIL) scenario tests in `tests/tests/`,
//! also used by `cargo xtask build-fw|flash|hil|demo`.
//!
//! Layers, from the bottom:
//! - [`firmware`]: building a firmware image per board, its manifest, and the checks before use.
//! - [`frames`]: UDP frames for the switch to send and read, via the firmware's `wire`.
//! - [`host`]: the host end of the NICs' PCIe channels: a host-lib `HostNode` serving the host IP,
//!   the channel files and boot configurations it creates.
//! - [`qemu`]: finding QEMU, installing it on a fresh Debian machine.
//! - [`nic`]: one emulated SmartNIC (QEMU `virt` + firmware + config + channel + ports).
//! - [`netns`]: network namespaces for scenarios with a real Linux stack on a tap device.
//! - [`switch`]: the top-of-rack switch the HIL tests play, one datagram socket per NIC port.
//! - [`rack`]: a scenario's switch and NICs, booted and ready, and request/reply exchanges.
//! - [`scenario`]: a scenario's run under its time limit, and the QEMUs it started, killed and
//!   reaped when it ends however it ends.

use std::path::PathBuf;

pub mod firmware;
pub mod frames;
pub mod host;
pub mod netns;
pub mod nic;
pub mod qemu;
pub mod rack;
pub mod scenario;
pub mod switch;

/// The workspace root.
pub fn workspace_root() -> PathBuf {
    let manifest_dir = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    manifest_dir
        .parent()
        .map(PathBuf::from)
        .unwrap_or(manifest_dir)
}
