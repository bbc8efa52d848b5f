//! Test doubles for the runtime's own tests and the software NIC: a small service and engines
//! for services that call none.

use microservices::engines::{
    CryptoEngine, EngineError, Engines, FetchAddEngine, PatternEngine, PatternMatch, PatternSet,
};
use microservices::{Context, Service, ServiceError, ServiceId, ServiceIdentity, ServiceKind};

use core::sync::atomic::{AtomicU64, Ordering};

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

/// Engines for services that call none: every crypto call fails, the pattern engine finds
/// nothing, fetch-and-add is a plain atomic add.
#[derive(Debug, Default)]
pub struct NoEngines;

impl CryptoEngine for NoEngines {
    fn aes128_cbc_encrypt(
        &self,
        _: &[u8; 16],
        _: &[u8; 16],
        _: &mut [u8],
    ) -> Result<(), EngineError> {
        Err(EngineError::BadLength)
    }

    fn aes128_cbc_decrypt(
        &self,
        _: &[u8; 16],
        _: &[u8; 16],
        _: &mut [u8],
    ) -> Result<(), EngineError> {
        Err(EngineError::BadLength)
    }

    fn hmac_sha1(&self, _: &[u8], _: &[&[u8]]) -> [u8; 20] {
        [0; 20]
    }
}

impl PatternEngine for NoEngines {
    fn scan(&self, _: &PatternSet, _: &[u8], _: &mut dyn FnMut(PatternMatch) -> bool) {}
}

impl FetchAddEngine for NoEngines {
    fn fetch_add(&self, cell: &AtomicU64, delta: u64) -> u64 {
        cell.fetch_add(delta, Ordering::Relaxed)
    }
}

impl Engines for NoEngines {
    fn crypto(&self) -> &dyn CryptoEngine {
        self
    }

    fn pattern(&self) -> &dyn PatternEngine {
        self
    }

    fn atomics(&self) -> &dyn FetchAddEngine {
        self
    }
}
