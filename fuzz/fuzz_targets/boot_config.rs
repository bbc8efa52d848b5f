//! The NIC's boot configuration parser on arbitrary bytes: it must never panic, and whatever it
//! accepts must survive a round trip through its own text form.
#![no_main]

use libfuzzer_sys::fuzz_target;
use nic_firmware::boot_config::BootConfig;

fuzz_target!(|data: &[u8]| {
    if let Ok(config) = BootConfig::parse(data) {
        let text = config.to_string();
        let again = BootConfig::parse(text.as_bytes()).expect("the printed form parses");
        assert_eq!(again, config);
    }
});
