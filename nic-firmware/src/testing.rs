//! Test helpers for the runtime's own tests and the software NIC: a small service, and the
//! client's side of the wire (building and reading UDP frames).

use alloc::vec;
use alloc::vec::Vec;

use microservices::{Context, Service, ServiceError, ServiceId, ServiceIdentity, ServiceKind};

use crate::platform::Endpoint;
use crate::wire::{
    EtherType, EthernetFrame, EthernetRepr, IpProtocol, Ipv4Packet, Ipv4Repr, MacAddress,
    UdpPacket, UdpRepr,
};

/// Answers a request with status 0 and the request upper-cased (ASCII); counts requests in a
/// state that snapshots to 8 bytes. Never uses engines.
#[derive(Debug)]
pub struct Upper {
    id: ServiceId,
    handled: u64,
}

impl Upper {
    /// Instance `id`.
    pub fn new(id: u16) -> Self {
        Upper {
            id: ServiceId(id),
            handled: 0,
        }
    }
}

impl Service for Upper {
    fn identity(&self) -> ServiceIdentity {
        ServiceIdentity {
            id: self.id,
            // The catalogue has no test kind; Count is the closest in cost and statefulness.
            kind: ServiceKind::Count,
            name: "upper",
            stateful: true,
            request_size_hint: 64,
            cost_hint_ns: 50,
        }
    }

    fn handle(
        &mut self,
        _: &mut Context<'_>,
        request: &[u8],
        response: &mut [u8],
    ) -> Result<usize, ServiceError> {
        let out = response
            .get_mut(..request.len() + 1)
            .ok_or(ServiceError::ResponseTooSmall)?;
        out[0] = 0;
        for (o, i) in out[1..].iter_mut().zip(request) {
            *o = i.to_ascii_uppercase();
        }
        self.handled += 1;
        Ok(request.len() + 1)
    }

    fn snapshot(&self, out: &mut alloc::vec::Vec<u8>) {
        out.extend_from_slice(&self.handled.to_le_bytes());
    }

    fn restore(&mut self, snapshot: &[u8]) -> Result<(), microservices::service::StateError> {
        let bytes: [u8; 8] = snapshot
            .try_into()
            .map_err(|_| microservices::service::StateError::Truncated)?;
        self.handled = u64::from_le_bytes(bytes);
        Ok(())
    }
}

/// A UDP frame from `source` at `source_mac` to `destination` at `destination_mac`, checksums
/// and all, as a client on the network would send it.
pub fn udp_frame(
    source_mac: MacAddress,
    destination_mac: MacAddress,
    source: Endpoint,
    destination: Endpoint,
    payload: &[u8],
) -> Vec<u8> {
    let mut frame = vec![0u8; 42 + payload.len()];
    frame[42..].copy_from_slice(payload);
    let ethernet = EthernetRepr {
        source: source_mac,
        destination: destination_mac,
        ethertype: EtherType::Ipv4,
    };
    let ip = Ipv4Repr {
        source: source.ip,
        destination: destination.ip,
        protocol: IpProtocol::Udp,
        payload_len: 8 + payload.len(),
        ttl: 64,
    };
    let udp = UdpRepr {
        source_port: source.port,
        destination_port: destination.port,
    };
    let built = ethernet
        .emit(&mut frame)
        .and_then(|rest| ip.emit(rest))
        .and_then(|rest| udp.emit_in_place(rest, payload.len(), source.ip, destination.ip));
    assert!(built.is_ok(), "test frame too large: {built:?}");
    frame
}

/// A UDP frame's addressing and data, after checking every header; `None` if it is not one.
pub fn parse_udp_frame(frame: &[u8]) -> Option<(MacAddress, Endpoint, Endpoint, Vec<u8>)> {
    let ethernet = EthernetFrame::parse(frame).ok()?;
    let ip = Ipv4Packet::parse(ethernet.payload).ok()?;
    let udp = UdpPacket::parse(ip.payload, ip.source(), ip.destination()).ok()?;
    Some((
        ethernet.header.destination,
        Endpoint {
            ip: ip.source(),
            port: udp.source_port(),
        },
        Endpoint {
            ip: ip.destination(),
            port: udp.destination_port(),
        },
        udp.payload.to_vec(),
    ))
}
