//! CPU exceptions: every one is fatal. The handler prints the syndrome (ESR), the faulting
//! address (FAR) and the instruction (ELR) on the UART and stops the board.
#![cfg(target_os = "none")]

use core::arch::asm;

use aarch64_rt::{exception_handlers, ExceptionHandlers, RegisterStateRef};

use super::power::{self, ExitCode};
use super::{cores, uart};

exception_handlers!(Exceptions);

struct Exceptions;

impl ExceptionHandlers for Exceptions {
    extern "C" fn sync_current(state: RegisterStateRef) {
        fatal("synchronous exception", &state)
    }

    extern "C" fn irq_current(state: RegisterStateRef) {
        fatal("unexpected IRQ (interrupts are masked)", &state)
    }

    extern "C" fn fiq_current(state: RegisterStateRef) {
        fatal("unexpected FIQ", &state)
    }

    extern "C" fn serror_current(state: RegisterStateRef) {
        fatal("SError", &state)
    }
}

fn fatal(what: &str, state: &RegisterStateRef) -> ! {
    if power::exiting() {
        uart::emergency(format_args!(
            "no semihosting (QEMU without -semihosting): powering off through PSCI\n"
        ));
        power::exit(ExitCode::Fault)
    }
    let (esr, far): (u64, u64);
    // SAFETY: reading the fault syndrome and address registers has no side effects.
    unsafe {
        asm!("mrs {}, esr_el1", out(reg) esr, options(nomem, nostack));
        asm!("mrs {}, far_el1", out(reg) far, options(nomem, nostack));
    }
    uart::emergency(format_args!(
        "FATAL core{}: {what}: ESR {esr:#018x} (class {:#04x}) FAR {far:#018x} ELR {:#018x} \
         SPSR {:#x}\n",
        cores::this_core(),
        esr >> 26,
        state.elr,
        state.spsr
    ));
    power::exit(ExitCode::Fault)
}

#[panic_handler]
fn panic(info: &core::panic::PanicInfo<'_>) -> ! {
    uart::emergency(format_args!("PANIC core{}: {info}\n", cores::this_core()));
    power::exit(ExitCode::Panic)
}
