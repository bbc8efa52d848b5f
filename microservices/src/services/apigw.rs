//! API gateway: authenticates each call with an HMAC-SHA1-96 token through the crypto engine,
//! then rate-limits each client with a token bucket kept in `f64`.
//!
//! A token proves the holder was given `(client, expiry)` by whoever holds the gateway key:
//! `tag = HMAC-SHA1(key, client || expiry)[..12]` (little-endian fields). A call is refused if
//! the token expired, the tag is wrong, or the client's bucket is empty; buckets refill at
//! `rate` tokens per second up to `burst`. Buckets live in a reliable map. Request format:
//! docs/services.md, section API gateway.

use alloc::vec::Vec;

use crate::codec::{Request, Response};
use crate::collections::{ReliableArray, ReliableMap, SnapshotReader, SnapshotWriter};
use crate::engines::CryptoEngine;
use crate::kind::ServiceKind;
use crate::service::{Context, Service, ServiceError, ServiceId, ServiceIdentity, StateError};

/// Bytes of a token's tag (HMAC-SHA1 truncated to 96 bits).
pub const TAG: usize = 12;

/// Operation codes (first request byte).
pub mod op {
    /// An API call, with its token.
    pub const CALL: u8 = 1;
    /// Read the counters.
    pub const STATS: u8 = 2;
}

/// The tag of the token for `client` valid until `expiry_ns`, under `key`.
pub fn token_tag(crypto: &dyn CryptoEngine, key: &[u8], client: u32, expiry_ns: u64) -> [u8; TAG] {
    let mac = crypto.hmac_sha1(key, &[&client.to_le_bytes(), &expiry_ns.to_le_bytes()]);
    let mut tag = [0u8; TAG];
    tag.copy_from_slice(&mac[..TAG]);
    tag
}

/// Request builders (client side; they allocate).
pub mod request {
    use super::{op, TAG};
    use crate::codec::RequestBuilder;
    use alloc::vec::Vec;

    /// A call by `client` with its token (`expiry_ns`, `tag`) and `payload`.
    pub fn call(client: u32, expiry_ns: u64, tag: &[u8; TAG], payload: &[u8]) -> Vec<u8> {
        RequestBuilder::new(op::CALL)
            .u32(client)
            .u64(expiry_ns)
            .bytes(tag)
            .bytes(payload)
            .build()
    }

    /// Read the counters.
    pub fn stats() -> Vec<u8> {
        RequestBuilder::new(op::STATS).build()
    }
}

const STATE_VERSION: u8 = 1;

/// Deploy-time configuration.
#[derive(Clone, Debug, PartialEq)]
pub struct ApiGatewayConfig {
    /// Most clients with a bucket.
    pub clients: usize,
    /// Tokens added per second.
    pub rate: f64,
    /// Bucket size (and a new client's tokens).
    pub burst: f64,
    /// HMAC key tokens are signed with.
    pub key: Vec<u8>,
    /// Seed of the bucket table's hash function.
    pub seed: u64,
}

impl Default for ApiGatewayConfig {
    fn default() -> Self {
        Self {
            clients: 4096,
            rate: 1000.0,
            burst: 100.0,
            key: b"e3 api gateway default key!".to_vec(),
            seed: 0x6170_6967_7700_0000,
        }
    }
}

/// Counters, in [`op::STATS`] order.
#[derive(Clone, Copy)]
enum Counter {
    Allowed,
    BadToken,
    RateLimited,
}

/// A client's bucket: tokens and when they were last counted (ns).
type Bucket = (f64, u64);

/// The API gateway service.
pub struct ApiGateway {
    identity: ServiceIdentity,
    rate: f64,
    burst: f64,
    key: Vec<u8>,
    buckets: ReliableMap<u32, Bucket>,
    counters: ReliableArray<u64>,
}

impl ApiGateway {
    /// Heap bytes an instance with `config` allocates.
    pub fn footprint(config: &ApiGatewayConfig) -> usize {
        config.key.len()
            + ReliableMap::<u32, Bucket>::bytes_for(config.clients)
            + ReliableArray::<u64>::bytes_for(3)
    }

    /// A gateway with no client yet. A non-finite or negative rate or burst counts as 0.
    pub fn new(id: ServiceId, config: ApiGatewayConfig) -> Self {
        let sane = |x: f64| if x.is_finite() && x > 0.0 { x } else { 0.0 };
        Self {
            identity: ServiceIdentity::new(id, ServiceKind::ApiGateway, 512, 1500),
            rate: sane(config.rate),
            burst: sane(config.burst),
            key: config.key,
            buckets: ReliableMap::with_capacity(config.clients, config.seed),
            counters: ReliableArray::filled(3, 0),
        }
    }

    fn refuse(&mut self, counter: Counter) -> ServiceError {
        self.counters[counter as usize] += 1;
        ServiceError::Refused
    }
}

impl Service for ApiGateway {
    fn identity(&self) -> ServiceIdentity {
        self.identity
    }

    fn handle(
        &mut self,
        ctx: &mut Context<'_>,
        request: &[u8],
        response: &mut [u8],
    ) -> Result<usize, ServiceError> {
        let mut request = Request::new(request);
        match request.u8()? {
            op::CALL => {
                let client = request.u32()?;
                let expiry = request.u64()?;
                let tag: [u8; TAG] = request.array()?;
                let mut out = Response::new(response)?;
                if out.space() < 8 {
                    return Err(ServiceError::ResponseTooSmall);
                }
                let expected = token_tag(ctx.engines.crypto(), &self.key, client, expiry);
                // Constant time: every byte is compared whatever the first difference.
                let difference = expected.iter().zip(&tag).fold(0, |d, (a, b)| d | (a ^ b));
                if difference != 0 || expiry < ctx.now_ns {
                    return Err(self.refuse(Counter::BadToken));
                }
                let (rate, burst, now) = (self.rate, self.burst, ctx.now_ns);
                let Ok((bucket, _)) = self
                    .buckets
                    .get_or_insert_with(&client, || (client, (burst, now)))
                else {
                    return Err(ServiceError::Full);
                };
                let elapsed = now.saturating_sub(bucket.1) as f64;
                bucket.0 = (bucket.0 + elapsed * rate / 1e9).min(burst);
                bucket.1 = bucket.1.max(now);
                if bucket.0 < 1.0 {
                    return Err(self.refuse(Counter::RateLimited));
                }
                bucket.0 -= 1.0;
                let left = bucket.0;
                self.counters[Counter::Allowed as usize] += 1;
                out.f64(left)?;
                Ok(out.finish())
            }
            op::STATS => {
                let mut out = Response::new(response)?;
                for &c in self.counters.iter() {
                    out.u64(c)?;
                }
                out.u64(self.buckets.len() as u64)?;
                Ok(out.finish())
            }
            _ => Err(ServiceError::BadOpcode),
        }
    }

    fn snapshot(&self, out: &mut Vec<u8>) {
        let mut w = SnapshotWriter::new(out, ServiceKind::ApiGateway, STATE_VERSION);
        self.buckets.snapshot(&mut w);
        self.counters.snapshot(&mut w);
        w.finish();
    }

    fn restore(&mut self, snapshot: &[u8]) -> Result<(), StateError> {
        let mut r = SnapshotReader::open(snapshot, ServiceKind::ApiGateway, STATE_VERSION)?;
        let buckets = self.buckets.decode_like(&mut r)?;
        let counters = ReliableArray::decode(&mut r, self.counters.len())?;
        r.finish()?;
        if buckets
            .iter()
            .any(|(_, b)| !(b.0 >= 0.0 && b.0 <= self.burst))
        {
            return Err(StateError::Corrupt);
        }
        self.buckets = buckets;
        self.counters = counters;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::request::{call, stats};
    use super::*;
    use crate::engines::SoftwareEngines;
    use crate::services::testing::Harness;
    use proptest::prelude::*;

    const KEY: &[u8] = b"gateway secret";
    const MS: u64 = 1_000_000;

    fn gateway(rate: f64, burst: f64, clients: usize) -> Harness<ApiGateway> {
        Harness::new(ApiGateway::new(
            ServiceId(1),
            ApiGatewayConfig {
                clients,
                rate,
                burst,
                key: KEY.to_vec(),
                seed: 2,
            },
        ))
    }

    fn signed(client: u32, expiry: u64) -> Vec<u8> {
        call(
            client,
            expiry,
            &token_tag(&SoftwareEngines, KEY, client, expiry),
            b"GET /v1/things",
        )
    }

    #[test]
    fn tokens_are_hmac_sha1_96_of_client_and_expiry() {
        // The tag is the first 12 bytes of the RFC 2104 HMAC-SHA1 (checked against the
        // RFC 2202 vectors by the engines' known-answer tests).
        let full = SoftwareEngines.hmac_sha1(KEY, &[&[7, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0]]);
        assert_eq!(token_tag(&SoftwareEngines, KEY, 7, 1), full[..12]);
    }

    #[test]
    fn bucket_by_hand() {
        // 4 tokens per second, burst 2: at quarter seconds the arithmetic is exact.
        let mut h = gateway(4.0, 2.0, 8);
        let far = u64::MAX;
        let at = |h: &mut Harness<ApiGateway>, ms: u64| {
            h.now_ns = ms * MS;
            h.answer(&signed(1, far))
                .map(|a| f64::from_le_bytes(a[..8].try_into().unwrap()))
        };
        assert_eq!(at(&mut h, 0), Ok(1.0));
        assert_eq!(at(&mut h, 0), Ok(0.0));
        assert_eq!(at(&mut h, 0), Err(ServiceError::Refused));
        assert_eq!(at(&mut h, 250), Ok(0.0));
        assert_eq!(at(&mut h, 375), Err(ServiceError::Refused));
        assert_eq!(at(&mut h, 500), Ok(0.0));
        assert_eq!(at(&mut h, 10_000), Ok(1.0));
        let counters: Vec<u64> = h
            .ok(&stats())
            .chunks(8)
            .map(|c| u64::from_le_bytes(c.try_into().unwrap()))
            .collect();
        assert_eq!(counters, [5, 0, 2, 1]);
    }

    #[test]
    fn forged_expired_and_malformed_tokens_are_refused() {
        let mut h = gateway(10.0, 5.0, 1);
        h.now_ns = 1000;
        let mut forged = signed(1, 5000);
        forged[13] ^= 1;
        assert_eq!(h.err(&forged), ServiceError::Refused);
        assert_eq!(h.err(&signed(1, 999)), ServiceError::Refused);
        let mut other_client = signed(1, 5000);
        other_client[1] = 2;
        assert_eq!(h.err(&other_client), ServiceError::Refused);
        assert_eq!(h.err(&signed(1, 5000)[..20]), ServiceError::Truncated);
        h.ok(&signed(1, 5000));
        assert_eq!(h.err(&signed(2, 5000)), ServiceError::Full);
        let mut other = gateway(10.0, 5.0, 1);
        h.migrate_to(&mut other);
        assert_eq!(h.answer(&signed(1, 5000)), other.answer(&signed(1, 5000)));
        assert_eq!(h.ok(&stats()), other.ok(&stats()));
    }

    proptest! {
        #[test]
        fn never_more_than_burst_plus_refill(gaps in proptest::collection::vec(0u64..400, 1..200)) {
            let (rate, burst) = (20.0, 3.0);
            let mut h = gateway(rate, burst, 4);
            let mut now = 0;
            let mut allowed_at = Vec::new();
            for gap in gaps {
                now += gap * MS / 10;
                h.now_ns = now;
                if h.answer(&signed(9, u64::MAX)).is_ok() {
                    allowed_at.push(now);
                }
            }
            // In every window [t_i, t_j] at most burst + rate * (t_j - t_i) calls pass.
            for i in 0..allowed_at.len() {
                for j in i..allowed_at.len() {
                    let span = (allowed_at[j] - allowed_at[i]) as f64 / 1e9;
                    prop_assert!((j - i + 1) as f64 <= burst + rate * span + 1e-9);
                }
            }
        }
    }
}
