//! IPsec gateway: NATv4 on the packet, then ESP tunnel-mode encapsulation (RFC 4303) with
//! AES-128-CBC encryption and HMAC-SHA1-96 authentication (RFC 2404), through the crypto
//! engine.
//!
//! Output: a new IPv4 header (tunnel endpoints, protocol 50), the ESP header (SPI, sequence
//! number), a 16-byte IV, the encrypted inner packet with its ESP trailer (padding 1, 2, 3...,
//! pad length, next header 4 = IPv4), and the 12-byte ICV over ESP header, IV and ciphertext.
//! The IV is the AES encryption, under a key of its own, of the SPI and sequence number:
//! unpredictable without that key, never repeated within an SA. The sequence number is the
//! SA's state (so a receiver's anti-replay window holds across a migration). Request format:
//! docs/services.md, section IPsec.

use alloc::vec::Vec;

use super::ipv4::ones_complement_sum;
use super::nat::{LpmError, NatTable, Rule};
use crate::codec::Response;
use crate::collections::{SnapshotReader, SnapshotWriter};
use crate::engines::{CryptoEngine, AES_BLOCK};
use crate::kind::ServiceKind;
use crate::service::{Context, Service, ServiceError, ServiceId, ServiceIdentity, StateError};

/// IP protocol number of ESP.
pub const PROTO_ESP: u8 = 50;
/// ESP next-header value for a tunnelled IPv4 packet.
pub const NEXT_IPV4: u8 = 4;
/// Bytes of the integrity check value (HMAC-SHA1-96).
pub const ICV: usize = 12;
/// Bytes added around the inner packet at most: outer header, ESP header, IV, padding up to
/// a block plus the two trailer bytes, ICV.
pub const OVERHEAD: usize = 20 + 8 + AES_BLOCK + (AES_BLOCK + 1) + ICV;

const STATE_VERSION: u8 = 1;

/// One outbound security association.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SecurityAssociation {
    /// Security parameter index.
    pub spi: u32,
    /// AES-128 key encrypting the payload.
    pub encryption_key: [u8; 16],
    /// AES-128 key deriving the IVs.
    pub iv_key: [u8; 16],
    /// HMAC-SHA1 key (20 bytes, RFC 2404).
    pub authentication_key: [u8; 20],
    /// Outer source address (this gateway).
    pub tunnel_source: u32,
    /// Outer destination address (the peer gateway).
    pub tunnel_destination: u32,
}

/// The IPsec gateway service.
pub struct IpSec {
    identity: ServiceIdentity,
    nat: NatTable,
    sa: SecurityAssociation,
    /// Sequence number of the last packet sent.
    sequence: u32,
}

impl IpSec {
    /// A gateway translating with `rules` and encapsulating under `sa`.
    pub fn new(id: ServiceId, rules: &[Rule], sa: SecurityAssociation) -> Result<Self, LpmError> {
        Ok(Self {
            identity: ServiceIdentity::new(id, ServiceKind::IpSec, 512, 2500),
            nat: NatTable::new(rules)?,
            sa,
            sequence: 0,
        })
    }
}

/// The IV of packet `sequence` under `sa`.
fn iv(
    crypto: &dyn CryptoEngine,
    sa: &SecurityAssociation,
    sequence: u32,
) -> Result<[u8; 16], ServiceError> {
    let mut block = [0u8; 16];
    block[..4].copy_from_slice(&sa.spi.to_be_bytes());
    block[4..8].copy_from_slice(&sequence.to_be_bytes());
    crypto
        .aes128_cbc_encrypt(&sa.iv_key, &[0; 16], &mut block)
        .map_err(|_| ServiceError::Engine)?;
    Ok(block)
}

impl Service for IpSec {
    fn identity(&self) -> ServiceIdentity {
        self.identity
    }

    fn handle(
        &mut self,
        ctx: &mut Context<'_>,
        request: &[u8],
        response: &mut [u8],
    ) -> Result<usize, ServiceError> {
        let crypto = ctx.engines.crypto();
        let sequence = self.sequence.checked_add(1).ok_or(ServiceError::Refused)?;
        let mut out = Response::new(response)?;
        // Place the inner packet where it will be encrypted, then translate it there.
        let start = 20 + 8 + AES_BLOCK;
        let room = out.space().saturating_sub(start);
        let copy = request.len().min(room);
        let body = out.reserve(out.space())?;
        if body.len() < start {
            return Err(ServiceError::ResponseTooSmall);
        }
        body[start..start + copy].copy_from_slice(&request[..copy]);
        let inner = self
            .nat
            .translate(&mut body[start..start + copy])
            .map_err(|e| match e {
                // The packet did not fit where it would be encrypted.
                ServiceError::Truncated | ServiceError::BadLength if copy < request.len() => {
                    ServiceError::ResponseTooSmall
                }
                e => e,
            })?;
        let padded = (inner + 2).next_multiple_of(AES_BLOCK);
        let total = start + padded + ICV;
        if total > body.len() || total > usize::from(u16::MAX) {
            return Err(ServiceError::ResponseTooSmall);
        }
        // ESP trailer: padding 1, 2, 3..., pad length, next header.
        let pad = padded - inner - 2;
        for (i, byte) in body[start + inner..start + inner + pad]
            .iter_mut()
            .enumerate()
        {
            *byte = i as u8 + 1;
        }
        body[start + padded - 2] = pad as u8;
        body[start + padded - 1] = NEXT_IPV4;
        let iv = iv(crypto, &self.sa, sequence)?;
        crypto
            .aes128_cbc_encrypt(
                &self.sa.encryption_key,
                &iv,
                &mut body[start..start + padded],
            )
            .map_err(|_| ServiceError::Engine)?;
        // Outer IPv4 header.
        let header = &mut body[..20];
        header.copy_from_slice(&[
            0x45, 0, 0, 0, 0, 0, 0x40, 0, 64, PROTO_ESP, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
        ]);
        header[2..4].copy_from_slice(&(total as u16).to_be_bytes());
        header[4..6].copy_from_slice(&(sequence as u16).to_be_bytes());
        header[12..16].copy_from_slice(&self.sa.tunnel_source.to_be_bytes());
        header[16..20].copy_from_slice(&self.sa.tunnel_destination.to_be_bytes());
        let checksum = !ones_complement_sum(header);
        header[10..12].copy_from_slice(&checksum.to_be_bytes());
        // ESP header and IV, then the ICV over them and the ciphertext.
        body[20..24].copy_from_slice(&self.sa.spi.to_be_bytes());
        body[24..28].copy_from_slice(&sequence.to_be_bytes());
        body[28..start].copy_from_slice(&iv);
        let icv = crypto.hmac_sha1(&self.sa.authentication_key, &[&body[20..start + padded]]);
        body[start + padded..total].copy_from_slice(&icv[..ICV]);
        self.sequence = sequence;
        Ok(1 + total)
    }

    fn snapshot(&self, out: &mut Vec<u8>) {
        let mut w = SnapshotWriter::new(out, ServiceKind::IpSec, STATE_VERSION);
        w.record(&self.sa.spi).record(&self.sequence);
        w.finish();
    }

    fn restore(&mut self, snapshot: &[u8]) -> Result<(), StateError> {
        let mut r = SnapshotReader::open(snapshot, ServiceKind::IpSec, STATE_VERSION)?;
        let spi: u32 = r.record()?;
        let sequence = r.record()?;
        r.finish()?;
        if spi != self.sa.spi {
            return Err(StateError::WrongKind);
        }
        self.sequence = sequence;
        Ok(())
    }
}

/// Verifies and decrypts one ESP tunnel packet made under `sa`; returns the sequence number
/// and the inner packet. The receiving side, used to check the gateway.
pub fn decapsulate(
    crypto: &dyn CryptoEngine,
    sa: &SecurityAssociation,
    packet: &[u8],
) -> Result<(u32, Vec<u8>), ServiceError> {
    let start = 20 + 8 + AES_BLOCK;
    if packet.len() < start + AES_BLOCK + ICV || packet[9] != PROTO_ESP {
        return Err(ServiceError::BadField);
    }
    let (esp, icv) = packet[20..].split_at(packet.len() - 20 - ICV);
    let expected = crypto.hmac_sha1(&sa.authentication_key, &[esp]);
    if expected[..ICV] != *icv || esp[..4] != sa.spi.to_be_bytes() {
        return Err(ServiceError::Refused);
    }
    let sequence = u32::from_be_bytes([esp[4], esp[5], esp[6], esp[7]]);
    let mut iv = [0u8; 16];
    iv.copy_from_slice(&esp[8..24]);
    let mut plain = esp[24..].to_vec();
    crypto
        .aes128_cbc_decrypt(&sa.encryption_key, &iv, &mut plain)
        .map_err(|_| ServiceError::BadLength)?;
    let (&next, rest) = plain.split_last().ok_or(ServiceError::BadField)?;
    let (&pad, rest) = rest.split_last().ok_or(ServiceError::BadField)?;
    let inner_len = rest
        .len()
        .checked_sub(usize::from(pad))
        .ok_or(ServiceError::BadField)?;
    let padding_ok = rest[inner_len..]
        .iter()
        .enumerate()
        .all(|(i, &b)| usize::from(b) == i + 1);
    if next != NEXT_IPV4 || !padding_ok {
        return Err(ServiceError::BadField);
    }
    plain.truncate(inner_len);
    Ok((sequence, plain))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engines::SoftwareEngines;
    use crate::services::ipv4::udp_packet;
    use crate::services::nat::Nat;
    use crate::services::testing::{call, Harness};

    fn sa() -> SecurityAssociation {
        SecurityAssociation {
            spi: 0x1000_0001,
            encryption_key: *b"0123456789abcdef",
            iv_key: *b"fedcba9876543210",
            authentication_key: *b"authentication key!!",
            tunnel_source: 0xcb00_7101,
            tunnel_destination: 0xcb00_7102,
        }
    }

    fn rules() -> [Rule; 1] {
        [Rule {
            prefix: 0x0a00_0000,
            len: 8,
            to: 0xac10_0000,
        }]
    }

    #[test]
    fn encapsulates_the_translated_packet() {
        let mut h = Harness::new(IpSec::new(ServiceId(1), &rules(), sa()).unwrap());
        let mut nat = Harness::new(Nat::new(ServiceId(2), &rules()).unwrap());
        for (n, len) in [0usize, 1, 13, 14, 15, 16, 100, 472]
            .into_iter()
            .enumerate()
        {
            let packet = udp_packet(0xc0a8_0001, 0x0a01_0203, (12345, 53), &vec![n as u8; len]);
            let esp = h.ok(&packet);
            assert_eq!(ones_complement_sum(&esp[..20]), 0xffff);
            assert_eq!(u16::from_be_bytes([esp[2], esp[3]]) as usize, esp.len());
            let padded = (packet.len() + 2).next_multiple_of(AES_BLOCK);
            assert_eq!(esp.len(), 20 + 8 + AES_BLOCK + padded + ICV);
            assert!(esp.len() <= packet.len() + OVERHEAD);
            let (sequence, inner) = decapsulate(&SoftwareEngines, &sa(), &esp).unwrap();
            assert_eq!(sequence, n as u32 + 1);
            assert_eq!(
                inner,
                nat.ok(&packet),
                "the inner packet is the NAT's output"
            );
        }
    }

    #[test]
    fn tampering_and_bad_packets() {
        let mut h = Harness::new(IpSec::new(ServiceId(1), &rules(), sa()).unwrap());
        let packet = udp_packet(1, 0x0a00_0001, (12345, 53), b"secret");
        let esp = h.ok(&packet);
        for at in [25, 40, esp.len() - 1] {
            let mut bad = esp.clone();
            bad[at] ^= 1;
            assert_eq!(
                decapsulate(&SoftwareEngines, &sa(), &bad).unwrap_err(),
                ServiceError::Refused
            );
        }
        assert_eq!(
            h.err(&udp_packet(1, 0x0b00_0001, (12345, 53), b"")),
            ServiceError::NotFound
        );
        assert_eq!(h.err(&packet[..12]), ServiceError::Truncated);
        for size in [0, 1, 30, 44, 45, 60] {
            let mut small = vec![0u8; size];
            assert_eq!(
                call(&mut h.service, &packet, &mut small),
                Err(ServiceError::ResponseTooSmall)
            );
        }
        // Refused requests did not use up sequence numbers.
        let (sequence, _) = decapsulate(&SoftwareEngines, &sa(), &h.ok(&packet)).unwrap();
        assert_eq!(sequence, 2);
    }

    #[test]
    fn migration_keeps_the_sequence_and_exhaustion_is_refused() {
        let mut h = Harness::new(IpSec::new(ServiceId(1), &rules(), sa()).unwrap());
        let packet = udp_packet(1, 0x0a00_0001, (12345, 53), b"x");
        h.ok(&packet);
        let mut other = Harness::new(IpSec::new(ServiceId(1), &rules(), sa()).unwrap());
        h.migrate_to(&mut other);
        assert_eq!(h.ok(&packet), other.ok(&packet));
        other.service.sequence = u32::MAX;
        assert_eq!(other.err(&packet), ServiceError::Refused);
        let mut wrong = sa();
        wrong.spi = 9;
        let mut bytes = Vec::new();
        h.service.snapshot(&mut bytes);
        let mut stranger = IpSec::new(ServiceId(1), &rules(), wrong).unwrap();
        assert_eq!(stranger.restore(&bytes), Err(StateError::WrongKind));
    }
}
