//! The NIC's MAC ports: virtio-net devices on virtio-mmio (modern, version 2), driven by the
//! virtio-drivers crate's non-blocking `VirtIONetRaw`. Receive is zero-copy (frames are handed out
//! in the buffers the device wrote); transmit copies the frame behind the virtio-net header.
//!
//! QEMU fills the virtio-mmio slots from the last one down, so port 0 is the first
//! `-device virtio-net-device` on QEMU's command line.
#![cfg(target_os = "none")]

use alloc::alloc::{alloc_zeroed, dealloc, Layout};
use alloc::boxed::Box;
use alloc::vec::Vec;
use core::ptr::NonNull;

use log::{info, warn};
use safe_mmio::fields::{ReadPure, WriteOnly};
use safe_mmio::{field, UniqueMmioPointer};
use virtio_drivers::device::net::VirtIONetRaw;
use virtio_drivers::transport::mmio::{MmioTransport, VirtIOHeader};
use virtio_drivers::transport::{DeviceType, Transport};
use virtio_drivers::{BufferDirection, Hal, PhysAddr, PAGE_SIZE};

use super::{gic, map};

/// Descriptors per queue: frames in flight per direction per port.
pub const QUEUE_SIZE: usize = 64;
/// Bytes of one buffer: the virtio-net header plus a 1518-byte frame, rounded up.
const BUFFER: usize = 2048;
pub use nic_firmware::platform::MAX_PORTS;

/// The DMA glue virtio-drivers needs: the heap is identity mapped, so a buffer's physical
/// address is its virtual address, and QEMU's DMA is coherent with the cores.
pub struct IdentityHal;

// SAFETY: `dma_alloc` returns zeroed, page-aligned heap memory that nothing else uses until
// `dma_dealloc`; physical and virtual addresses are equal under the identity map; DMA on this
// board is cache coherent, so `share` and `unshare` need no cache maintenance.
unsafe impl Hal for IdentityHal {
    fn dma_alloc(pages: usize, _direction: BufferDirection) -> (PhysAddr, NonNull<u8>) {
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
        let Ok(layout) = Layout::from_size_align(pages * PAGE_SIZE, PAGE_SIZE) else {
            return -1;
        };
        // SAFETY: the caller passes back what `dma_alloc` returned for the same page count.
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

/// Counters of one port.
#[derive(Clone, Copy, Debug, Default)]
pub struct PortCounters {
    /// Frames received.
    pub rx_frames: u64,
    /// Frames sent.
    pub tx_frames: u64,
    /// Frames not sent: every transmit descriptor was in flight.
    pub tx_ring_full: u64,
    /// Frames not sent: longer than a buffer.
    pub tx_too_long: u64,
    /// Receive completions the device reported wrongly (dropped).
    pub rx_errors: u64,
    /// Frames received that did not fit the runtime's buffer (dropped).
    pub rx_oversized: u64,
}

/// Why a frame was not sent.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TxError {
    /// All transmit descriptors are in flight.
    RingFull,
    /// The frame does not fit a buffer.
    TooLong,
}

/// One virtio-net port.
pub struct Port {
    device: VirtIONetRaw<IdentityHal, MmioTransport<'static>, QUEUE_SIZE>,
    slot: usize,
    mac: [u8; 6],
    /// Receive buffers, indexed by the token (descriptor) the device holds them under.
    rx: Vec<Option<Box<Buffer>>>,
    /// Transmit buffers not in flight (boxed: a buffer must not move while the device reads it).
    #[allow(clippy::vec_box)]
    tx_free: Vec<Box<Buffer>>,
    /// Transmit buffers in flight and the length sent from each, indexed by token.
    tx_busy: Vec<Option<(Box<Buffer>, usize)>>,
    counters: PortCounters,
}

fn new_buffer() -> Box<Buffer> {
    Box::new([0; BUFFER])
}

impl Port {
    /// Brings the device up; the port is boxed (its queues are a few KiB: the board moves
    /// ports around while it boots).
    fn new(
        slot: usize,
        transport: MmioTransport<'static>,
        mac: Option<[u8; 6]>,
    ) -> Option<Box<Port>> {
        let device = match VirtIONetRaw::new(transport) {
            Ok(device) => device,
            Err(e) => {
                warn!("virtio-mmio slot {slot}: virtio-net init failed: {e}");
                return None;
            }
        };
        let mac = mac.unwrap_or(device.mac_address());
        let mut port = Box::new(Port {
            device,
            slot,
            mac,
            rx: (0..QUEUE_SIZE).map(|_| None).collect(),
            tx_free: (0..QUEUE_SIZE).map(|_| new_buffer()).collect(),
            tx_busy: (0..QUEUE_SIZE).map(|_| None).collect(),
            counters: PortCounters::default(),
        });
        for _ in 0..QUEUE_SIZE {
            port.post_receive(new_buffer());
        }
        Some(port)
    }

    /// Gives the device a buffer to receive into.
    fn post_receive(&mut self, mut buffer: Box<Buffer>) {
        // SAFETY: the buffer is owned by `self.rx` until the device hands it back through
        // `poll_receive`, and nothing reads or writes it meanwhile.
        match unsafe { self.device.receive_begin(buffer.as_mut_slice()) } {
            Ok(token) => match self.rx.get_mut(usize::from(token)) {
                Some(slot) => *slot = Some(buffer),
                None => self.counters.rx_errors += 1,
            },
            Err(e) => {
                self.counters.rx_errors += 1;
                warn!("port slot {}: cannot post a receive buffer: {e}", self.slot);
            }
        }
    }

    /// Hands the next received frame (if any) to `handle`, then gives its buffer back to the
    /// device. Returns whether there was a frame.
    pub fn receive(&mut self, handle: impl FnOnce(&[u8])) -> bool {
        let Some(token) = self.device.poll_receive() else {
            return false;
        };
        let Some(mut buffer) = self.rx.get_mut(usize::from(token)).and_then(Option::take) else {
            // A token we never posted: the device is confused; nothing to give back.
            self.counters.rx_errors += 1;
            return true;
        };
        // SAFETY: `buffer` is the one posted under `token`.
        match unsafe { self.device.receive_complete(token, buffer.as_mut_slice()) } {
            Ok((header, length)) => match buffer.get(header..header + length) {
                Some(frame) => {
                    self.counters.rx_frames += 1;
                    handle(frame);
                }
                None => self.counters.rx_errors += 1,
            },
            Err(_) => self.counters.rx_errors += 1,
        }
        self.post_receive(buffer);
        true
    }

    /// Queues `frame` for transmission.
    pub fn transmit(&mut self, frame: &[u8]) -> Result<(), TxError> {
        self.reclaim();
        let Some(mut buffer) = self.tx_free.pop() else {
            self.counters.tx_ring_full += 1;
            return Err(TxError::RingFull);
        };
        let header = match self.device.fill_buffer_header(buffer.as_mut_slice()) {
            Ok(header) if header + frame.len() <= BUFFER => header,
            _ => {
                self.tx_free.push(buffer);
                self.counters.tx_too_long += 1;
                return Err(TxError::TooLong);
            }
        };
        buffer[header..header + frame.len()].copy_from_slice(frame);
        let length = header + frame.len();
        // SAFETY: the buffer stays in `tx_busy` untouched until `reclaim` sees it completed.
        match unsafe { self.device.transmit_begin(&buffer[..length]) } {
            Ok(token) => {
                if let Some(slot) = self.tx_busy.get_mut(usize::from(token)) {
                    *slot = Some((buffer, length));
                }
                self.counters.tx_frames += 1;
                Ok(())
            }
            Err(_) => {
                self.tx_free.push(buffer);
                self.counters.tx_ring_full += 1;
                Err(TxError::RingFull)
            }
        }
    }

    /// Takes back the transmit buffers the device is done with.
    fn reclaim(&mut self) {
        while let Some(token) = self.device.poll_transmit() {
            let Some((buffer, length)) = self
                .tx_busy
                .get_mut(usize::from(token))
                .and_then(Option::take)
            else {
                break;
            };
            // SAFETY: `buffer[..length]` is exactly the slice sent under `token`.
            let _ = unsafe { self.device.transmit_complete(token, &buffer[..length]) };
            self.tx_free.push(buffer);
        }
    }

    /// Counts a received frame dropped for not fitting the caller's buffer.
    pub fn count_oversized(&mut self) {
        self.counters.rx_oversized += 1;
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
        let address = map::VIRTIO_MMIO + slot * map::VIRTIO_MMIO_STRIDE;
        let header = NonNull::new(address as *mut VirtIOHeader).expect("non-zero address");
        // SAFETY: each virtio-mmio slot is a separate 0x200-byte MMIO block, mapped as device
        // memory; each slot gets at most one transport, which lives as long as the board.
        let Ok(transport) = (unsafe { MmioTransport::new(header, map::VIRTIO_MMIO_STRIDE) }) else {
            continue; // An empty slot.
        };
        if transport.device_type() != DeviceType::Network {
            continue;
        }
        let Some(port) = Port::new(slot, transport, mac) else {
            continue;
        };
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
        if ports.push(port).is_err() {
            warn!("more than {MAX_PORTS} virtio-net devices: slot {slot} ignored");
            break;
        }
        gic::enable_device_irq(map::VIRTIO_MMIO_IRQ + slot as u32);
        let _ = lines.slots.push(slot);
    }
    (ports, lines)
}
