//! Application and cluster files for placement: any text is either loaded or refused with a
//! message, never a panic or an unbounded allocation.
#![no_main]

use std::path::Path;

use host_lib::control::config::{parse_app, parse_cluster};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let path = Path::new("fuzz.toml");
    if let Ok(app) = parse_app(path, text) {
        assert!(!app.workload.dag().is_empty());
    }
    if let Ok(cluster) = parse_cluster(path, text) {
        assert!(cluster.servers.iter().any(|(_, count)| *count > 0));
    }
});
