//! Stopping the board: semihosting SYS_EXIT (QEMU exits with our code) or PSCI SYSTEM_OFF.
#![cfg(target_os = "none")]

use core::arch::asm;
use core::sync::atomic::{AtomicBool, Ordering};

use smccc::psci;
use smccc::Hvc;

/// Why the firmware stopped: the exit status QEMU reports under `-semihosting`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u32)]
pub enum ExitCode {
    /// The boot configuration was refused.
    BadConfig = 3,
    /// A device the board needs is missing or broken.
    BootFailed = 4,
    /// A CPU exception (data abort, undefined instruction, ...).
    Fault = 5,
    /// A Rust panic.
    Panic = 6,
}

static EXITING: AtomicBool = AtomicBool::new(false);

/// Whether the board is already stopping (a fault now is the semihosting trap failing).
pub fn exiting() -> bool {
    EXITING.load(Ordering::SeqCst)
}

/// Stops the whole board with `code`.
///
/// Under QEMU with `-semihosting` the process exits with `code`; without semihosting (a real
/// board, or QEMU without the option) the semihosting trap faults, and the second call made by
/// the fault handler powers off through PSCI instead.
pub fn exit(code: ExitCode) -> ! {
    if !EXITING.swap(true, Ordering::SeqCst) {
        semihosting_exit(code as u32);
    }
    let _ = psci::system_off::<Hvc>();
    loop {
        // SAFETY: waiting for an interrupt has no memory effects; the loop only runs if PSCI
        // refused to power off.
        unsafe { asm!("wfi", options(nomem, nostack)) };
    }
}

/// Semihosting SYS_EXIT with ADP_Stopped_ApplicationExit and an exit status.
fn semihosting_exit(status: u32) {
    const SYS_EXIT: u64 = 0x18;
    const ADP_STOPPED_APPLICATION_EXIT: u64 = 0x20026;
    let block = [ADP_STOPPED_APPLICATION_EXIT, u64::from(status)];
    // SAFETY: `hlt #0xf000` is the AArch64 semihosting trap: the debugger (QEMU) reads the two
    // words at x1 and ends the program; it does not return. Without semihosting it raises an
    // undefined-instruction exception, which the fault handler turns into a PSCI power-off.
    unsafe {
        asm!(
            "hlt #0xf000",
            in("x0") SYS_EXIT,
            in("x1") block.as_ptr(),
            options(nostack, readonly),
        );
    }
}
