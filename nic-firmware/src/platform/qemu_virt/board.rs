//! The runtime's view of this board: [`QemuVirt`] implements the runtime's `Board` trait, and
//! the virtio-net [`Port`] its `Port` trait.

#![cfg(target_os = "none")]

use alloc::boxed::Box;
use nic_firmware::platform::{self, Board, Devices, PortError, MAX_PORTS};
use nic_firmware::wire::MacAddress;
use spin::Mutex;

use super::host_link::HostLink;
use super::virtio_net::{Port, TxError};
use super::{cores, timer};

/// Line rate the runtime assumes for a virtio-net port (QEMU does not limit it; 10 Gb/s keeps
/// link utilisation meaningful for the agent).
const LINK_BITS_PER_SECOND: u64 = 10_000_000_000;

/// The qemu-virt board as the runtime sees it.
pub struct QemuVirt {
    devices: Mutex<Option<Devices<Box<Port>, HostLink>>>,
    cores: usize,
}

impl QemuVirt {
    /// The board with its ports and host link, running `cores` cores.
    pub fn new(ports: heapless::Vec<Box<Port>, MAX_PORTS>, host: HostLink, cores: usize) -> Self {
        QemuVirt {
            devices: Mutex::new(Some(Devices { ports, host })),
            cores,
        }
    }
}

impl Board for QemuVirt {
    type Port = Box<Port>;
    type Host = HostLink;

    fn take_devices(&mut self) -> Devices<Box<Port>, HostLink> {
        self.devices.lock().take().unwrap_or(Devices {
            ports: heapless::Vec::new(),
            host: None,
        })
    }

    fn core_count(&self) -> usize {
        self.cores
    }

    fn core_id(&self) -> usize {
        cores::this_core()
    }

    fn now_ns(&self) -> u64 {
        timer::now_ns()
    }
}

impl platform::Port for Port {
    fn mac(&self) -> MacAddress {
        MacAddress(Port::mac(self))
    }

    /// Frames too long for `buffer` are counted and skipped; the loop ends because
    /// [`Port::receive`] returns `false` whenever it took nothing off the queue.
    fn receive(&mut self, buffer: &mut [u8]) -> Option<usize> {
        let mut length = None;
        while length.is_none() {
            let took = Port::receive(self, |frame| {
                if let Some(slot) = buffer.get_mut(..frame.len()) {
                    slot.copy_from_slice(frame);
                    length = Some(frame.len());
                }
            });
            if !took {
                return None;
            }
            if length.is_none() {
                self.count_oversized();
            }
        }
        length
    }

    fn transmit(&mut self, frame: &[u8]) -> Result<(), PortError> {
        Port::transmit(self, frame).map_err(|e| match e {
            TxError::RingFull => PortError::Full,
            TxError::TooLong => PortError::TooLong,
            TxError::Down => PortError::LinkDown,
        })
    }

    fn link_bits_per_second(&self) -> u64 {
        LINK_BITS_PER_SECOND
    }

    /// A lower bound: 1 when a completed receive waits in the used ring, else 0. virtio-drivers
    /// does not expose the used index, so the ring's full backlog cannot be read; the frames
    /// the runtime holds at the port and in the core queues are counted exactly either way.
    fn pending(&mut self) -> usize {
        usize::from(Port::receive_waiting(self))
    }
}
