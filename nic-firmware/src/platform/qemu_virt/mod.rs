//! The qemu-virt board: `qemu-system-aarch64 -M virt,gic-version=2 -cpu max` as an emulated
//! SmartNIC, with virtio-net ports as the NIC's MAC ports and an ivshmem BAR as the PCIe window
//! shared with the host.
//!
//! Boot order on core 0 (docs/firmware.md tells the whole story):
//! 1. aarch64-rt's entry code: MMU on with a 1 GiB-block identity map built from the board's
//!    memory ([`memory`]), FP/SIMD on, bss zeroed, boot stack, exception vectors
//!    ([`exceptions`]).
//! 2. [`heap`], then the PL011 UART behind `log` ([`uart`]).
//! 3. PCIe: ECAM enumeration, BARs sized and assigned ([`pci`], [`bar_window`]).
//! 4. The final identity map, 4 KiB granularity: RAM and the shared BAR normal cacheable memory,
//!    devices device memory ([`mmu`]); then the host channel on the shared BAR ([`host_link`]).
//! 5. The boot configuration: from the channel's boot area if the host wrote one, else QEMU's
//!    `fw_cfg` file ([`fw_cfg`]); bad configuration stops here.
//! 6. The GIC and timer for idling ([`gic`], [`timer`]), then the virtio-net ports
//!    ([`virtio_net`], whose resets reuse their virtqueue pages: [`dma_regions`]).
//! 7. Secondary cores through PSCI CPU_ON ([`cores`]), then every core runs ([`run`]); a
//!    diagnostic switch, off unless QEMU is given one, can provoke a fault now ([`diagnostic`]).
//!
//! Memory map (QEMU's `virt` machine with `highmem` on):
//!
//! | what | address | mapped as |
//! |---|---|---|
//! | GICv2 distributor, CPU interface | 0x0800_0000, 0x0801_0000 | device |
//! | PL011 UART | 0x0900_0000 | device |
//! | fw_cfg | 0x0902_0000 | device |
//! | virtio-mmio slots (32 x 0x200) | 0x0a00_0000 | device |
//! | PCI MMIO window, registers (non-prefetchable BARs) | 0x1000_0000..0x2000_0000 | device |
//! | PCI MMIO window, prefetchable BARs (the shared region) | 0x2000_0000..0x3eff_0000 | normal |
//! | RAM (image, stacks, heap) | 0x4000_0000.. | normal |
//! | PCIe ECAM (256 buses) | 0x40_1000_0000 | device |

pub mod bar_window;
pub mod diagnostic;
pub mod dma_regions;
pub mod memory;
// The modules below build only for the bare-metal target (each starts with `#![cfg]`).
mod board;
mod cores;
mod exceptions;
mod fw_cfg;
mod gic;
mod heap;
mod host_link;
mod mmu;
mod pci;
mod power;
mod run;
mod timer;
mod uart;
mod virtio_net;

/// Physical addresses of the board's devices and windows.
#[allow(dead_code)] // Some are only used by the bare-metal build.
pub mod map {
    use super::bar_window::Window;

    /// GICv2 distributor.
    pub const GICD: usize = 0x0800_0000;
    /// GICv2 CPU interface.
    pub const GICC: usize = 0x0801_0000;
    /// PL011 UART.
    pub const UART: usize = 0x0900_0000;
    /// QEMU fw_cfg (MMIO interface).
    pub const FW_CFG: usize = 0x0902_0000;
    /// First virtio-mmio slot.
    pub const VIRTIO_MMIO: usize = 0x0a00_0000;
    /// virtio-mmio slot count and stride.
    pub const VIRTIO_MMIO_SLOTS: usize = 32;
    /// Bytes between virtio-mmio slots.
    pub const VIRTIO_MMIO_STRIDE: usize = 0x200;
    /// First SPI of the virtio-mmio slots (slot n raises GIC interrupt 48 + n).
    pub const VIRTIO_MMIO_IRQ: u32 = 48;
    /// Everything up to the PCI window holds devices.
    pub const DEVICES: Window = Window {
        start: 0x0800_0000,
        end: 0x1000_0000,
    };
    /// The PCI window part for registers (non-prefetchable BARs).
    pub const PCI_REGISTERS: Window = Window {
        start: 0x1000_0000,
        end: 0x2000_0000,
    };
    /// The PCI window part for prefetchable BARs: ivshmem's shared memory lands here.
    pub const PCI_PREFETCHABLE: Window = Window {
        start: 0x2000_0000,
        end: 0x3eff_0000,
    };
    /// RAM start of the board the image is built for (on qemu-virt the device tree QEMU writes
    /// sits at its very start).
    pub const RAM: u64 = super::memory::BOARD.ram.start;
    /// An address no page table maps on any board (4 GiB): what the `fault-after-boot`
    /// diagnostic reads.
    pub const UNMAPPED: usize = 0x1_0000_0000;
    /// PCIe ECAM: 1 MiB of configuration space per bus, 256 buses.
    pub const ECAM: Window = Window {
        start: 0x40_1000_0000,
        end: 0x40_2000_0000,
    };
}

#[cfg(target_os = "none")]
mod boot {
    //! Core 0's boot sequence, from aarch64-rt's entry to the run loop.

    use aarch64_rt::{entry, initial_pagetable, InitialPagetable};
    use log::{error, info, warn};
    use nic_firmware::boot_config::BootConfig;
    use nic_firmware::wire::Ipv4Address;

    use super::power::{self, ExitCode};
    use super::{cores, fw_cfg, gic, heap, host_link, mmu, pci, run, timer, uart, virtio_net};

    /// The fw_cfg file that holds the boot configuration.
    const CONFIG_FILE: &str = "opt/e3/nic.conf";

    // The map the entry code turns the MMU on with, before any Rust code runs: 1 GiB blocks
    // following the board's memory (RAM normal, the board layer's device windows device, the
    // rest unmapped), so the PCI window is device memory until `mmu::install` refines it.
    initial_pagetable!(
        InitialPagetable(super::memory::BOARD.boot_table(mmu::DEVICE.bits(), mmu::NORMAL.bits())),
        mmu::MAIR.0
    );

    /// Pages of core 0's stack (64 KiB, as much as each secondary core has): the runtime and the
    /// ports are built on the heap, so booting takes 10 KiB without a host channel and 21 KiB
    /// with one (its host path is built, then boxed); the ready line reports the high-water mark.
    const BOOT_STACK_PAGES: usize = 16;

    entry!(primary, BOOT_STACK_PAGES);

    /// Core 0 starts here with the MMU on (x0 holds the device tree address, unused: the qemu-virt
    /// addresses are fixed).
    fn primary(_dtb: u64, _: u64, _: u64, _: u64) -> ! {
        cores::set_this_core(0);
        heap::init();
        uart::init();
        start()
    }

    /// Brings the board up and runs; never returns.
    fn start() -> ! {
        info!(
            "e3 nic-firmware {} ({}), image for {}, qemu-virt board layer: timer {} Hz",
            env!("CARGO_PKG_VERSION"),
            option_env!("E3_GIT_REVISION").unwrap_or("unknown revision"),
            super::memory::BOARD.name,
            timer::frequency()
        );
        let pci = pci::enumerate().unwrap_or_else(|e| fail("PCIe enumeration failed", &e));
        mmu::install().unwrap_or_else(|e| fail("could not build the page table", &e));
        let channel = pci
            .shared
            .and_then(|region| match host_link::attach(region) {
                Ok(channel) => Some(channel),
                Err(e) => {
                    warn!("host channel unavailable: the shared region is not a channel: {e}");
                    None
                }
            });
        let config = read_config(channel);
        let services = match config.instantiate_services(Some(heap::free)) {
            Ok(services) => services,
            Err(e) => {
                error!("{e}");
                power::exit(ExitCode::BadConfig)
            }
        };
        info!(
            "config: nic {} host {} services {}",
            config.nic_ip,
            config.host_ip,
            config.services.len()
        );
        gic::init();
        let (mut ports, interrupt_lines) = virtio_net::probe(config.mac);
        if ports.is_empty() {
            fail("no virtio-net port", &"give QEMU -device virtio-net-device");
        }
        let nic_ip = Ipv4Address(config.nic_ip.octets());
        run::announce(&mut ports, nic_ip);
        let online = cores::start_secondaries(config.cores);
        let port_count = ports.len();
        let host = host_link::host_path(channel);
        if let Err(e) = run::start(&config, services, ports, host, online) {
            fail("the runtime did not start", &e);
        }
        info!(
            "ready: {} cores, {} ports, shared region {} KiB, heap {} KiB free, boot stack {} of {} \
             KiB used, booted in {} us",
            online,
            port_count,
            pci.shared.map_or(0, |region| region.size / 1024),
            heap::free() / 1024,
            cores::boot_stack_used() / 1024,
            BOOT_STACK_PAGES * 4,
            timer::now_ns() / 1000
        );
        super::diagnostic::run_requested();
        run::primary(interrupt_lines)
    }

    /// The boot configuration: the one the host wrote into the channel, else the fw_cfg file.
    fn read_config(channel: Option<&pcie_channel::Channel>) -> BootConfig {
        let from_channel = match channel.map(host_link::boot_config) {
            Some(Ok(bytes)) => bytes,
            Some(Err(e)) => {
                error!("boot configuration refused: host channel: {e}");
                power::exit(ExitCode::BadConfig)
            }
            None => None,
        };
        let bytes = match from_channel {
            Some(bytes) => {
                info!(
                    "boot configuration from the host channel ({} bytes)",
                    bytes.len()
                );
                bytes
            }
            None => match fw_cfg::read_file(CONFIG_FILE) {
                Ok(bytes) => {
                    info!(
                        "boot configuration from fw_cfg {CONFIG_FILE} ({} bytes)",
                        bytes.len()
                    );
                    bytes
                }
                Err(e) => {
                    error!(
                        "boot configuration refused: none in the host channel, and fw_cfg file \
                         {CONFIG_FILE}: {e}"
                    );
                    power::exit(ExitCode::BadConfig)
                }
            },
        };
        match BootConfig::parse(&bytes) {
            Ok(config) => config,
            Err(e) => {
                error!("{e}");
                power::exit(ExitCode::BadConfig)
            }
        }
    }

    fn fail(what: &str, why: &dyn core::fmt::Display) -> ! {
        error!("boot failed: {what}: {why}");
        power::exit(ExitCode::BootFailed)
    }
}
