//! The host<->NIC message channel over a shared PCIe region.
//!
//! One region (an ivshmem BAR on the emulated NIC, a PCI BAR on a real board, a `/dev/shm` file
//! in tests) holds a header, a boot configuration area, and for each direction N engine rings
//! (1..=16; LiquidIO has 8 DMA engines), each a descriptor ring with its own buffer slots. The
//! byte-level format is specified in `docs/pcie-channel.md`; this crate follows it and its
//! tests assert the sizes and offsets.
//!
//! Layers, from the bottom:
//! - [`layout`]: geometry and the offset of every structure (pure arithmetic).
//! - `region`: the raw memory, turned into atomics, descriptor arrays and slot pointers.
//! - [`ring`]: the index protocol of one engine ring (credits, Acquire/Release pairs); checked
//!   by a loom model.
//! - [`descriptor`]: the 16-byte segment descriptor and its validation.
//! - [`header`], [`boot_config`], [`liveness`]: the header page, the boot configuration area,
//!   heartbeats and the disconnection timeout.
//! - [`channel`]: [`Channel`] creates or attaches a region and hands out endpoints:
//!   a [`Sender`] per engine set ([`send`]) and one [`Receiver`] per direction ([`receive`]),
//!   which restores per-flow order across engines.
//! - [`message`]: the typed header at the front of each message (UDP datagrams, heartbeats,
//!   control commands).
//! - [`notify`]: the optional wake-up of a receiver that sleeps instead of polling (its
//!   waiting word and the [`Notify`] hook a sender rings).
//! - `std` feature: [`MappedChannel`] over a mapped file, the eventfd [`Doorbell`], and
//!   [`Loopback`] (both sides in one process, for tests and benchmarks).
//!
//! # Sharing rules
//! - Each engine of a direction has one producer at a time: claim disjoint [`EngineSet`]s
//!   (for example one engine per NIC core). Flows may be spread over cores and engines: the
//!   per-lane sequence counters are shared atomics in the [`Channel`].
//! - Each direction has one [`Receiver`]; several cores that want to receive share it behind a
//!   lock or hand messages on from one polling core.
//!
//! # The peer is untrusted
//! Every index, length and chain reference read from the region is read once and bounded before
//! use. Malformed descriptors are counted and skipped ([`ReceiveStats`]); an index outside its
//! window stops the channel ([`ChannelError::Failed`]). Nothing the peer writes can make this
//! crate panic, read or write outside the region, or loop without bound.
#![cfg_attr(not(any(test, feature = "std")), no_std)]

pub mod boot_config;
pub mod channel;
pub mod descriptor;
#[cfg(all(feature = "std", target_os = "linux"))]
pub mod doorbell;
pub mod header;
pub mod layout;
pub mod liveness;
#[cfg(feature = "std")]
pub mod loopback;
#[cfg(feature = "std")]
pub mod mapped;
pub mod message;
pub mod notify;
pub mod receive;
mod region;
pub mod ring;
pub mod send;

pub use boot_config::{BootConfigError, BOOT_CONFIG_CAPACITY};
pub use channel::{Channel, ChannelError, ClaimError, EngineSet, Failure};
#[cfg(all(feature = "std", target_os = "linux"))]
pub use doorbell::{Doorbell, WaitError, Woken};
pub use header::{AttachError, Role, SideState};
pub use layout::{Direction, Geometry, GeometryError};
pub use liveness::{PeerStatus, PeerWatch};
#[cfg(feature = "std")]
pub use loopback::{HeapRegion, Loopback};
#[cfg(feature = "std")]
pub use mapped::{MapError, MappedChannel};
pub use notify::{Notify, NotifyError};
pub use receive::{Message, ReceiveStats, Received, Receiver};
pub use send::{Reservation, SendStats, Sender};
