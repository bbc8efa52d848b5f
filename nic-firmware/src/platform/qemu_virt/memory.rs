//! The memory of each board the image is linked for, and the boot page table built from it: the
//! 1 GiB-block identity map the entry code turns the MMU on with, before any Rust code runs.
//!
//! A block that holds the board's RAM (where `linker/<board>.ld` puts the image, its stacks and
//! its heap) is normal write-back memory; a block that holds a device window the board layer
//! touches before its final page table (PCI enumeration runs on this map) is device memory;
//! every other block is unmapped, so a stray access faults instead of reaching something. The
//! cargo feature of the build (`board-bluefield`, `board-liquidio3`, none for qemu-virt)
//! picks [`BOARD`], as `build.rs` picks the linker script; the tests below check that every
//! board's linker script puts the image and the heap inside that board's RAM, and that its
//! blocks come out as intended.

use super::bar_window::Window;

/// Bytes of one block of the boot page table (a level-1 entry with a 4 KiB granule).
pub const BLOCK: u64 = 1 << 30;
/// Entries of the boot page table: a 39-bit address space (aarch64-rt's TCR sets T0SZ = 25).
pub const BLOCKS: usize = 512;

/// How the boot page table maps one block.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Block {
    /// Not mapped: an access faults.
    Unmapped,
    /// Device memory (never cached, never executed).
    Device,
    /// Normal write-back memory shared between the cores.
    Normal,
}

/// What the boot page table needs to know about a board.
#[derive(Clone, Copy, Debug)]
pub struct BoardMemory {
    /// The board's name, as `cargo xtask build-fw --board` spells it.
    pub name: &'static str,
    /// The RAM the image runs in: from its start to `heap_end` in the board's linker script.
    pub ram: Window,
    /// The device windows the board layer uses before the final page table: GIC, UART, fw_cfg,
    /// virtio-mmio, the PCI windows and ECAM. The board layer is still qemu-virt's on every
    /// board (docs/firmware.md, "Real boards"), so these are QEMU's addresses.
    pub devices: &'static [Window],
}

/// QEMU `virt`'s devices below 1 GiB: flash, GIC, UART, fw_cfg, virtio-mmio and the 32-bit PCI
/// window.
const QEMU_LOW_DEVICES: Window = Window {
    start: 0,
    end: 0x4000_0000,
};
/// QEMU `virt`'s PCIe ECAM (256 buses of 1 MiB).
const QEMU_ECAM: Window = Window {
    start: 0x40_1000_0000,
    end: 0x40_2000_0000,
};

#[allow(dead_code)] // Each build uses one board's memory; the tests use them all.
impl BoardMemory {
    /// `qemu-system-aarch64 -M virt -m 256M`: RAM from 1 GiB (QEMU's device tree at its start,
    /// the image 512 KiB in).
    pub const QEMU_VIRT: BoardMemory = BoardMemory {
        name: "qemu-virt",
        ram: Window {
            start: 0x4000_0000,
            end: 0x4000_0000 + (256 << 20),
        },
        devices: &[QEMU_LOW_DEVICES, QEMU_ECAM],
    };

    /// NVIDIA BlueField: DRAM from 2 GiB; the image uses its first 1 GiB. Nothing is mapped at
    /// 1..2 GiB (DRAM on qemu-virt, not on BlueField).
    pub const BLUEFIELD: BoardMemory = BoardMemory {
        name: "bluefield",
        ram: Window {
            start: 0x8000_0000,
            end: 0x8000_0000 + BLOCK,
        },
        devices: &[QEMU_LOW_DEVICES, QEMU_ECAM],
    };

    /// Marvell LiquidIO III (OCTEON TX2-class): DRAM from address 0; the image uses its first
    /// 1 GiB. QEMU's low device window lies inside that DRAM here, so it is not a device block:
    /// the board layer cannot run on this card until it has the card's own devices (whose
    /// registers sit far above the 39-bit identity map).
    pub const LIQUIDIO3: BoardMemory = BoardMemory {
        name: "liquidio3",
        ram: Window {
            start: 0,
            end: BLOCK,
        },
        devices: &[QEMU_ECAM],
    };

    /// Every board, in the order of `cargo xtask build-fw --board all`.
    pub const ALL: [BoardMemory; 3] = [Self::QEMU_VIRT, Self::BLUEFIELD, Self::LIQUIDIO3];

    /// How block `index` (addresses `index` GiB to `index + 1` GiB) is mapped: RAM wins over a
    /// device window in the same block.
    pub const fn block(&self, index: usize) -> Block {
        let block = Window {
            start: index as u64 * BLOCK,
            end: (index as u64 + 1) * BLOCK,
        };
        if overlaps(block, self.ram) {
            return Block::Normal;
        }
        let mut i = 0;
        while i < self.devices.len() {
            if overlaps(block, self.devices[i]) {
                return Block::Device;
            }
            i += 1;
        }
        Block::Unmapped
    }

    /// The boot page table: for each block, its address ORed with `device` or `normal` (the
    /// descriptor attribute bits), or 0 when unmapped.
    pub const fn boot_table(&self, device: usize, normal: usize) -> [usize; BLOCKS] {
        let mut table = [0usize; BLOCKS];
        let mut index = 0;
        while index < BLOCKS {
            let address = (index as u64 * BLOCK) as usize;
            table[index] = match self.block(index) {
                Block::Unmapped => 0,
                Block::Device => device | address,
                Block::Normal => normal | address,
            };
            index += 1;
        }
        table
    }
}

const fn overlaps(a: Window, b: Window) -> bool {
    a.start < b.end && b.start < a.end
}

/// The board this image is built for (the cargo feature; the same precedence as `build.rs`).
#[cfg(feature = "board-bluefield")]
pub const BOARD: BoardMemory = BoardMemory::BLUEFIELD;
/// The board this image is built for (the cargo feature; the same precedence as `build.rs`).
#[cfg(all(feature = "board-liquidio3", not(feature = "board-bluefield")))]
pub const BOARD: BoardMemory = BoardMemory::LIQUIDIO3;
/// The board this image is built for (the cargo feature; the same precedence as `build.rs`).
#[cfg(not(any(feature = "board-bluefield", feature = "board-liquidio3")))]
pub const BOARD: BoardMemory = BoardMemory::QEMU_VIRT;

#[cfg(test)]
mod tests {
    use super::*;

    /// A board's linker script: (image origin, heap end).
    fn linker_script(board: &str) -> (u64, u64) {
        let text = match board {
            "qemu-virt" => include_str!("../../../../linker/qemu-virt.ld"),
            "bluefield" => include_str!("../../../../linker/bluefield.ld"),
            "liquidio3" => include_str!("../../../../linker/liquidio3.ld"),
            _ => panic!("no linker script for {board}"),
        };
        let origin = text
            .split("ORIGIN = ")
            .nth(1)
            .and_then(|rest| rest.split(',').next())
            .map(|n| number(n.trim()))
            .expect("ORIGIN in the linker script");
        let heap_end = text
            .lines()
            .find_map(|line| line.trim().strip_prefix("heap_end = "))
            .map(|expr| {
                expr.trim_end_matches(';')
                    .split('+')
                    .map(|term| number(term.trim()))
                    .sum()
            })
            .expect("heap_end in the linker script");
        (origin, heap_end)
    }

    /// `0x...`, `N`, `NM` or `NK` as the linker scripts write them.
    fn number(text: &str) -> u64 {
        if let Some(hex) = text.strip_prefix("0x") {
            return u64::from_str_radix(hex, 16).unwrap();
        }
        if let Some(mib) = text.strip_suffix('M') {
            return mib.parse::<u64>().unwrap() << 20;
        }
        if let Some(kib) = text.strip_suffix('K') {
            return kib.parse::<u64>().unwrap() << 10;
        }
        text.parse().unwrap()
    }

    #[test]
    fn every_linker_script_puts_the_image_and_heap_in_its_boards_ram() {
        for board in BoardMemory::ALL {
            let (origin, heap_end) = linker_script(board.name);
            assert!(
                board.ram.start <= origin && origin < board.ram.end,
                "{}: image at {origin:#x} outside RAM {:x?}",
                board.name,
                board.ram
            );
            assert_eq!(heap_end, board.ram.end, "{}: heap end", board.name);
            let first = (origin / BLOCK) as usize;
            let last = ((heap_end - 1) / BLOCK) as usize;
            for block in first..=last {
                assert_eq!(
                    board.block(block),
                    Block::Normal,
                    "{} block {block}",
                    board.name
                );
            }
        }
    }

    fn blocks(board: &BoardMemory, kind: Block) -> Vec<usize> {
        (0..BLOCKS).filter(|&b| board.block(b) == kind).collect()
    }

    #[test]
    fn each_board_maps_its_ram_normal_its_devices_device_and_nothing_else() {
        let virt = BoardMemory::QEMU_VIRT;
        assert_eq!(blocks(&virt, Block::Normal), [1]);
        assert_eq!(blocks(&virt, Block::Device), [0, 256]);
        let bluefield = BoardMemory::BLUEFIELD;
        assert_eq!(blocks(&bluefield, Block::Normal), [2]);
        assert_eq!(blocks(&bluefield, Block::Device), [0, 256]);
        let liquidio = BoardMemory::LIQUIDIO3;
        assert_eq!(blocks(&liquidio, Block::Normal), [0]);
        assert_eq!(blocks(&liquidio, Block::Device), [256]);
    }

    #[test]
    fn the_boot_table_carries_each_blocks_address_and_attributes() {
        let table = BoardMemory::BLUEFIELD.boot_table(0xd, 0x70d);
        assert_eq!(table[0], 0xd);
        assert_eq!(table[1], 0);
        assert_eq!(table[2], 0x8000_0000 | 0x70d);
        assert_eq!(table[256], 0x40_0000_0000 | 0xd);
        assert_eq!(table.iter().filter(|&&entry| entry != 0).count(), 3);
    }

    #[test]
    #[cfg(not(any(feature = "board-bluefield", feature = "board-liquidio3")))]
    fn the_board_of_this_build_is_qemu_virt_without_a_board_feature() {
        assert_eq!(BOARD.name, "qemu-virt");
    }
}
