//! QEMU's fw_cfg device: named files the user hands to the board with
//! `-fw_cfg name=opt/e3/nic.conf,file=PATH`. Reads go through the DMA interface (one MMIO exit
//! per transfer) when the device offers it, else a byte at a time through the data register.
#![cfg(target_os = "none")]

use alloc::vec::Vec;
use core::fmt;
use core::mem::offset_of;
use core::ptr::NonNull;
use core::sync::atomic::{fence, Ordering};

use safe_mmio::fields::{ReadOnly, WriteOnly};
use safe_mmio::{field, UniqueMmioPointer};

use super::map;

/// Selector of the "QEMU" signature.
const SIGNATURE: u16 = 0x0000;
/// Selector of the feature bitmap.
const FEATURES: u16 = 0x0001;
/// Feature bit: the DMA interface exists.
const FEATURE_DMA: u32 = 1 << 1;
/// Selector of the file directory.
const FILE_DIR: u16 = 0x0019;
/// Bytes of one directory entry: size (4), select (2), reserved (2), name (56).
const DIR_ENTRY: usize = 64;
/// Largest file read.
const MAX_FILE: usize = 64 * 1024;

/// fw_cfg MMIO registers (QEMU docs/specs/fw_cfg.rst, "MMIO interface").
#[repr(C)]
struct Registers {
    /// 0x0: data, read a byte at a time in stream order.
    data: ReadOnly<u8>,
    _reserved: [u8; 7],
    /// 0x8: selector, big-endian.
    selector: WriteOnly<u16>,
    _reserved1: [u8; 6],
    /// 0x10: DMA address, big-endian; writing it runs the transfer described there.
    dma: WriteOnly<u64>,
}

const _: () = assert!(offset_of!(Registers, selector) == 8);
const _: () = assert!(offset_of!(Registers, dma) == 0x10);

/// A DMA transfer description (all fields big-endian), read and updated by the device.
#[repr(C, align(16))]
struct DmaAccess {
    control: u32,
    length: u32,
    address: u64,
}

/// DMA control bits.
const DMA_ERROR: u32 = 1;
const DMA_READ: u32 = 2;

/// Why a file could not be read.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FwCfgError {
    /// No fw_cfg device (the signature is not "QEMU").
    NoDevice,
    /// No file of that name: QEMU was started without `-fw_cfg name=...`.
    NotFound,
    /// The file is larger than the firmware reads.
    TooLarge(usize),
}

impl fmt::Display for FwCfgError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            FwCfgError::NoDevice => f.write_str("no fw_cfg device on this board"),
            FwCfgError::NotFound => {
                f.write_str("not found (start QEMU with -fw_cfg name=opt/e3/nic.conf,file=PATH)")
            }
            FwCfgError::TooLarge(size) => write!(f, "{size} bytes, more than {MAX_FILE}"),
        }
    }
}

struct FwCfg {
    registers: UniqueMmioPointer<'static, Registers>,
    dma: bool,
}

impl FwCfg {
    fn open() -> Result<FwCfg, FwCfgError> {
        // SAFETY: map::FW_CFG is the fw_cfg MMIO block, mapped as device memory; only the boot
        // sequence on core 0 reads it, one `FwCfg` at a time.
        let registers =
            unsafe { UniqueMmioPointer::new(NonNull::new(map::FW_CFG as *mut Registers).unwrap()) };
        let mut device = FwCfg {
            registers,
            dma: false,
        };
        device.select(SIGNATURE);
        let mut signature = [0u8; 4];
        device.read(&mut signature);
        if &signature != b"QEMU" {
            return Err(FwCfgError::NoDevice);
        }
        device.select(FEATURES);
        let mut features = [0u8; 4];
        device.read(&mut features);
        device.dma = u32::from_le_bytes(features) & FEATURE_DMA != 0;
        Ok(device)
    }

    fn select(&mut self, selector: u16) {
        field!(self.registers, selector).write(selector.to_be());
    }

    fn read(&mut self, out: &mut [u8]) {
        if self.dma && self.read_dma(out) {
            return;
        }
        for byte in out {
            *byte = field!(self.registers, data).read();
        }
    }

    /// Reads `out.len()` bytes of the selected item by DMA; false if the device refused.
    fn read_dma(&mut self, out: &mut [u8]) -> bool {
        let mut access = DmaAccess {
            control: DMA_READ.to_be(),
            length: (out.len() as u32).to_be(),
            address: (out.as_mut_ptr() as u64).to_be(),
        };
        let pointer = &raw mut access;
        // Order the description's stores before the doorbell (the device reads it by DMA).
        fence(Ordering::SeqCst);
        field!(self.registers, dma).write((pointer as u64).to_be());
        fence(Ordering::SeqCst);
        // SAFETY: `access` is a live local; the device has finished with it (QEMU completes the
        // transfer inside the doorbell write) and only its control word is read back.
        let control = unsafe { (&raw const (*pointer).control).read_volatile() };
        u32::from_be(control) & DMA_ERROR == 0
    }

    fn read_be_u32(&mut self) -> u32 {
        let mut bytes = [0u8; 4];
        self.read(&mut bytes);
        u32::from_be_bytes(bytes)
    }
}

/// Reads the whole fw_cfg file called `name`.
pub fn read_file(name: &str) -> Result<Vec<u8>, FwCfgError> {
    let mut device = FwCfg::open()?;
    device.select(FILE_DIR);
    let count = device.read_be_u32();
    for _ in 0..count {
        let mut entry = [0u8; DIR_ENTRY];
        device.read(&mut entry);
        let size = u32::from_be_bytes([entry[0], entry[1], entry[2], entry[3]]) as usize;
        let selector = u16::from_be_bytes([entry[4], entry[5]]);
        let raw_name = &entry[8..];
        let length = raw_name
            .iter()
            .position(|&b| b == 0)
            .unwrap_or(raw_name.len());
        if &raw_name[..length] != name.as_bytes() {
            continue;
        }
        if size > MAX_FILE {
            return Err(FwCfgError::TooLarge(size));
        }
        let mut contents = alloc::vec![0u8; size];
        device.select(selector);
        device.read(&mut contents);
        return Ok(contents);
    }
    Err(FwCfgError::NotFound)
}
