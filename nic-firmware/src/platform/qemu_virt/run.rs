//! What each core does once the board is up, and how idle cores wait.
//!
//! Core 0 polls the ports; the other cores wait for work. A core with nothing to do arms its
//! timer and sleeps in WFI, so idle emulated cores leave the host's CPUs alone; core 0 is also
//! woken by the ports' interrupts, the others by a wake-up SGI.
#![cfg(target_os = "none")]

use core::arch::asm;
use core::net::Ipv4Addr;

use log::info;
use nic_firmware::boot_config::BootConfig;

use super::pci::Region;
use super::virtio_net::Port;
use super::{gic, timer, virtio_net};

/// Idle passes over the ports before core 0 sleeps.
const SPIN_PASSES: u32 = 256;
/// Longest sleep: the agent's periodic work must not wait longer.
const MAX_SLEEP_NS: u64 = 1_000_000;

/// Sleeps until an interrupt (a frame, a wake-up) or `timeout_ns` passes.
pub fn idle(timeout_ns: u64) {
    timer::arm(timer::ticks() + timer::ns_to_ticks(timeout_ns));
    // SAFETY: WFI only waits; interrupts are masked in PSTATE, so no handler runs when it ends.
    unsafe { asm!("dsb sy", "wfi", options(nomem, nostack)) };
    timer::disarm();
    gic::acknowledge_all();
}

/// Announces `ip` at `mac` with a gratuitous ARP request (RFC 5227), so the switch learns the
/// port the NIC's address lives behind.
fn gratuitous_arp(mac: [u8; 6], ip: Ipv4Addr) -> [u8; 42] {
    let mut frame = [0u8; 42];
    frame[0..6].copy_from_slice(&[0xff; 6]);
    frame[6..12].copy_from_slice(&mac);
    frame[12..14].copy_from_slice(&0x0806u16.to_be_bytes());
    frame[14..22].copy_from_slice(&[0, 1, 8, 0, 6, 4, 0, 1]);
    frame[22..28].copy_from_slice(&mac);
    frame[28..32].copy_from_slice(&ip.octets());
    frame[38..42].copy_from_slice(&ip.octets());
    frame
}

/// Core 0's loop.
pub fn primary(
    config: BootConfig,
    mut ports: heapless::Vec<Port, { virtio_net::MAX_PORTS }>,
    _shared: Option<Region>,
) -> ! {
    for port in ports.iter_mut() {
        let _ = port.transmit(&gratuitous_arp(port.mac(), config.nic_ip));
    }
    info!("announced {} on {} ports", config.nic_ip, ports.len());
    let mut quiet = 0u32;
    loop {
        let mut busy = false;
        for port in ports.iter_mut() {
            port.acknowledge_interrupt();
            while port.receive(|_frame| {}) {
                busy = true;
            }
        }
        if busy {
            quiet = 0;
        } else {
            quiet += 1;
            if quiet > SPIN_PASSES {
                idle(MAX_SLEEP_NS);
            }
        }
    }
}

/// The loop of cores 1.. .
pub fn secondary(_core: usize) -> ! {
    loop {
        idle(MAX_SLEEP_NS);
    }
}
