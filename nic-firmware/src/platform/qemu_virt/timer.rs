//! The ARM generic timer: the virtual counter for time, the virtual timer to wake idle cores.
#![cfg(target_os = "none")]

use core::arch::asm;

/// GIC interrupt of the EL1 virtual timer (PPI 11).
pub const VIRTUAL_TIMER_IRQ: u32 = 27;

/// Counter ticks per second (CNTFRQ_EL0: 1 GHz on QEMU 10, 62.5 MHz on QEMU 7.2).
pub fn frequency() -> u64 {
    let hz: u64;
    // SAFETY: reading CNTFRQ_EL0 has no side effects.
    unsafe { asm!("mrs {}, cntfrq_el0", out(reg) hz, options(nomem, nostack)) };
    hz.max(1)
}

/// The virtual counter, in ticks since the board started.
pub fn ticks() -> u64 {
    let ticks: u64;
    // SAFETY: the ISB keeps the counter read from being hoisted above earlier instructions;
    // reading CNTVCT_EL0 has no side effects.
    unsafe { asm!("isb", "mrs {}, cntvct_el0", out(reg) ticks, options(nomem, nostack)) };
    ticks
}

/// Nanoseconds since the board started.
pub fn now_ns() -> u64 {
    ticks_to_ns(ticks())
}

/// Converts counter ticks to nanoseconds.
pub fn ticks_to_ns(ticks: u64) -> u64 {
    (u128::from(ticks) * 1_000_000_000 / u128::from(frequency())) as u64
}

/// Converts nanoseconds to counter ticks.
pub fn ns_to_ticks(ns: u64) -> u64 {
    (u128::from(ns) * u128::from(frequency()) / 1_000_000_000) as u64
}

/// Arms this core's virtual timer to fire at counter value `deadline`.
pub fn arm(deadline: u64) {
    // SAFETY: CNTV_CVAL_EL0 and CNTV_CTL_EL0 belong to this core's timer; ENABLE=1, IMASK=0.
    unsafe {
        asm!(
            "msr cntv_cval_el0, {deadline}",
            "msr cntv_ctl_el0, {ctl}",
            "isb",
            deadline = in(reg) deadline,
            ctl = in(reg) 1u64,
            options(nomem, nostack),
        );
    }
}

/// Disarms this core's virtual timer, which drops its interrupt line.
pub fn disarm() {
    // SAFETY: CNTV_CTL_EL0 belongs to this core's timer; ENABLE=0, IMASK=1.
    unsafe {
        asm!("msr cntv_ctl_el0, {ctl}", "isb", ctl = in(reg) 2u64, options(nomem, nostack));
    }
}
