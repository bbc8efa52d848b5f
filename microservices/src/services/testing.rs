//! Test helpers shared by the services' tests: a service with software engines and a clock.

use alloc::vec::Vec;

use crate::engines::SoftwareEngines;
use crate::service::{Context, Service, ServiceError};

/// Largest response the tests accept.
pub const RESPONSE_MAX: usize = 4096;

/// Calls `service` once with software engines at time 0.
pub fn call<S: Service>(
    service: &mut S,
    request: &[u8],
    response: &mut [u8],
) -> Result<usize, ServiceError> {
    let mut ctx = Context::new(&SoftwareEngines, 0);
    service.handle(&mut ctx, request, response)
}

/// A service under test, with its clock.
pub struct Harness<S> {
    /// The service.
    pub service: S,
    /// Time handed to the next request, nanoseconds.
    pub now_ns: u64,
}

impl<S: Service> Harness<S> {
    /// Wraps `service`.
    pub fn new(service: S) -> Self {
        Self { service, now_ns: 0 }
    }

    fn run(&mut self, request: &[u8]) -> Result<Vec<u8>, ServiceError> {
        let mut response = [0u8; RESPONSE_MAX];
        let mut ctx = Context::new(&SoftwareEngines, self.now_ns);
        let (len, error) = self.service.serve(&mut ctx, request, &mut response);
        match error {
            None => {
                assert_eq!(response[0], 0, "success responses start with status 0");
                Ok(response[1..len].to_vec())
            }
            Some(e) => {
                assert_eq!((len, response[0]), (1, e.code()));
                Err(e)
            }
        }
    }

    /// The payload (after the status byte) of a request that must succeed.
    #[track_caller]
    pub fn ok(&mut self, request: &[u8]) -> Vec<u8> {
        match self.run(request) {
            Ok(payload) => payload,
            Err(e) => panic!("request {request:02x?} failed: {e}"),
        }
    }

    /// The error of a request that must fail.
    #[track_caller]
    pub fn err(&mut self, request: &[u8]) -> ServiceError {
        match self.run(request) {
            Ok(payload) => panic!("request {request:02x?} succeeded with {payload:02x?}"),
            Err(e) => e,
        }
    }

    /// Whatever the request answers.
    pub fn answer(&mut self, request: &[u8]) -> Result<Vec<u8>, ServiceError> {
        self.run(request)
    }

    /// Snapshots this service into `other` (which must restore it) and aligns the clocks.
    pub fn migrate_to(&self, other: &mut Harness<S>) {
        let mut bytes = Vec::new();
        self.service.snapshot(&mut bytes);
        other.service.restore(&bytes).expect("snapshot restores");
        other.now_ns = self.now_ns;
    }
}
