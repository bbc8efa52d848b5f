//! The host<->NIC message channel over a shared PCIe region.
//!
//! The byte-level format is specified in `docs/pcie-channel.md`; this crate follows it.
#![cfg_attr(not(any(test, feature = "std")), no_std)]
