//! The NIC's MAC ports: virtio-net devices on virtio-mmio (modern, version 2), driven by the
//! virtio-drivers crate's non-blocking `VirtIONetRaw`. Receive is zero-copy (frames are handed out
//! in the buffers the device wrote); transmit copies the frame behind the virtio-net header.
//!
//! A device that reports a completion for a descriptor the driver never posted would leave the
//! used ring stuck on it (the driver cannot pop it without the buffer): the port counts it,
//! resets the device and starts again with empty queues; a port that keeps failing is taken
//! down. A reset allocates nothing: the buffers are the port's own, and the new driver's
//! virtqueues get the pages the old driver's gave back ([`dma_regions`]). Each port's
//! [`Counter`]s are on the UART counters line.
//!
//! QEMU fills the virtio-mmio slots from the last one down, so port 0 is the first
//! `-device virtio-net-device` on QEMU's command line.
#![cfg(target_os = "none")]

use alloc::alloc::{alloc_zeroed, dealloc, Layout};
use alloc::boxed::Box;
use alloc::vec::Vec;
use core::ptr::NonNull;
use core::sync::atomic::{AtomicU64, AtomicUsize, Ordering};

use log::{error, info, warn};
use safe_mmio::fields::{ReadPure, WriteOnly};
use safe_mmio::{field, UniqueMmioPointer};
use virtio_drivers::device::net::VirtIONetRaw;
use virtio_drivers::transport::mmio::{MmioTransport, VirtIOHeader};
use virtio_drivers::transport::{DeviceType, Transport};
use virtio_drivers::{BufferDirection, Hal, PhysAddr, PAGE_SIZE};

use super::dma_regions::{Recycled, Region};
use super::{gic, map};

/// Descriptors per queue: frames in flight per direction per port.
pub const QUEUE_SIZE: usize = 64;
/// Bytes of one buffer: the virtio-net header (12 bytes) plus the longest frame the runtime
/// takes (1536 bytes, `tm::pool::FRAME_CAPACITY`), rounded up; a longer frame that still fits
/// a buffer is received, then dropped and counted ([`Counter::RxOversized`]).
const BUFFER: usize = 2048;
pub use nic_firmware::platform::MAX_PORTS;

/// The DMA glue virtio-drivers needs: the heap is identity mapped, so a buffer's physical
/// address is its virtual address, and QEMU's DMA is coherent with the cores. The only DMA
/// memory virtio-drivers asks for is its virtqueues' (the frame buffers are the port's own):
/// from the heap at start-up, and from [`RECYCLED`] when a reset starts a new driver.
pub struct IdentityHal;

/// The virtqueue regions of drivers a reset dropped, for the next driver: two regions per
/// queue, two queues per port, so every port's can be kept at once.
static RECYCLED: spin::Mutex<Recycled<{ 4 * MAX_PORTS }>> = spin::Mutex::new(Recycled::new());

// SAFETY: `dma_alloc` returns zeroed, page-aligned memory that nothing else uses until
// `dma_dealloc`: fresh from the heap, or a region an earlier `dma_dealloc` kept in `RECYCLED`
// (which hands each out once); physical and virtual addresses are equal under the identity
// map; DMA on this board is cache coherent, so `share` and `unshare` need no cache maintenance.
unsafe impl Hal for IdentityHal {
    fn dma_alloc(pages: usize, _direction: BufferDirection) -> (PhysAddr, NonNull<u8>) {
        if let Some(region) = RECYCLED.lock().take(pages) {
            let memory = region.address as *mut u8;
            // SAFETY: the region is `pages` whole pages of heap that virtio-drivers gave back
            // through `dma_dealloc` (the device had been told to forget the queue and reset
            // first) and that `take` gave to no one else: this call owns them now.
            unsafe { core::ptr::write_bytes(memory, 0, pages * PAGE_SIZE) };
            if let Some(pointer) = NonNull::new(memory) {
                return (memory as PhysAddr, pointer);
            }
        }
        let Ok(layout) = Layout::from_size_align(pages * PAGE_SIZE, PAGE_SIZE) else {
            return (0, NonNull::dangling());
        };
        // SAFETY: the layout has a non-zero size (virtio-drivers asks for at least one page).
        let memory = unsafe { alloc_zeroed(layout) };
        match NonNull::new(memory) {
            Some(pointer) => (memory as PhysAddr, pointer),
            None => (0, NonNull::dangling()),
        }
    }

    unsafe fn dma_dealloc(_paddr: PhysAddr, vaddr: NonNull<u8>, pages: usize) -> i32 {
        let region = Region {
            address: vaddr.as_ptr() as usize,
            pages,
        };
        if RECYCLED.lock().keep(region).is_ok() {
            return 0;
        }
        let Ok(layout) = Layout::from_size_align(pages * PAGE_SIZE, PAGE_SIZE) else {
            return -1;
        };
        // SAFETY: the caller passes back what `dma_alloc` returned for the same page count,
        // all of it heap memory with this layout (a recycled region is one an earlier
        // `dma_alloc` took from the heap with the same page count).
        unsafe { dealloc(vaddr.as_ptr(), layout) };
        0
    }

    unsafe fn mmio_phys_to_virt(paddr: PhysAddr, _size: usize) -> NonNull<u8> {
        NonNull::new(paddr as *mut u8).expect("virtio MMIO at address 0")
    }

    unsafe fn share(buffer: NonNull<[u8]>, _direction: BufferDirection) -> PhysAddr {
        buffer.cast::<u8>().as_ptr() as PhysAddr
    }

    unsafe fn unshare(_paddr: PhysAddr, _buffer: NonNull<[u8]>, _direction: BufferDirection) {}
}

type Buffer = [u8; BUFFER];
type Device = VirtIONetRaw<IdentityHal, MmioTransport<'static>, QUEUE_SIZE>;

/// Resets after which a port that keeps misbehaving is taken down for good.
const MAX_RESETS: u64 = 16;

/// What each port counts (docs/firmware.md, "Counters on the UART": `portN_NAME=COUNT`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Counter {
    /// Frames received.
    Rx,
    /// Frames queued for transmission.
    Tx,
    /// Frames not sent: every transmit descriptor was in flight.
    TxRingFull,
    /// Frames not sent: longer than a buffer.
    TxTooLong,
    /// Receive completions the device reported wrongly (dropped), and receive buffers it
    /// would not take.
    RxErrors,
    /// Frames received that did not fit the runtime's buffer (dropped).
    RxOversized,
    /// Completions for a descriptor the driver never posted (receive or transmit): the queue
    /// cannot move past one, so the port is reset.
    UnknownTokens,
    /// Device resets (each brings both queues back empty; frames in them are lost).
    Resets,
}

impl Counter {
    /// Every counter, in the order the UART prints them.
    pub const ALL: [Counter; 8] = [
        Counter::Rx,
        Counter::Tx,
        Counter::TxRingFull,
        Counter::TxTooLong,
        Counter::RxErrors,
        Counter::RxOversized,
        Counter::UnknownTokens,
        Counter::Resets,
    ];

    /// Its name on the UART.
    pub const fn name(self) -> &'static str {
        match self {
            Counter::Rx => "rx",
            Counter::Tx => "tx",
            Counter::TxRingFull => "tx_ring_full",
            Counter::TxTooLong => "tx_too_long",
            Counter::RxErrors => "rx_errors",
            Counter::RxOversized => "rx_oversized",
            Counter::UnknownTokens => "unknown_tokens",
            Counter::Resets => "resets",
        }
    }
}

/// One port's counters, as a snapshot.
pub type PortCounters = [u64; Counter::ALL.len()];

/// Each port's counters. Only the core that holds the port (the runtime serialises calls on a
/// port) writes them, so a plain load and store counts; core 0's report reads them any time.
static COUNTERS: [[AtomicU64; Counter::ALL.len()]; MAX_PORTS] =
    [const { [const { AtomicU64::new(0) }; Counter::ALL.len()] }; MAX_PORTS];
/// Ports brought up by [`probe`].
static PORTS: AtomicUsize = AtomicUsize::new(0);

/// The counters of every port, port 0 first.
pub fn counters() -> heapless::Vec<PortCounters, MAX_PORTS> {
    let ports = PORTS.load(Ordering::Acquire).min(MAX_PORTS);
    COUNTERS[..ports]
        .iter()
        .map(|cells| core::array::from_fn(|i| cells[i].load(Ordering::Relaxed)))
        .collect()
}

/// Why a frame was not sent.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TxError {
    /// All transmit descriptors are in flight.
    RingFull,
    /// The frame does not fit a buffer.
    TooLong,
    /// The port was taken down after failing too often.
    Down,
}

/// One virtio-net port.
pub struct Port {
    /// The driver; `None` once the port was taken down for good.
    device: Option<Device>,
    slot: usize,
    /// Index in probe order (port 0 is the first `-device virtio-net-device`).
    index: usize,
    mac: [u8; 6],
    /// Receive buffers, indexed by the token (descriptor) the device holds them under.
    rx: Vec<Option<Box<Buffer>>>,
    /// Transmit buffers not in flight (boxed: a buffer must not move while the device reads it).
    #[allow(clippy::vec_box)]
    tx_free: Vec<Box<Buffer>>,
    /// Transmit buffers in flight and the length sent from each, indexed by token.
    tx_busy: Vec<Option<(Box<Buffer>, usize)>>,
}

fn new_buffer() -> Box<Buffer> {
    Box::new([0; BUFFER])
}

/// The virtio-mmio transport of `slot`, if a device sits there.
///
/// # Safety
///
/// No other transport for `slot` may be alive: the caller owns the slot's registers.
unsafe fn transport(slot: usize) -> Option<MmioTransport<'static>> {
    let address = map::VIRTIO_MMIO + slot * map::VIRTIO_MMIO_STRIDE;
    let header = NonNull::new(address as *mut VirtIOHeader)?;
    // SAFETY: each virtio-mmio slot is a separate 0x200-byte MMIO block, mapped as device
    // memory for the life of the board; the caller guarantees this is its only transport.
    unsafe { MmioTransport::new(header, map::VIRTIO_MMIO_STRIDE) }.ok()
}

impl Port {
    /// Brings the device up; the port is boxed (its queues are a few KiB: the board moves
    /// ports around while it boots).
    fn new(slot: usize, index: usize, device: Device, mac: Option<[u8; 6]>) -> Box<Port> {
        let mac = mac.unwrap_or(device.mac_address());
        let mut port = Box::new(Port {
            device: Some(device),
            slot,
            index,
            mac,
            rx: (0..QUEUE_SIZE).map(|_| None).collect(),
            tx_free: (0..QUEUE_SIZE).map(|_| new_buffer()).collect(),
            tx_busy: (0..QUEUE_SIZE).map(|_| None).collect(),
        });
        for _ in 0..QUEUE_SIZE {
            port.post_receive(new_buffer());
        }
        port
    }

    fn count(&self, counter: Counter) {
        let cell = &COUNTERS[self.index][counter as usize];
        cell.store(cell.load(Ordering::Relaxed) + 1, Ordering::Relaxed);
    }

    fn counted(&self, counter: Counter) -> u64 {
        COUNTERS[self.index][counter as usize].load(Ordering::Relaxed)
    }

    /// Gives the device a buffer to receive into (a port that is down keeps it unposted).
    fn post_receive(&mut self, mut buffer: Box<Buffer>) {
        let Some(device) = self.device.as_mut() else {
            self.keep_unposted(buffer);
            return;
        };
        // SAFETY: the buffer is owned by `self.rx` until the device hands it back through
        // `poll_receive` (or the device is reset), and nothing reads or writes it meanwhile.
        match unsafe { device.receive_begin(buffer.as_mut_slice()) } {
            Ok(token) => match self.rx.get_mut(usize::from(token)) {
                Some(slot) => *slot = Some(buffer),
                // Not one of our descriptors: the device may write it, so it must not be freed
                // before the reset makes the device forget it.
                None => {
                    self.reset("a receive buffer was posted under an unknown descriptor");
                    self.post_receive(buffer);
                }
            },
            Err(e) => {
                self.count(Counter::RxErrors);
                warn!("port {}: cannot post a receive buffer: {e}", self.index);
            }
        }
    }

    /// Resets the device after it reported a completion the driver cannot match: the driver
    /// is dropped (its queues unset, so the device owns no buffer any more), every buffer is
    /// taken back, and a fresh driver starts with all receive buffers posted. After
    /// [`MAX_RESETS`] the port is taken down instead, keeping its buffers.
    ///
    /// Nothing is allocated or freed on the heap: the buffers stay the port's (`tx_free` has
    /// room for all of them), and the new driver's virtqueues are the old one's pages, which
    /// [`IdentityHal`] kept when the old driver gave them back.
    fn reset(&mut self, why: &str) {
        self.count(Counter::Resets);
        drop(self.device.take());
        let mut receive: [Option<Box<Buffer>>; QUEUE_SIZE] = [const { None }; QUEUE_SIZE];
        for (from, to) in self.rx.iter_mut().zip(receive.iter_mut()) {
            *to = from.take();
        }
        for (buffer, _) in self.tx_busy.iter_mut().filter_map(Option::take) {
            self.tx_free.push(buffer);
        }
        if self.counted(Counter::Resets) > MAX_RESETS {
            error!(
                "port {}: {why}; {MAX_RESETS} resets did not help: port down",
                self.index
            );
            self.keep_idle(receive);
            return;
        }
        warn!("port {}: {why}: resetting the device", self.index);
        // SAFETY: the old transport of this slot was dropped with the old driver above.
        let device = unsafe { transport(self.slot) }.and_then(|t| VirtIONetRaw::new(t).ok());
        let Some(device) = device else {
            error!(
                "port {}: the device did not come back: port down",
                self.index
            );
            self.keep_idle(receive);
            return;
        };
        self.device = Some(device);
        for buffer in receive.into_iter().flatten() {
            self.post_receive(buffer);
        }
    }

    /// Puts the receive buffers of a port that is down back in `rx`, unposted.
    fn keep_idle(&mut self, receive: [Option<Box<Buffer>>; QUEUE_SIZE]) {
        for buffer in receive.into_iter().flatten() {
            self.keep_unposted(buffer);
        }
    }

    /// Keeps a receive buffer of a port that is down in a free `rx` slot: dropping it would
    /// free it on the packet path. There is always one (the port has `QUEUE_SIZE` receive
    /// buffers in all, and `rx` as many slots).
    fn keep_unposted(&mut self, buffer: Box<Buffer>) {
        if let Some(slot) = self.rx.iter_mut().find(|slot| slot.is_none()) {
            *slot = Some(buffer);
        }
    }

    /// Whether a received frame waits to be taken by [`Port::receive`].
    pub fn receive_waiting(&self) -> bool {
        self.device
            .as_ref()
            .is_some_and(|device| device.poll_receive().is_some())
    }

    /// Hands the next received frame (if any) to `handle`, then gives its buffer back to the
    /// device. Returns whether a frame was taken off the queue; `false` when none is waiting,
    /// after a reset, and on a port that is down, so a caller looping on it always ends.
    pub fn receive(&mut self, handle: impl FnOnce(&[u8])) -> bool {
        let Some(device) = self.device.as_mut() else {
            return false;
        };
        let Some(token) = device.poll_receive() else {
            return false;
        };
        let Some(mut buffer) = self.rx.get_mut(usize::from(token)).and_then(Option::take) else {
            // A descriptor we never posted: the used ring cannot be popped past it without the
            // buffer the device claims it filled.
            self.count(Counter::UnknownTokens);
            self.reset("receive completion for a descriptor never posted");
            return false;
        };
        // SAFETY: `buffer` is the one posted under `token`.
        match unsafe { device.receive_complete(token, buffer.as_mut_slice()) } {
            Ok((header, length)) => match buffer.get(header..header + length) {
                Some(frame) => {
                    self.count(Counter::Rx);
                    handle(frame);
                }
                None => self.count(Counter::RxErrors),
            },
            Err(_) => self.count(Counter::RxErrors),
        }
        self.post_receive(buffer);
        true
    }

    /// Queues `frame` for transmission.
    pub fn transmit(&mut self, frame: &[u8]) -> Result<(), TxError> {
        self.reclaim();
        let Some(device) = self.device.as_mut() else {
            return Err(TxError::Down);
        };
        let Some(mut buffer) = self.tx_free.pop() else {
            self.count(Counter::TxRingFull);
            return Err(TxError::RingFull);
        };
        let header = match device.fill_buffer_header(buffer.as_mut_slice()) {
            Ok(header) if header + frame.len() <= BUFFER => header,
            _ => {
                self.tx_free.push(buffer);
                self.count(Counter::TxTooLong);
                return Err(TxError::TooLong);
            }
        };
        buffer[header..header + frame.len()].copy_from_slice(frame);
        let length = header + frame.len();
        // SAFETY: the buffer stays in `tx_busy` untouched until `reclaim` sees it completed
        // (or a reset makes the device forget it).
        match unsafe { device.transmit_begin(&buffer[..length]) } {
            Ok(token) => match self.tx_busy.get_mut(usize::from(token)) {
                Some(slot) => {
                    *slot = Some((buffer, length));
                    self.count(Counter::Tx);
                    Ok(())
                }
                None => {
                    // The device may read the buffer until the reset makes it forget it.
                    self.reset("a frame was queued under an unknown descriptor");
                    self.tx_free.push(buffer);
                    Err(TxError::RingFull)
                }
            },
            Err(_) => {
                self.tx_free.push(buffer);
                self.count(Counter::TxRingFull);
                Err(TxError::RingFull)
            }
        }
    }

    /// Takes back the transmit buffers the device is done with.
    fn reclaim(&mut self) {
        while let Some(device) = self.device.as_mut() {
            let Some(token) = device.poll_transmit() else {
                return;
            };
            let Some((buffer, length)) = self
                .tx_busy
                .get_mut(usize::from(token))
                .and_then(Option::take)
            else {
                // A descriptor we never sent: the used ring would stay stuck on it and the
                // port "ring full" for good.
                self.count(Counter::UnknownTokens);
                self.reset("transmit completion for a descriptor never sent");
                return;
            };
            // SAFETY: `buffer[..length]` is exactly the slice sent under `token`.
            let _ = unsafe { device.transmit_complete(token, &buffer[..length]) };
            self.tx_free.push(buffer);
        }
    }

    /// Counts a received frame dropped for not fitting the caller's buffer.
    pub fn count_oversized(&mut self) {
        self.count(Counter::RxOversized);
    }

    /// The port's MAC address.
    pub fn mac(&self) -> [u8; 6] {
        self.mac
    }
}

/// The interrupt registers of a virtio-mmio slot (virtio 1.2, 4.2.2: InterruptStatus at 0x60,
/// InterruptACK at 0x64).
#[repr(C)]
struct InterruptRegisters {
    status: ReadPure<u32>,
    ack: WriteOnly<u32>,
}

/// Offset of [`InterruptRegisters`] in a slot.
const INTERRUPT_REGISTERS: usize = 0x60;

/// The ports' interrupt lines, which wake core 0 from WFI. Only the idle path acknowledges
/// them (the drivers never do), so the two never race.
pub struct InterruptLines {
    slots: heapless::Vec<usize, MAX_PORTS>,
}

impl InterruptLines {
    /// Acknowledges whatever the ports raised, dropping their lines.
    pub fn acknowledge(&self) {
        for slot in &self.slots {
            let address = map::VIRTIO_MMIO + slot * map::VIRTIO_MMIO_STRIDE + INTERRUPT_REGISTERS;
            // SAFETY: these two registers of a slot that holds a port are only accessed here,
            // by core 0's idle path; they are device memory inside the slot's MMIO block.
            let mut registers = unsafe {
                UniqueMmioPointer::new(NonNull::new(address as *mut InterruptRegisters).unwrap())
            };
            let raised = field!(registers, status).read();
            if raised != 0 {
                field!(registers, ack).write(raised);
            }
        }
    }
}

/// Finds every virtio-net device and brings it up as a port; `mac` overrides their MACs.
pub fn probe(mac: Option<[u8; 6]>) -> (heapless::Vec<Box<Port>, MAX_PORTS>, InterruptLines) {
    let mut ports = heapless::Vec::new();
    let mut lines = InterruptLines {
        slots: heapless::Vec::new(),
    };
    for slot in (0..map::VIRTIO_MMIO_SLOTS).rev() {
        // SAFETY: each slot gets at most one transport, here, which lives as long as its port.
        let Some(transport) = (unsafe { transport(slot) }) else {
            continue; // An empty slot.
        };
        if transport.device_type() != DeviceType::Network {
            continue;
        }
        let device = match VirtIONetRaw::new(transport) {
            Ok(device) => device,
            Err(e) => {
                warn!("virtio-mmio slot {slot}: virtio-net init failed: {e}");
                continue;
            }
        };
        if ports.is_full() {
            warn!("more than {MAX_PORTS} virtio-net devices: slot {slot} ignored");
            break;
        }
        let port = Port::new(slot, ports.len(), device, mac);
        let m = port.mac();
        info!(
            "port {}: virtio-net in slot {slot}, MAC {:02x}:{:02x}:{:02x}:{:02x}:{:02x}:{:02x}",
            ports.len(),
            m[0],
            m[1],
            m[2],
            m[3],
            m[4],
            m[5]
        );
        let _ = ports.push(port);
        PORTS.store(ports.len(), Ordering::Release);
        gic::enable_device_irq(map::VIRTIO_MMIO_IRQ + slot as u32);
        let _ = lines.slots.push(slot);
    }
    (ports, lines)
}
