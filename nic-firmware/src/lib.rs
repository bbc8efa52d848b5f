//! The NIC runtime: a `no_std`, run-to-completion packet and microservice runtime for the ARM
//! cores of a SmartNIC. All of its logic is tested on the host; the board layer is thin.
#![cfg_attr(not(test), no_std)]
pub mod accel;
