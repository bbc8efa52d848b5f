//! The platform's microservices, written once for host cores and NIC cores.
//!
//! Layers, from the bottom:
//! - [`service`]: the [`Service`](service::Service) trait every microservice implements, its
//!   identity and the per-request [`Context`](service::Context).
//! - [`engines`]: the NIC engines (crypto, pattern matching, fetch-and-add) behind traits.
//! - [`kind`]: the catalogue of service kinds, shared with the placement model.
//! - [`apps`]: application DAGs over those services.
#![cfg_attr(not(any(test, feature = "std")), no_std)]

extern crate alloc;

pub mod apps;
pub mod engines;
pub mod kind;
pub mod service;

pub use kind::ServiceKind;
pub use service::{Context, Service, ServiceError, ServiceId, ServiceIdentity};
