//! The `Service` trait a microservice implements, its identity and the per-request context.
//!
//! Wire convention shared by every service (see `docs/services.md`): a response starts with a
//! status byte, `0` for success; any other value is a [`ServiceError`] code written by
//! [`ServiceError::write_response`].

use alloc::vec::Vec;
use core::fmt;

use crate::engines::Engines;
use crate::kind::ServiceKind;

/// A deployed service instance's identifier, unique on one node.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ServiceId(pub u16);

/// Who a service is and what it costs: read by the runtime and the placement model.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ServiceIdentity {
    /// Instance identifier.
    pub id: ServiceId,
    /// What the service does.
    pub kind: ServiceKind,
    /// Human-readable name, for logs and tables.
    pub name: &'static str,
    /// Whether the kind is stateful in E3's Table 2 ([`ServiceKind::stateful`]). Migration
    /// moves every service's snapshot whatever this says.
    pub stateful: bool,
    /// Typical request size in bytes.
    pub request_size_hint: u32,
    /// Typical cost of one request, in nanoseconds on a host core.
    pub cost_hint_ns: u32,
}

impl ServiceIdentity {
    /// The identity of instance `id` of `kind` (name and statefulness from the catalogue).
    pub const fn new(
        id: ServiceId,
        kind: ServiceKind,
        request_size_hint: u32,
        cost_hint_ns: u32,
    ) -> Self {
        Self {
            id,
            kind,
            name: kind.name(),
            stateful: kind.stateful(),
            request_size_hint,
            cost_hint_ns,
        }
    }
}

/// What a service sees of the node while it handles one request. The service's own state is
/// in the service value itself (its reliable collections).
pub struct Context<'a> {
    /// The node's engines (hardware on a NIC, software on the host).
    pub engines: &'a dyn Engines,
    /// Monotonic time, nanoseconds.
    pub now_ns: u64,
    /// The core running this request.
    pub core: u16,
}

impl<'a> Context<'a> {
    /// A context on `engines` at time `now_ns`, on core 0.
    pub fn new(engines: &'a dyn Engines, now_ns: u64) -> Self {
        Self {
            engines,
            now_ns,
            core: 0,
        }
    }
}

/// Why a request failed. Small and `Copy`: the fast path counts these and answers with
/// [`ServiceError::write_response`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum ServiceError {
    /// Shorter than the request format's fixed part.
    Truncated,
    /// Unknown operation code.
    BadOpcode,
    /// A length field points past the end of the request.
    BadLength,
    /// A field holds a value the format does not allow.
    BadField,
    /// The response buffer is too small for the answer.
    ResponseTooSmall,
    /// The service's state is full (table, window).
    Full,
    /// The key, entry or route asked for does not exist.
    NotFound,
    /// The request was refused by policy (rate limit, authentication).
    Refused,
    /// An engine call failed.
    Engine,
}

impl ServiceError {
    /// Every error, in code order.
    pub const ALL: [ServiceError; 9] = [
        ServiceError::Truncated,
        ServiceError::BadOpcode,
        ServiceError::BadLength,
        ServiceError::BadField,
        ServiceError::ResponseTooSmall,
        ServiceError::Full,
        ServiceError::NotFound,
        ServiceError::Refused,
        ServiceError::Engine,
    ];

    /// The status byte that stands for this error in a response (never 0).
    pub const fn code(self) -> u8 {
        match self {
            ServiceError::Truncated => 1,
            ServiceError::BadOpcode => 2,
            ServiceError::BadLength => 3,
            ServiceError::BadField => 4,
            ServiceError::ResponseTooSmall => 5,
            ServiceError::Full => 6,
            ServiceError::NotFound => 7,
            ServiceError::Refused => 8,
            ServiceError::Engine => 9,
        }
    }

    /// The error a status byte stands for; `None` for 0 (success) and unknown codes.
    pub fn from_code(code: u8) -> Option<Self> {
        Self::ALL.into_iter().find(|e| e.code() == code)
    }

    /// Writes the one-byte error response; returns its length (0 if `out` is empty).
    pub fn write_response(self, out: &mut [u8]) -> usize {
        match out.first_mut() {
            Some(status) => {
                *status = self.code();
                1
            }
            None => 0,
        }
    }
}

impl fmt::Display for ServiceError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            ServiceError::Truncated => "request truncated",
            ServiceError::BadOpcode => "unknown opcode",
            ServiceError::BadLength => "length past the end of the request",
            ServiceError::BadField => "field value not allowed",
            ServiceError::ResponseTooSmall => "response buffer too small",
            ServiceError::Full => "service state full",
            ServiceError::NotFound => "not found",
            ServiceError::Refused => "refused by policy",
            ServiceError::Engine => "engine failure",
        })
    }
}

/// Why a snapshot could not be restored.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum StateError {
    /// The snapshot is shorter than its own header or lengths say.
    Truncated,
    /// The snapshot was taken from another kind of service or another format version.
    WrongKind,
    /// The snapshot's contents are inconsistent (bad checksum, counts out of range).
    Corrupt,
    /// The snapshot does not fit this instance's capacity.
    TooLarge,
}

impl fmt::Display for StateError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            StateError::Truncated => "snapshot truncated",
            StateError::WrongKind => "snapshot of another service kind or version",
            StateError::Corrupt => "snapshot corrupt",
            StateError::TooLarge => "snapshot larger than this instance can hold",
        })
    }
}

/// A microservice: handles one request at a time, to completion.
///
/// The same implementation runs on host cores and NIC cores; only the [`Engines`] behind the
/// context differ. Stateful services keep their state in reliable collections and implement
/// [`Service::snapshot`] and [`Service::restore`] so migration can move it.
pub trait Service: Send {
    /// Who this instance is.
    fn identity(&self) -> ServiceIdentity;

    /// Handles one request, writes the success response (status byte `0` first) into
    /// `response` and returns its length. Never panics and never allocates, whatever the
    /// `request`. On `Err` the contents of `response` are unspecified: callers answer with
    /// [`ServiceError::write_response`], as [`Service::serve`] does, and count the error.
    fn handle(
        &mut self,
        ctx: &mut Context<'_>,
        request: &[u8],
        response: &mut [u8],
    ) -> Result<usize, ServiceError>;

    /// Handles one request and always leaves a response in `response`: the success response,
    /// or the one-byte error response. Returns its length and the error, if any, for counting.
    fn serve(
        &mut self,
        ctx: &mut Context<'_>,
        request: &[u8],
        response: &mut [u8],
    ) -> (usize, Option<ServiceError>) {
        match self.handle(ctx, request, response) {
            Ok(len) => (len, None),
            Err(error) => (error.write_response(response), Some(error)),
        }
    }

    /// Appends the instance's state to `out`: everything a replacement instance of the same
    /// kind and configuration needs to answer as this one would. Migration takes and restores
    /// it for every service, stateful in Table 2's sense or not (IPsec writes its ESP sequence
    /// number); services without such state write nothing.
    fn snapshot(&self, out: &mut Vec<u8>) {
        let _ = out;
    }

    /// Replaces the instance's state with a snapshot taken by [`Service::snapshot`] on an
    /// instance of the same kind and configuration. On error the state is left as it was.
    fn restore(&mut self, snapshot: &[u8]) -> Result<(), StateError> {
        if snapshot.is_empty() {
            Ok(())
        } else {
            Err(StateError::WrongKind)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn error_codes_round_trip_and_are_never_success() {
        for e in ServiceError::ALL {
            assert_ne!(e.code(), 0);
            assert_eq!(ServiceError::from_code(e.code()), Some(e));
        }
        assert_eq!(ServiceError::from_code(0), None);
    }

    #[test]
    fn error_response_fits_any_nonempty_buffer() {
        let mut out = [0xffu8; 4];
        assert_eq!(ServiceError::NotFound.write_response(&mut out), 1);
        assert_eq!(out[0], ServiceError::NotFound.code());
        assert_eq!(ServiceError::NotFound.write_response(&mut []), 0);
    }
}
