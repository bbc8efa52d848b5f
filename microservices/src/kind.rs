//! The catalogue of microservice kinds (E3 Table 2), shared by the runtime and placement.

use core::fmt;
use core::str::FromStr;

/// What a microservice does. One variant per service of the platform's standard library.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum ServiceKind {
    /// NATv4 then AES-128-CBC + HMAC-SHA1-96, ESP-style.
    IpSec,
    /// BM25 search ranking over an inverted index.
    Bm25,
    /// NATv4 with a DIR-24-8 longest-prefix table.
    Nat,
    /// Network intrusion detection: multi-pattern matching.
    Nids,
    /// Bitmap frequency counter.
    Count,
    /// Exponential moving average over streams.
    Ema,
    /// Hash-table key-value store.
    Kvs,
    /// Flow monitor: count-min sketch.
    FlowMonitor,
    /// DDoS detection: entropy of source addresses.
    Ddos,
    /// Collaborative-filtering recommender.
    Recommend,
    /// K-nearest-neighbours classifier.
    Knn,
    /// Spike detection by Z-score.
    Spike,
    /// Naive Bayes classifier.
    Bayes,
    /// API gateway: rate limiter and token authentication.
    ApiGateway,
    /// Top-K ranker.
    TopRanker,
    /// In-memory SQL; host only.
    Sql,
}

impl ServiceKind {
    /// Every kind, in catalogue order.
    pub const ALL: [ServiceKind; 16] = [
        ServiceKind::IpSec,
        ServiceKind::Bm25,
        ServiceKind::Nat,
        ServiceKind::Nids,
        ServiceKind::Count,
        ServiceKind::Ema,
        ServiceKind::Kvs,
        ServiceKind::FlowMonitor,
        ServiceKind::Ddos,
        ServiceKind::Recommend,
        ServiceKind::Knn,
        ServiceKind::Spike,
        ServiceKind::Bayes,
        ServiceKind::ApiGateway,
        ServiceKind::TopRanker,
        ServiceKind::Sql,
    ];

    /// The name used in config files, tables and on the command line.
    pub const fn name(self) -> &'static str {
        match self {
            ServiceKind::IpSec => "ipsec",
            ServiceKind::Bm25 => "bm25",
            ServiceKind::Nat => "nat",
            ServiceKind::Nids => "nids",
            ServiceKind::Count => "count",
            ServiceKind::Ema => "ema",
            ServiceKind::Kvs => "kvs",
            ServiceKind::FlowMonitor => "flowmon",
            ServiceKind::Ddos => "ddos",
            ServiceKind::Recommend => "recommend",
            ServiceKind::Knn => "knn",
            ServiceKind::Spike => "spike",
            ServiceKind::Bayes => "bayes",
            ServiceKind::ApiGateway => "apigw",
            ServiceKind::TopRanker => "topranker",
            ServiceKind::Sql => "sql",
        }
    }

    /// Whether the service is stateful in E3's Table 2 (its "S"): it keeps state that grows
    /// with the traffic it serves (tables, counters, windows, sketches), which the placement
    /// model charges its backups for replicating request by request.
    ///
    /// This is not whether a migration moves state: migration moves every service's
    /// [`Service::snapshot`](crate::Service::snapshot), whatever this says. IPsec is stateless
    /// here, as in Table 2 (its security association is configuration), yet its snapshot
    /// carries the ESP sequence number, which a migrated instance must continue from (RFC 4303
    /// forbids reusing one under an SA).
    pub const fn stateful(self) -> bool {
        matches!(
            self,
            ServiceKind::Count
                | ServiceKind::Ema
                | ServiceKind::Kvs
                | ServiceKind::FlowMonitor
                | ServiceKind::Ddos
                | ServiceKind::Recommend
                | ServiceKind::Spike
                | ServiceKind::ApiGateway
                | ServiceKind::TopRanker
                | ServiceKind::Sql
        )
    }

    /// Whether the service may only run on a host processor.
    pub const fn host_only(self) -> bool {
        matches!(self, ServiceKind::Sql)
    }
}

impl fmt::Display for ServiceKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// A service name that is not in the catalogue.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct UnknownServiceKind;

impl fmt::Display for UnknownServiceKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("unknown service kind")
    }
}

impl FromStr for ServiceKind {
    type Err = UnknownServiceKind;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::ALL
            .into_iter()
            .find(|k| k.name().eq_ignore_ascii_case(s))
            .ok_or(UnknownServiceKind)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip() {
        for k in ServiceKind::ALL {
            assert_eq!(k.name().parse::<ServiceKind>(), Ok(k));
        }
        assert_eq!("nope".parse::<ServiceKind>(), Err(UnknownServiceKind));
    }
}
