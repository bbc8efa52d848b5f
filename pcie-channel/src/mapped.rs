//! `std` only: channels over a file mapped with memmap2 — a `/dev/shm` file shared with QEMU's
//! ivshmem device (the emulated NIC), or a PCI BAR resource file
//! (`/sys/bus/pci/devices/.../resource2`) on a real machine.

use std::fmt;
use std::fs::{File, OpenOptions};
use std::io;
use std::ops::Deref;
use std::path::{Path, PathBuf};

use memmap2::MmapMut;

use crate::channel::Channel;
use crate::header::{AttachError, Role};
use crate::layout::Geometry;

/// Why a mapped channel could not be created or attached.
#[derive(Debug)]
pub enum MapError {
    /// Opening, sizing or mapping the file failed.
    Io {
        /// The file.
        path: PathBuf,
        /// What the OS said.
        source: io::Error,
    },
    /// The file is smaller than the requested geometry needs.
    TooSmall {
        /// The file.
        path: PathBuf,
        /// Its size.
        len: u64,
        /// Bytes needed.
        need: u64,
    },
    /// The region's contents were refused.
    Attach {
        /// The file.
        path: PathBuf,
        /// Why.
        source: AttachError,
    },
}

impl fmt::Display for MapError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            MapError::Io { path, source } => write!(f, "{}: {source}", path.display()),
            MapError::TooSmall { path, len, need } => write!(
                f,
                "{}: {len} bytes, the channel geometry needs {need}",
                path.display()
            ),
            MapError::Attach { path, source } => write!(f, "{}: {source}", path.display()),
        }
    }
}

impl std::error::Error for MapError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            MapError::Io { source, .. } => Some(source),
            _ => None,
        }
    }
}

impl std::error::Error for AttachError {}
impl std::error::Error for crate::channel::ChannelError {}
impl std::error::Error for crate::channel::ClaimError {}
impl std::error::Error for crate::boot_config::BootConfigError {}
impl std::error::Error for crate::message::MessageError {}

/// How a mapped channel starts: the host initialises, either side attaches.
enum Start {
    Create(Geometry),
    Attach(Role),
}

/// A [`Channel`] over a mapped file; dereferences to the channel. The mapping lives as long as
/// this value (the channel is dropped first).
pub struct MappedChannel {
    channel: Channel,
    map: MmapMut,
    path: PathBuf,
}

fn io_error(path: &Path) -> impl FnOnce(io::Error) -> MapError + '_ {
    move |source| MapError::Io {
        path: path.to_owned(),
        source,
    }
}

fn map(file: &File, path: &Path) -> Result<MmapMut, MapError> {
    // SAFETY: the file is a shared-memory or device file meant to be shared with the peer; every
    // access to the mapping goes through the channel, which treats its contents as untrusted
    // (another process truncating the file would fault, as with any shared mapping).
    unsafe { MmapMut::map_mut(file) }.map_err(io_error(path))
}

impl MappedChannel {
    /// Host: creates (or truncates) `path` with exactly the bytes `geometry` needs and
    /// initialises the channel.
    pub fn create(path: impl AsRef<Path>, geometry: Geometry) -> Result<MappedChannel, MapError> {
        let path = path.as_ref();
        geometry.validate().map_err(|e| MapError::Attach {
            path: path.to_owned(),
            source: e.into(),
        })?;
        Self::create_sized(path, geometry.region_bytes() as u64, geometry)
    }

    /// Host: creates (or truncates) `path` at `size` bytes (for example the ivshmem size given
    /// to QEMU, a power of two) and initialises a channel of `geometry` at its start.
    pub fn create_sized(
        path: impl AsRef<Path>,
        size: u64,
        geometry: Geometry,
    ) -> Result<MappedChannel, MapError> {
        let path = path.as_ref();
        let need = geometry.region_bytes() as u64;
        if size < need {
            return Err(MapError::TooSmall {
                path: path.to_owned(),
                len: size,
                need,
            });
        }
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(true)
            .open(path)
            .map_err(io_error(path))?;
        file.set_len(size).map_err(io_error(path))?;
        Self::over(path, map(&file, path)?, Start::Create(geometry))
    }

    /// Host: initialises a channel in an existing file of fixed size without truncating it (a
    /// PCI BAR resource file, or a shared-memory file QEMU already maps).
    pub fn initialise_existing(
        path: impl AsRef<Path>,
        geometry: Geometry,
    ) -> Result<MappedChannel, MapError> {
        let path = path.as_ref();
        Self::over(path, Self::open(path)?, Start::Create(geometry))
    }

    /// Attaches as `role` to the channel a host initialised in `path` (validating its header).
    pub fn attach(path: impl AsRef<Path>, role: Role) -> Result<MappedChannel, MapError> {
        let path = path.as_ref();
        Self::over(path, Self::open(path)?, Start::Attach(role))
    }

    /// Makes the channel over a fresh mapping of `path`.
    fn over(path: &Path, mut map: MmapMut, start: Start) -> Result<MappedChannel, MapError> {
        let (base, len) = (map.as_mut_ptr(), map.len());
        // SAFETY: the mapping is valid for `len` bytes, page-aligned, and lives in the returned
        // value as long as the channel (which is dropped first); nothing else in this process
        // touches it.
        let channel = unsafe {
            match start {
                Start::Create(geometry) => Channel::create_raw(base, len, geometry),
                Start::Attach(role) => Channel::attach_raw(base, len, role),
            }
        };
        let channel = channel.map_err(|source| MapError::Attach {
            path: path.to_owned(),
            source,
        })?;
        Ok(MappedChannel {
            channel,
            map,
            path: path.to_owned(),
        })
    }

    fn open(path: &Path) -> Result<MmapMut, MapError> {
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .open(path)
            .map_err(io_error(path))?;
        map(&file, path)
    }

    /// The mapped file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Bytes mapped.
    pub fn mapped_bytes(&self) -> usize {
        self.map.len()
    }
}

impl Deref for MappedChannel {
    type Target = Channel;

    fn deref(&self) -> &Channel {
        &self.channel
    }
}

impl fmt::Debug for MappedChannel {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MappedChannel")
            .field("path", &self.path)
            .field("channel", &self.channel)
            .finish()
    }
}
