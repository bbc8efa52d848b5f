//! Applications: DAGs of microservices (E3 Table 3), shared by the placement model and the
//! request generators.
//!
//! - [`dag`]: the generic model. An application is a set of *tiers* (one microservice, sharded
//!   into primaries, each with backup replicas); a [`DagBuilder`] expands tiers and tier
//!   connections into *nodes* (one deployable instance each) and directed *edges* (calls between
//!   primaries, replication from a primary to its backups), and refuses cycles.
//! - [`catalogue`]: the eight built-in applications.
//!
//! Traffic semantics, shared by placement and the request generators: a request to the
//! application arrives at one of the [`Dag::sources`], each source taking an equal share. A
//! request handled by a node goes on to every downstream tier the node calls, to one node of
//! that tier's [`Dag::call_groups`] slice (chosen by the request's key, so each gets an equal
//! share). Backups take no requests; their primary streams state updates to them.

pub mod catalogue;
pub mod dag;

pub use catalogue::{App, UnknownApp};
pub use dag::{
    CallGroups, Dag, DagBuilder, DagError, Edge, EdgeKind, FanOut, Node, NodeId, Role, Tier,
    TierId, Wiring,
};
#[cfg(feature = "std")]
pub mod traffic;
