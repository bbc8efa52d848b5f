//! The identity map every core runs on once the board is up: RAM and the prefetchable PCI window
//! (the shared region) normal write-back memory, devices and ECAM device memory, nothing else.
#![cfg(target_os = "none")]

use aarch64_paging::descriptor::El1Attributes as Attributes;
use aarch64_paging::idmap::IdMap;
use aarch64_paging::mair::{Mair, MairAttribute, NormalMemory};
use aarch64_paging::paging::{El1And0, MemoryRegion};
use aarch64_paging::MapError;
use spin::{Mutex, Once};

use super::bar_window::Window;
use super::{heap, map};

/// MAIR: index 0 device-nGnRE, index 1 normal write-back read/write-allocate.
pub const MAIR: Mair = Mair::EMPTY
    .with_attribute(0, MairAttribute::DEVICE_NGNRE)
    .with_attribute(
        1,
        MairAttribute::normal(
            NormalMemory::WriteBackNonTransientReadWriteAllocate,
            NormalMemory::WriteBackNonTransientReadWriteAllocate,
        ),
    );

/// Device memory: never executed, never cached.
pub const DEVICE: Attributes = Attributes::VALID
    .union(Attributes::ATTRIBUTE_INDEX_0)
    .union(Attributes::ACCESSED)
    .union(Attributes::UXN)
    .union(Attributes::PXN);

/// Normal memory, shared between the cores.
pub const NORMAL: Attributes = Attributes::VALID
    .union(Attributes::ATTRIBUTE_INDEX_1)
    .union(Attributes::INNER_SHAREABLE)
    .union(Attributes::ACCESSED)
    .union(Attributes::NON_GLOBAL);

/// Normal memory that holds data only (the shared region).
const DATA: Attributes = NORMAL.union(Attributes::UXN).union(Attributes::PXN);

/// The ASID of the one address space.
const ASID: usize = 1;
/// Root level for a 39-bit address space (aarch64-rt's TCR sets T0SZ = 25).
const ROOT_LEVEL: usize = 1;

static MAP: Once<Mutex<IdMap<El1And0>>> = Once::new();

/// Builds the final map and switches core 0 to it.
pub fn install() -> Result<(), MapError> {
    let mut idmap = IdMap::with_asid(ASID, ROOT_LEVEL, El1And0);
    let region = |w: Window| MemoryRegion::new(w.start as usize, w.end as usize);
    idmap.map_range(&region(map::DEVICES), DEVICE)?;
    idmap.map_range(&region(map::PCI_REGISTERS), DEVICE)?;
    idmap.map_range(&region(map::PCI_PREFETCHABLE), DATA)?;
    idmap.map_range(&region(map::ECAM), DEVICE)?;
    idmap.map_range(
        &MemoryRegion::new(map::RAM as usize, heap::ram_end()),
        NORMAL,
    )?;
    MAP.call_once(|| Mutex::new(idmap));
    activate_on_this_core();
    Ok(())
}

/// Switches the calling core to the final map (secondary cores call this first thing).
pub fn activate_on_this_core() {
    if let Some(map) = MAP.get() {
        // SAFETY: the map covers everything the firmware touches (its image, stacks and heap are
        // in RAM, mapped with the same attributes as in the initial map), and it lives in a
        // static, so it outlives every core that uses it.
        unsafe {
            map.lock().activate();
        }
    }
}
