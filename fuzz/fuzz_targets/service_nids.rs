//! The nids service's request and snapshot decoders on its standard instance: see
//! `microservices::services::fuzzing` for what is checked.
#![no_main]

use microservices::services::fuzzing::Fuzzed;
use microservices::ServiceKind;

static SERVICE: Fuzzed = Fuzzed::new(ServiceKind::Nids);

libfuzzer_sys::fuzz_target!(|data: &[u8]| SERVICE.run(data));
