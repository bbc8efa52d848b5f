//! Attaching validates the region before anything else touches it: every refusal is its own
//! typed error with a message that says what was wrong (docs/pcie-channel.md §3, "Attaching").
//! Each case takes a good region, breaks one thing the way a wrong host, a stale file or a
//! different build would, and checks the error and its message.

mod common;

use common::{crc32, RawPeer, SMALL};
use pcie_channel::header::{field, MAGIC};
use pcie_channel::{
    AttachError, Channel, Geometry, GeometryError, HeapRegion, Loopback, MapError, MappedChannel,
    Role,
};

/// Attaches a fresh NIC-side view of `len` bytes at `base` and drops it.
fn attach_at(base: *mut u8, len: usize) -> Result<(), AttachError> {
    // SAFETY: every caller passes memory of a live `Loopback` or `HeapRegion` of at least `len`
    // bytes (or a null or misaligned pointer, refused before any access); the view is dropped
    // before that memory.
    unsafe { Channel::attach_raw(base, len, Role::Nic) }.map(drop)
}

fn attach(lo: &Loopback) -> Result<(), AttachError> {
    attach_at(lo.base(), lo.len())
}

/// The error and its message.
fn refused(result: Result<(), AttachError>) -> (AttachError, String) {
    let error = result.expect_err("the region must be refused");
    let message = error.to_string();
    (error, message)
}

#[test]
fn a_good_region_attaches() {
    let lo = Loopback::new(SMALL).unwrap();
    assert_eq!(attach(&lo), Ok(()));
}

#[test]
fn a_misaligned_or_null_base_is_refused() {
    let lo = Loopback::new(SMALL).unwrap();
    for base in [lo.base().wrapping_add(8), std::ptr::null_mut()] {
        let (error, message) = refused(attach_at(base, lo.len() - 8));
        assert_eq!(error, AttachError::Misaligned);
        assert_eq!(message, "region base is not 64-byte aligned");
    }
    let memory = HeapRegion::new(SMALL.region_bytes() + 64);
    // SAFETY: refused on the alignment before any access.
    let created =
        unsafe { Channel::create_raw(memory.as_mut_ptr().add(32), SMALL.region_bytes(), SMALL) };
    assert_eq!(created.map(drop), Err(AttachError::Misaligned));
}

#[test]
fn a_region_smaller_than_the_header_or_the_layout_is_refused() {
    let lo = Loopback::new(SMALL).unwrap();
    let (error, message) = refused(attach_at(lo.base(), 0x800));
    assert_eq!(
        error,
        AttachError::TooSmall {
            len: 0x800,
            need: 0x1000
        }
    );
    assert_eq!(
        message,
        "region of 2048 bytes is smaller than the 4096 bytes needed"
    );

    let total = SMALL.region_bytes();
    let (error, message) = refused(attach_at(lo.base(), total - 1));
    assert_eq!(
        error,
        AttachError::TooSmall {
            len: total - 1,
            need: total
        }
    );
    assert_eq!(
        message,
        format!(
            "region of {} bytes is smaller than the {total} bytes needed",
            total - 1
        )
    );

    let memory = HeapRegion::new(total);
    // SAFETY: the heap region is valid for `total - 64 <= len` bytes; refused before any write.
    let created = unsafe { Channel::create_raw(memory.as_mut_ptr(), total - 64, SMALL) };
    assert_eq!(
        created.map(drop),
        Err(AttachError::TooSmall {
            len: total - 64,
            need: total
        })
    );
}

#[test]
fn memory_no_host_initialised_has_no_magic() {
    let memory = HeapRegion::new(SMALL.region_bytes());
    let (error, message) = refused(attach_at(memory.as_mut_ptr(), memory.len()));
    assert_eq!(error, AttachError::Magic(0));
    assert_eq!(
        message,
        "no channel header (magic 0x0000000000000000, expected 0x4843454943503345): not initialised by the host"
    );

    let lo = Loopback::new(SMALL).unwrap();
    let peer = RawPeer::new(&lo);
    peer.store(field::MAGIC, u32::from_le_bytes(*b"E3XX"));
    let (error, message) = refused(attach(&lo));
    let stored = MAGIC & !0xffff_ffff | u64::from(u32::from_le_bytes(*b"E3XX"));
    assert_eq!(error, AttachError::Magic(stored));
    assert!(
        message.starts_with(&format!("no channel header (magic {stored:#018x}")),
        "{message}"
    );
}

#[test]
fn another_format_version_is_refused_before_the_checksum() {
    let lo = Loopback::new(SMALL).unwrap();
    RawPeer::new(&lo).store(field::VERSION, 2);
    let (error, message) = refused(attach(&lo));
    assert_eq!(error, AttachError::Version(2));
    assert_eq!(message, "channel format version 2, this build speaks 1");
}

#[test]
fn a_header_changed_without_its_checksum_is_refused() {
    let lo = Loopback::new(SMALL).unwrap();
    let peer = RawPeer::new(&lo);
    let stored = peer.load(field::CHECKSUM);
    peer.store(field::ENGINES, 5);
    let computed = crc32(&peer.bytes(field::VERSION..field::CHECKSUM));
    let (error, message) = refused(attach(&lo));
    assert_eq!(error, AttachError::Checksum { stored, computed });
    assert_eq!(
        message,
        format!("header checksum {stored:#010x} does not match its contents ({computed:#010x})")
    );
}

#[test]
fn unknown_required_features_are_refused() {
    let lo = Loopback::new(SMALL).unwrap();
    RawPeer::new(&lo).rewrite_header(field::FEATURES, 0b101);
    let (error, message) = refused(attach(&lo));
    assert_eq!(error, AttachError::Features(0b101));
    assert_eq!(message, "unknown required feature bits 0x5");
}

#[test]
fn every_geometry_field_out_of_bounds_is_refused() {
    let cases = [
        (
            field::ENGINES,
            0,
            GeometryError::Engines(0),
            "engine count 0 not in 1..=16",
        ),
        (
            field::ENGINES,
            17,
            GeometryError::Engines(17),
            "engine count 17 not in 1..=16",
        ),
        (
            field::RING_ENTRIES,
            12,
            GeometryError::RingEntries(12),
            "ring entries 12 not a power of two in 2..=4096",
        ),
        (
            field::RING_ENTRIES,
            8192,
            GeometryError::RingEntries(8192),
            "ring entries 8192 not a power of two in 2..=4096",
        ),
        (
            field::SLOT_BYTES,
            32,
            GeometryError::SlotBytes(32),
            "slot size 32 not a power of two in 64..=32768",
        ),
        (
            field::SLOT_BYTES,
            1000,
            GeometryError::SlotBytes(1000),
            "slot size 1000 not a power of two in 64..=32768",
        ),
        (
            field::LANES,
            3,
            GeometryError::Lanes(3),
            "lane count 3 not a power of two in 1..=1024",
        ),
        (
            field::LANES,
            2048,
            GeometryError::Lanes(2048),
            "lane count 2048 not a power of two in 1..=1024",
        ),
    ];
    for (offset, value, want, text) in cases {
        let lo = Loopback::new(SMALL).unwrap();
        RawPeer::new(&lo).rewrite_header(offset, value);
        let (error, message) = refused(attach(&lo));
        assert_eq!(
            error,
            AttachError::Geometry(want),
            "field {offset:#x} = {value}"
        );
        assert_eq!(message, format!("bad geometry: {text}"));
    }
    // The host refuses to create such a channel in the first place.
    let memory = HeapRegion::new(SMALL.region_bytes());
    let bad = Geometry { lanes: 3, ..SMALL };
    // SAFETY: refused on the geometry before any write.
    let created = unsafe { Channel::create_raw(memory.as_mut_ptr(), memory.len(), bad) };
    assert_eq!(
        created.map(drop),
        Err(AttachError::Geometry(GeometryError::Lanes(3)))
    );
}

#[test]
fn every_layout_field_that_disagrees_with_the_geometry_is_refused() {
    let probe = Loopback::new(SMALL).unwrap();
    let layout = *probe.host().layout();
    let cases = [
        (field::REGION_BYTES, layout.total as u64),
        (field::BOOT_CONFIG_OFFSET, 0x1000),
        (field::BOOT_CONFIG_BYTES, 0x2000),
        (field::CONTROL_OFFSET, 0x3000),
        (field::DESCRIPTORS_OFFSET, layout.descriptors as u64),
        (field::SLOTS_OFFSET, layout.slots as u64),
    ];
    for (offset, expected) in cases {
        let lo = Loopback::new(SMALL).unwrap();
        let stored = expected + 0x40;
        RawPeer::new(&lo).rewrite_header(offset, stored as u32);
        let (error, message) = refused(attach(&lo));
        assert_eq!(
            error,
            AttachError::Layout {
                field: offset,
                stored,
                expected
            }
        );
        assert_eq!(
            message,
            format!(
                "header field at {offset:#x} holds {stored:#x}, the geometry gives {expected:#x}"
            )
        );
    }
    // A valid geometry that is not the one the layout fields were written for.
    let lo = Loopback::new(SMALL).unwrap();
    RawPeer::new(&lo).rewrite_header(field::RING_ENTRIES, 16);
    let bigger = Geometry {
        ring_entries: 16,
        ..SMALL
    };
    assert_eq!(
        attach(&lo),
        Err(AttachError::Layout {
            field: field::REGION_BYTES,
            stored: layout.total as u64,
            expected: bigger.region_bytes() as u64,
        })
    );
}

/// A /dev/shm path for this test, removed however the test ends.
struct ShmFile(std::path::PathBuf);

impl ShmFile {
    fn new(name: &str) -> ShmFile {
        ShmFile(format!("/dev/shm/e3-attach-{name}-{}", std::process::id()).into())
    }
}

impl Drop for ShmFile {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

#[test]
fn mapped_files_that_are_missing_too_small_or_not_initialised_are_refused() {
    let missing = ShmFile::new("missing");
    let error = MappedChannel::attach(&missing.0, Role::Nic).unwrap_err();
    let path = missing.0.display();
    assert!(
        matches!(&error, MapError::Io { source, .. } if source.kind() == std::io::ErrorKind::NotFound),
        "{error:?}"
    );
    assert_eq!(
        error.to_string(),
        format!("{path}: No such file or directory (os error 2)")
    );

    let small = ShmFile::new("small");
    let need = SMALL.region_bytes() as u64;
    let error = MappedChannel::create_sized(&small.0, 4096, SMALL).unwrap_err();
    assert!(
        matches!(error, MapError::TooSmall { len: 4096, need: n, .. } if n == need),
        "{error:?}"
    );
    assert_eq!(
        error.to_string(),
        format!(
            "{}: 4096 bytes, the channel geometry needs {need}",
            small.0.display()
        )
    );

    let blank = ShmFile::new("blank");
    std::fs::write(&blank.0, vec![0u8; need as usize]).unwrap();
    let error = MappedChannel::attach(&blank.0, Role::Nic).unwrap_err();
    assert!(
        matches!(
            error,
            MapError::Attach {
                source: AttachError::Magic(0),
                ..
            }
        ),
        "{error:?}"
    );
    assert_eq!(
        error.to_string(),
        format!(
            "{}: no channel header (magic 0x0000000000000000, expected 0x4843454943503345): not initialised by the host",
            blank.0.display()
        )
    );

    let bad = Geometry {
        engines: 0,
        ..SMALL
    };
    let error = MappedChannel::create(&blank.0, bad).unwrap_err();
    assert!(
        matches!(
            error,
            MapError::Attach {
                source: AttachError::Geometry(GeometryError::Engines(0)),
                ..
            }
        ),
        "{error:?}"
    );
    assert_eq!(
        error.to_string(),
        format!(
            "{}: bad geometry: engine count 0 not in 1..=16",
            blank.0.display()
        )
    );
}
