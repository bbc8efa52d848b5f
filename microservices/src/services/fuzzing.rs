//! What the fuzz targets check on every service (`fuzz/fuzz_targets/service_*.rs`): any bytes
//! as a request, with any response buffer size, answer by the status-byte convention without
//! panicking; any bytes as a snapshot are refused or restored without panicking; a snapshot
//! restores into the instance that took it and snapshots the same again.

use alloc::boxed::Box;
use alloc::vec::Vec;
use std::sync::{Mutex, OnceLock};

use super::standard::instantiate;
use crate::engines::SoftwareEngines;
use crate::kind::ServiceKind;
use crate::service::{Context, Service, ServiceError, ServiceId};

/// Checks one fuzz input against `service`. The first byte picks the response buffer size
/// and the operation: 0 to 223 handle the rest as requests separated by `0xff` (a `0xfe`
/// after it is dropped, so requests can start with `0xff`), then 192 to 223 also check the
/// snapshot round trip (rarely: large states take a while); 224 and above restore the rest
/// as a snapshot.
pub fn exercise(service: &mut dyn Service, data: &[u8]) {
    let Some((&selector, rest)) = data.split_first() else {
        return;
    };
    if selector >= 224 {
        if service.restore(rest).is_ok() {
            round_trip(service);
        }
        return;
    }
    let mut response = alloc::vec![0xa5u8; usize::from(selector) * 8];
    for (n, request) in rest.split(|&b| b == 0xff).enumerate() {
        let request = request.strip_prefix(&[0xfe]).unwrap_or(request);
        let mut ctx = Context::new(&SoftwareEngines, n as u64 * 1_000_000);
        let (len, error) = service.serve(&mut ctx, request, &mut response);
        assert!(len <= response.len());
        match error {
            Some(e) => {
                assert_eq!(len, usize::from(!response.is_empty()));
                assert!(response.is_empty() || ServiceError::from_code(response[0]) == Some(e));
            }
            None => assert!(len >= 1 && response[0] == 0),
        }
    }
    if selector >= 192 {
        round_trip(service);
    }
}

/// Snapshot, restore into the same instance, snapshot again: the two must be equal.
fn round_trip(service: &mut dyn Service) {
    let mut first = Vec::new();
    service.snapshot(&mut first);
    assert_eq!(service.restore(&first), Ok(()));
    let mut second = Vec::new();
    service.snapshot(&mut second);
    assert!(first == second, "a restored snapshot snapshots alike");
}

/// The standard instance of one kind, made on first use and kept for the fuzzing process.
pub struct Fuzzed {
    kind: ServiceKind,
    service: OnceLock<Option<Mutex<Box<dyn Service>>>>,
}

impl Fuzzed {
    /// Fuzzing of `kind`'s standard instance.
    pub const fn new(kind: ServiceKind) -> Self {
        Self {
            kind,
            service: OnceLock::new(),
        }
    }

    /// Runs [`exercise`] on the instance (nothing if the kind is not built).
    pub fn run(&self, data: &[u8]) {
        let service = self
            .service
            .get_or_init(|| instantiate(self.kind, ServiceId(1)).map(Mutex::new));
        if let Some(service) = service {
            let mut service = service
                .lock()
                .unwrap_or_else(|poisoned| poisoned.into_inner());
            exercise(service.as_mut(), data);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Small inputs on every kind's standard instance, among them the one-byte crash file a
    /// libFuzzer run of `service_ipsec` once left (selector 1: an empty request with an 8-byte
    /// response buffer, which made IPsec slice past the buffer).
    #[test]
    fn every_kind_survives_small_inputs() {
        let inputs: [&[u8]; 7] = [
            &[],
            &[1],
            &[0],
            &[5, 0xff, 0xfe, 0xff, 2],
            &[192, 1, 2, 0xff, 3],
            &[224],
            &[230, 1, 2, 3],
        ];
        for kind in ServiceKind::ALL {
            let Some(mut service) = instantiate(kind, ServiceId(1)) else {
                continue;
            };
            for data in inputs {
                exercise(service.as_mut(), data);
            }
        }
    }
}
