//! The firmware image: boots a board and runs the NIC runtime on every core.
//!
//! The board layer lives in `platform/<board>/`; this file only picks it. On the host (where the
//! image cannot run) the binary says how to build it, and its pure board modules are unit-tested.
#![cfg_attr(target_os = "none", no_std, no_main)]

#[cfg(target_os = "none")]
extern crate alloc;

#[cfg(any(test, all(target_arch = "aarch64", target_os = "none")))]
#[path = "platform/qemu_virt/mod.rs"]
mod qemu_virt;

#[cfg(not(target_os = "none"))]
fn main() {
    eprintln!("nic-firmware is a bare-metal image: build it with `cargo xtask build-fw`");
    std::process::exit(2);
}
