//! The platform's standard library of microservices (E3 Table 2).
//!
//! Every service takes a binary request and answers with the status-byte convention of
//! [`crate::service`]; the formats are in docs/services.md. Each module also has a `request`
//! submodule of client-side builders, used by the tests, the request generators and the
//! benchmark. [`echo`] is a diagnostic service outside the catalogue, for checking paths.

pub mod apigw;
pub mod bayes;
pub mod bm25;
pub mod count;
pub mod ddos;
pub mod deploy;
pub mod echo;
pub mod ema;
pub mod flowmon;
#[cfg(feature = "std")]
pub mod fuzzing;
pub mod ipsec;
pub(crate) mod ipv4;
pub mod knn;
pub mod kvs;
pub mod nat;
pub mod nids;
pub mod recommend;
pub mod spike;
#[cfg(feature = "sql")]
pub mod sql;
pub mod standard;
pub mod topranker;

#[cfg(test)]
pub(crate) mod testing;

pub use apigw::{ApiGateway, ApiGatewayConfig};
pub use bayes::Bayes;
pub use bm25::{Bm25, Bm25Config};
pub use count::{Count, CountConfig};
pub use ddos::{Ddos, DdosConfig};
pub use echo::Echo;
pub use ema::{Ema, EmaConfig};
pub use flowmon::{FlowMonitor, FlowMonitorConfig};
pub use ipsec::{IpSec, SecurityAssociation};
pub use knn::Knn;
pub use kvs::{Kvs, KvsConfig};
pub use nat::Nat;
pub use nids::Nids;
pub use recommend::Recommend;
pub use spike::{Spike, SpikeConfig};
#[cfg(feature = "sql")]
pub use sql::Sql;
pub use topranker::{TopRanker, TopRankerConfig};
