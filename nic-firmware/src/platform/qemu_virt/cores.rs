//! The cores: which one is running (kept in TPIDR_EL1), and starting the secondaries through
//! PSCI CPU_ON, each on its own stack.
#![cfg(target_os = "none")]

use core::arch::asm;
use core::ptr::addr_of_mut;
use core::sync::atomic::{AtomicUsize, Ordering};

use aarch64_rt::{start_core, Stack};
use log::{info, warn};
use smccc::psci;
use smccc::Hvc;

use super::{gic, mmu, run, timer};

/// Most cores the board runs (GICv2 targets at most 8).
pub const MAX_CORES: usize = 8;
/// Pages of stack per secondary core (64 KiB).
const STACK_PAGES: usize = 16;
/// How long to wait for a started core to check in.
const CHECK_IN_TIMEOUT_NS: u64 = 2_000_000_000;

#[unsafe(link_section = ".stack.secondary")]
static mut STACKS: [Stack<STACK_PAGES>; MAX_CORES - 1] = [const { Stack::new() }; MAX_CORES - 1];

/// Cores running, core 0 included.
static ONLINE: AtomicUsize = AtomicUsize::new(1);

unsafe extern "C" {
    /// Bottom of core 0's stack (aarch64-rt's image.ld).
    static boot_stack_begin: u64;
    /// Top of core 0's stack.
    static boot_stack_end: u64;
}

/// Bytes of core 0's stack ever used: the stack starts zeroed (QEMU loads the image into zeroed
/// RAM), so the lowest non-zero word marks the deepest point reached.
pub fn boot_stack_used() -> usize {
    let bottom = &raw const boot_stack_begin;
    let top = &raw const boot_stack_end;
    let words = (top as usize - bottom as usize) / 8;
    let untouched = (0..words)
        // SAFETY: every word of [boot_stack_begin, boot_stack_end) is mapped RAM; reading the
        // stack's unused bottom races with nothing (only core 0 uses this stack, and it is here).
        .take_while(|&i| unsafe { bottom.add(i).read_volatile() } == 0)
        .count();
    (words - untouched) * 8
}

/// Records which core this is; each core calls it first thing.
pub fn set_this_core(core: usize) {
    // SAFETY: TPIDR_EL1 is a per-core scratch register nothing else uses.
    unsafe { asm!("msr tpidr_el1, {}", in(reg) core, options(nomem, nostack)) };
}

/// The index of the calling core (0 is the boot core).
pub fn this_core() -> usize {
    let core: usize;
    // SAFETY: reading TPIDR_EL1 has no side effects.
    unsafe { asm!("mrs {}, tpidr_el1", out(reg) core, options(nomem, nostack)) };
    core
}

/// Cores running.
pub fn online() -> usize {
    ONLINE.load(Ordering::Acquire)
}

/// MPIDR of core `index` on QEMU's virt machine with a GICv2 (eight cores per cluster).
fn mpidr(index: usize) -> u64 {
    (((index / 8) << 8) | (index % 8)) as u64
}

/// Starts cores 1.. (up to `limit` cores in all, or all the board has); returns how many run.
pub fn start_secondaries(limit: Option<u8>) -> usize {
    let wanted = limit.map_or(MAX_CORES, usize::from).min(MAX_CORES);
    for index in 1..wanted {
        // SAFETY: only the address is taken; no reference to the static is made.
        let stack = unsafe { addr_of_mut!(STACKS[index - 1]) };
        // SAFETY: STACKS[index - 1] belongs to core `index` alone, lives forever, and is mapped
        // normal memory in both the initial and the final map.
        let started = unsafe {
            start_core::<Hvc, _, STACK_PAGES>(mpidr(index), stack, move || secondary(index))
        };
        match started {
            Ok(()) => {}
            Err(psci::Error::InvalidParameters) => break, // No such core: the board has `index`.
            Err(e) => {
                warn!("core {index}: PSCI CPU_ON failed: {e:?}");
                break;
            }
        }
        let deadline = timer::now_ns() + CHECK_IN_TIMEOUT_NS;
        while online() <= index {
            if timer::now_ns() > deadline {
                warn!("core {index} did not check in");
                return online();
            }
            core::hint::spin_loop();
        }
    }
    info!("{} cores online", online());
    online()
}

/// Where secondary cores start, MMU on with the initial map.
fn secondary(index: usize) {
    set_this_core(index);
    mmu::activate_on_this_core();
    gic::init_core();
    ONLINE.fetch_add(1, Ordering::AcqRel);
    run::secondary(index)
}
