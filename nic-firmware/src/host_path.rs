//! The host path over the PCIe channel (`pcie-channel`): datagrams for the host IP go to the
//! host as `UdpRequest` messages, the host's `UdpReply` messages come back to the wire.
//!
//! Each datagram is one channel message: the channel's 16-byte message header (kind and UDP
//! addressing, docs/pcie-channel.md section 6) followed by the UDP payload, written straight
//! into the ring slot. The flow id is the runtime's symmetric 5-tuple hash, so the channel keeps
//! each flow in order across its engines. Messages from the host are untrusted: anything but a
//! well-formed `UdpReply` that fits a frame is counted and skipped.

use core::net::Ipv4Addr;

use pcie_channel::message::{MessageHeader, UdpAddressing, HEADER_BYTES};
use pcie_channel::{ChannelError, ReceiveStats, Receiver, SendStats, Sender};

use crate::platform::{DatagramMeta, Endpoint, HostPath, HostPathError};
use crate::runtime::{flow_of, MAX_UDP_PAYLOAD};
use crate::wire::Ipv4Address;

/// Messages from the host that were not datagrams the NIC could send, by reason.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct HostMessageDrops {
    /// A message whose header did not parse.
    pub malformed: u64,
    /// A well-formed message of a kind other than `UdpReply`.
    pub wrong_kind: u64,
    /// A datagram larger than one frame carries.
    pub too_large: u64,
}

impl HostMessageDrops {
    /// Every message refused, whatever the reason.
    pub const fn total(&self) -> u64 {
        self.malformed + self.wrong_kind + self.too_large
    }
}

/// The NIC's end of the channel: a sender on its engines and the receiver of the host's
/// direction.
pub struct ChannelHostPath<'c> {
    sender: Sender<'c>,
    receiver: Receiver<'c>,
    drops: HostMessageDrops,
    message: [u8; HEADER_BYTES + MAX_UDP_PAYLOAD],
}

impl<'c> ChannelHostPath<'c> {
    /// A host path over `sender` (NIC to host) and `receiver` (host to NIC).
    pub fn new(sender: Sender<'c>, receiver: Receiver<'c>) -> Self {
        ChannelHostPath {
            sender,
            receiver,
            drops: HostMessageDrops::default(),
            message: [0; HEADER_BYTES + MAX_UDP_PAYLOAD],
        }
    }

    /// What was skipped from the host so far.
    pub fn drops(&self) -> HostMessageDrops {
        self.drops
    }

    /// The channel's own statistics of the host-to-NIC direction (corrupt, orphaned or skipped
    /// descriptors included).
    pub fn receive_stats(&self) -> ReceiveStats {
        self.receiver.stats()
    }

    /// The channel's statistics of the NIC-to-host direction.
    pub fn send_stats(&self) -> SendStats {
        self.sender.stats()
    }
}

fn to_core(address: Ipv4Address) -> Ipv4Addr {
    Ipv4Addr::from(address.0)
}

fn from_core(address: Ipv4Addr) -> Ipv4Address {
    Ipv4Address(address.octets())
}

impl HostPath for ChannelHostPath<'_> {
    fn send_to_host(&mut self, meta: &DatagramMeta, payload: &[u8]) -> Result<(), HostPathError> {
        let header = MessageHeader::UdpRequest(UdpAddressing {
            src_ip: to_core(meta.remote.ip),
            src_port: meta.remote.port,
            dst_ip: to_core(meta.local.ip),
            dst_port: meta.local.port,
        });
        let len = HEADER_BYTES + payload.len();
        let mut reservation = self
            .sender
            .reserve(meta.flow, len)
            .map_err(|error| match error {
                ChannelError::WouldBlock => HostPathError::Full,
                ChannelError::TooLarge { .. } | ChannelError::BufferTooSmall { .. } => {
                    HostPathError::TooLarge
                }
                ChannelError::Failed(_) | ChannelError::Disconnected => HostPathError::Disconnected,
            })?;
        let buffer = reservation.buffer();
        let (front, rest) = buffer.split_at_mut(HEADER_BYTES.min(buffer.len()));
        header.emit(front).map_err(|_| HostPathError::TooLarge)?;
        rest.get_mut(..payload.len())
            .ok_or(HostPathError::TooLarge)?
            .copy_from_slice(payload);
        reservation.commit(len).map_err(|_| HostPathError::TooLarge)
    }

    fn receive_from_host(&mut self, payload: &mut [u8]) -> Option<(DatagramMeta, usize)> {
        // Skip (and count) at most a burst of unusable messages per call.
        for _ in 0..crate::tm::BURST {
            let received = match self.receiver.recv() {
                Ok(Some(received)) => received,
                Ok(None) | Err(_) => return None,
            };
            let message = received.message();
            if message.len() > self.message.len() {
                self.drops.too_large += 1;
                continue;
            }
            let Ok(len) = message.copy_to(&mut self.message) else {
                self.drops.malformed += 1;
                continue;
            };
            drop(received);
            let Ok((header, data)) = MessageHeader::parse(&self.message[..len]) else {
                self.drops.malformed += 1;
                continue;
            };
            let MessageHeader::UdpReply(addressing) = header else {
                self.drops.wrong_kind += 1;
                continue;
            };
            let Some(out) = payload.get_mut(..data.len()) else {
                self.drops.too_large += 1;
                continue;
            };
            out.copy_from_slice(data);
            let local = Endpoint {
                ip: from_core(addressing.src_ip),
                port: addressing.src_port,
            };
            let remote = Endpoint {
                ip: from_core(addressing.dst_ip),
                port: addressing.dst_port,
            };
            let meta = DatagramMeta {
                remote,
                local,
                flow: flow_of(&remote, &local),
            };
            return Some((meta, data.len()));
        }
        None
    }
}
