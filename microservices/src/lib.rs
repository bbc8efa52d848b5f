//! The platform's microservices, written once for host cores and NIC cores.
//!
//! Layers, from the bottom:
//! - [`service`]: the [`Service`] trait every microservice implements, its identity and the
//!   per-request [`Context`]; the status-byte convention of responses.
//! - [`engines`]: the NIC engines (crypto, pattern matching, fetch-and-add) behind traits, the
//!   [`SoftwareEngines`](engines::SoftwareEngines) every host uses, and the known-answer
//!   checks every engine implementation must pass.
//! - [`collections`]: reliable collections (a hash map and an array, fixed capacity, never
//!   allocating after construction) whose contents snapshot to bytes and restore: the state
//!   migration moves.
//! - [`codec`]: bounds-checked request decoding and response encoding.
//! - [`services`]: the microservices themselves.
//! - [`kind`]: the catalogue of service kinds, shared with the placement model.
//! - [`apps`]: application DAGs over those services and their request generators.
//!
//! The crate is `no_std` + `alloc`; the `std` feature only adds what needs an operating system.
#![cfg_attr(not(any(test, feature = "std")), no_std)]

extern crate alloc;

pub mod apps;
pub mod codec;
pub mod collections;
pub mod engines;
pub mod kind;
pub mod service;
pub mod services;

pub use kind::ServiceKind;
pub use service::{Context, Service, ServiceError, ServiceId, ServiceIdentity, StateError};
