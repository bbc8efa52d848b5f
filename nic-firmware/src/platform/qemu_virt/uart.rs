//! The PL011 UART behind the `log` crate: one line per record, stamped with the time since boot
//! and the core that logged it.
#![cfg(target_os = "none")]

use core::fmt::Write;
use core::ptr::NonNull;

use arm_pl011_uart::{
    DataBits, LineConfig, PL011Registers, Parity, StopBits, Uart, UniqueMmioPointer,
};
use log::{Level, LevelFilter, Log, Metadata, Record};
use spin::Mutex;

use super::{cores, map, timer};

/// QEMU's PL011 reference clock (any divisor works on QEMU; real boards set theirs).
const UART_CLOCK_HZ: u32 = 24_000_000;
const BAUD: u32 = 115_200;

static UART: Mutex<Option<Uart<'static>>> = Mutex::new(None);
static LOGGER: UartLogger = UartLogger;

fn registers() -> UniqueMmioPointer<'static, PL011Registers> {
    // SAFETY: map::UART is the PL011's MMIO block, mapped as device memory by both page tables.
    // Ownership is kept unique by `UART` (and the panic path's `emergency`, which only runs when
    // the firmware is stopping).
    unsafe { UniqueMmioPointer::new(NonNull::new(map::UART as *mut PL011Registers).unwrap()) }
}

/// Enables the UART and installs the logger. Core 0 calls this once.
pub fn init() {
    let mut uart = Uart::new(registers());
    let line = LineConfig {
        data_bits: DataBits::Bits8,
        parity: Parity::None,
        stop_bits: StopBits::One,
    };
    // The divisor is in range for these constants, so this cannot fail; if it ever did, QEMU's
    // PL011 still transmits with the reset settings.
    let _ = uart.enable(line, BAUD, UART_CLOCK_HZ);
    *UART.lock() = Some(uart);
    if log::set_logger(&LOGGER).is_ok() {
        log::set_max_level(LevelFilter::Info);
    }
}

/// Writes to the UART even if another core holds it: for the last words of a fault or a panic.
pub fn emergency(args: core::fmt::Arguments<'_>) {
    if let Some(mut guard) = UART.try_lock() {
        if let Some(uart) = guard.as_mut() {
            let _ = uart.write_fmt(args);
            return;
        }
    }
    let _ = Uart::new(registers()).write_fmt(args);
}

struct UartLogger;

impl Log for UartLogger {
    fn enabled(&self, metadata: &Metadata<'_>) -> bool {
        // The virtio driver's start-up chatter (negotiated features) is debug detail here.
        metadata.level() <= Level::Warn || !metadata.target().starts_with("virtio_drivers")
    }

    fn log(&self, record: &Record<'_>) {
        if !self.enabled(record.metadata()) {
            return;
        }
        let micros = timer::now_ns() / 1000;
        let mut guard = UART.lock();
        if let Some(uart) = guard.as_mut() {
            let _ = writeln!(
                uart,
                "[{:>6}.{:06}] core{} {:<5} {}",
                micros / 1_000_000,
                micros % 1_000_000,
                cores::this_core(),
                record.level(),
                record.args()
            );
        }
    }

    fn flush(&self) {}
}
