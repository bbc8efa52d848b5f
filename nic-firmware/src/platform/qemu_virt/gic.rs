//! The GICv2, used only to wake idle cores: interrupts stay masked in PSTATE (no handler runs);
//! an enabled, pending interrupt ends a WFI, and the woken core acknowledges it by hand.
//!
//! Wake-up sources: the core's virtual timer (a deadline), SGI 0 from another core (work was
//! queued for it), and the virtio-mmio ports' interrupts on core 0 (a frame arrived).
#![cfg(target_os = "none")]

use core::mem::offset_of;
use core::ptr::NonNull;

use safe_mmio::fields::{ReadOnly, ReadPureWrite, WriteOnly};
use safe_mmio::{field, UniqueMmioPointer};
use spin::Mutex;

use super::{map, timer};

/// The software-generated interrupt that wakes a core.
pub const WAKE_SGI: u32 = 0;
/// Interrupt IDs at and above this are "no interrupt pending" (1023) or reserved.
const SPURIOUS: u32 = 1020;

/// GICv2 distributor registers (GIC architecture spec, 4.3).
#[repr(C)]
struct Distributor {
    /// 0x000 GICD_CTLR.
    ctlr: ReadPureWrite<u32>,
    _reserved0: [u32; 63],
    /// 0x100 GICD_ISENABLERn: one bit per interrupt; word 0 (SGIs, PPIs) is banked per core.
    isenabler: [ReadPureWrite<u32>; 32],
    _reserved1: [u32; 160],
    /// 0x400 GICD_IPRIORITYRn: one byte per interrupt.
    ipriorityr: [ReadPureWrite<u32>; 255],
    _reserved2: u32,
    /// 0x800 GICD_ITARGETSRn: one byte per interrupt, bit n = core n.
    itargetsr: [ReadPureWrite<u32>; 255],
    _reserved3: [u32; 193],
    /// 0xF00 GICD_SGIR.
    sgir: WriteOnly<u32>,
}

const _: () = {
    assert!(offset_of!(Distributor, isenabler) == 0x100);
    assert!(offset_of!(Distributor, ipriorityr) == 0x400);
    assert!(offset_of!(Distributor, itargetsr) == 0x800);
    assert!(offset_of!(Distributor, sgir) == 0xf00);
};

/// GICv2 CPU interface registers, banked per core (GIC architecture spec, 4.4).
#[repr(C)]
struct CpuInterface {
    /// 0x00 GICC_CTLR.
    ctlr: ReadPureWrite<u32>,
    /// 0x04 GICC_PMR: interrupts with a priority value below this are signalled.
    pmr: ReadPureWrite<u32>,
    /// 0x08 GICC_BPR.
    bpr: ReadPureWrite<u32>,
    /// 0x0C GICC_IAR: reading acknowledges the highest-priority pending interrupt.
    iar: ReadOnly<u32>,
    /// 0x10 GICC_EOIR.
    eoir: WriteOnly<u32>,
}

const _: () = assert!(offset_of!(CpuInterface, iar) == 0x0c);

static DISTRIBUTOR: Mutex<Option<UniqueMmioPointer<'static, Distributor>>> = Mutex::new(None);

fn cpu_interface() -> UniqueMmioPointer<'static, CpuInterface> {
    // SAFETY: map::GICC is the CPU interface, mapped as device memory. Its registers are banked:
    // each core reaches its own copy, so pointers made on different cores never alias, and each
    // core makes one only for the duration of a call.
    unsafe { UniqueMmioPointer::new(NonNull::new(map::GICC as *mut CpuInterface).unwrap()) }
}

/// Core 0: enables the distributor and this core's interface. Other cores call [`init_core`].
pub fn init() {
    // SAFETY: map::GICD is the distributor, mapped as device memory; this is the only pointer to
    // it, kept behind `DISTRIBUTOR`'s lock.
    let gicd =
        unsafe { UniqueMmioPointer::new(NonNull::new(map::GICD as *mut Distributor).unwrap()) };
    *DISTRIBUTOR.lock() = Some(gicd);
    with_distributor(|d| field!(*d, ctlr).write(1));
    init_core();
}

/// Enables this core's wake-up sources (its banked SGI/PPI enables) and CPU interface.
pub fn init_core() {
    with_distributor(|d| {
        let mut priorities = field!(*d, ipriorityr);
        for word in 0..8 {
            // Priority 0x80 for SGIs and PPIs: above the mask set below.
            if let Some(mut p) = priorities.get(word) {
                p.write(0x8080_8080);
            }
        }
        if let Some(mut enable) = field!(*d, isenabler).get(0) {
            enable.write(1 << WAKE_SGI | 1 << timer::VIRTUAL_TIMER_IRQ);
        }
    });
    let mut gicc = cpu_interface();
    field!(gicc, pmr).write(0xf0);
    field!(gicc, bpr).write(0);
    field!(gicc, ctlr).write(1);
}

/// Routes shared interrupt `irq` (a device's) to core 0 and enables it.
pub fn enable_device_irq(irq: u32) {
    let word = (irq / 32) as usize;
    let byte = (irq % 4) * 8;
    with_distributor(|d| {
        if let Some(mut priority) = field!(*d, ipriorityr).get((irq / 4) as usize) {
            priority.modify(|v| v & !(0xff << byte) | (0x80 << byte));
        }
        if let Some(mut target) = field!(*d, itargetsr).get((irq / 4) as usize) {
            target.modify(|v| v & !(0xff << byte) | (1 << byte));
        }
        if let Some(mut enable) = field!(*d, isenabler).get(word) {
            enable.write(1 << (irq % 32));
        }
    });
}

/// Wakes core `core` (no effect if it is not waiting).
pub fn wake(core: usize) {
    let targets = 1u32 << (16 + (core % 8));
    with_distributor(|d| field!(*d, sgir).write(targets | WAKE_SGI));
}

/// Acknowledges what is pending on this core's interface (after a WFI ended). Bounded: a
/// source whose line is still high comes straight back, and must not keep the core here.
pub fn acknowledge_all() {
    const MOST: usize = 64;
    let mut gicc = cpu_interface();
    for _ in 0..MOST {
        let iar = field!(gicc, iar).read();
        if iar & 0x3ff >= SPURIOUS {
            break;
        }
        field!(gicc, eoir).write(iar);
    }
}

fn with_distributor(body: impl FnOnce(&mut UniqueMmioPointer<'static, Distributor>)) {
    if let Some(d) = DISTRIBUTOR.lock().as_mut() {
        body(d);
    }
}
