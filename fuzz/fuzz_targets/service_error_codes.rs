//! Status bytes and service names from the wire: decoding never panics and round-trips.
#![no_main]

use libfuzzer_sys::fuzz_target;
use microservices::{ServiceError, ServiceKind};

fuzz_target!(|data: &[u8]| {
    if let Some((&status, rest)) = data.split_first() {
        if let Some(error) = ServiceError::from_code(status) {
            assert_eq!(error.code(), status);
        }
        if let Ok(name) = core::str::from_utf8(rest) {
            if let Ok(kind) = name.parse::<ServiceKind>() {
                assert!(kind.name().eq_ignore_ascii_case(name));
            }
        }
    }
});
