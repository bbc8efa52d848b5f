//! The eight applications of E3 Table 3 as DAGs: their microservice mixes, node counts and
//! IOT-TS's sharding with one backup per shard.
//!
//! Table 3 gives each application's services and node count, and the paper gives IOT-TS's
//! shards; the wiring between tiers is ours (docs/placement.md): shards are wired with a spread
//! of 6 so that the mean fan-out over all applications is close to the paper's 6, and the IoT
//! gateways call two tiers each, reaching the paper's maximum fan-out of 12.

use core::fmt;
use core::str::FromStr;

use super::dag::{Dag, DagBuilder, DagError, Wiring};
use crate::kind::ServiceKind::{self, *};

/// One of the built-in applications.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum App {
    /// Flow monitoring: flow monitor, NIDS, IPsec.
    NfvFin,
    /// Intrusion detection: DDoS, NATv4, NIDS.
    NfvDin,
    /// IPsec gateway: DDoS, NATv4, flow monitor, IPsec.
    NfvIfid,
    /// Twitter analytics: KNN, count, top ranker.
    RtaPtc,
    /// Spam filter: count, spike, KVS, Bayes.
    RtaSf,
    /// Server health monitoring: count, EMA, BM25, SQL.
    RtaShm,
    /// IoT data hub: API gateway, count, KNN, KVS, SQL.
    IotDh,
    /// Thermostat: API gateway, SQL, EMA, spike, recommend.
    IotTs,
}

/// One tier of a built-in application: name, service, shards, backups per shard.
type TierSpec = (&'static str, ServiceKind, u16, u8);

/// One tier connection: upstream tier, downstream tier (indices into the tier list), wiring.
type EdgeSpec = (usize, usize, Wiring);

const SPREAD: Wiring = Wiring::Spread(6);

struct Spec {
    name: &'static str,
    description: &'static str,
    nodes: usize,
    tiers: &'static [TierSpec],
    edges: &'static [EdgeSpec],
}

impl App {
    /// Every application, in Table 3's order.
    pub const ALL: [App; 8] = [
        App::NfvFin,
        App::NfvDin,
        App::NfvIfid,
        App::RtaPtc,
        App::RtaSf,
        App::RtaShm,
        App::IotDh,
        App::IotTs,
    ];

    const fn spec(self) -> &'static Spec {
        match self {
            App::NfvFin => &Spec {
                name: "nfv-fin",
                description: "flow monitoring",
                nodes: 72,
                tiers: &[
                    ("flowmon", FlowMonitor, 24, 0),
                    ("nids", Nids, 24, 0),
                    ("ipsec", IpSec, 24, 0),
                ],
                edges: &[(0, 1, SPREAD), (1, 2, SPREAD)],
            },
            App::NfvDin => &Spec {
                name: "nfv-din",
                description: "intrusion detection",
                nodes: 60,
                tiers: &[
                    ("ddos", Ddos, 12, 0),
                    ("nat", Nat, 24, 0),
                    ("nids", Nids, 24, 0),
                ],
                edges: &[(0, 1, SPREAD), (1, 2, SPREAD)],
            },
            App::NfvIfid => &Spec {
                name: "nfv-ifid",
                description: "IPsec gateway",
                nodes: 84,
                tiers: &[
                    ("ddos", Ddos, 12, 0),
                    ("nat", Nat, 24, 0),
                    ("flowmon", FlowMonitor, 24, 0),
                    ("ipsec", IpSec, 24, 0),
                ],
                edges: &[(0, 1, SPREAD), (1, 2, SPREAD), (2, 3, SPREAD)],
            },
            App::RtaPtc => &Spec {
                name: "rta-ptc",
                description: "Twitter analytics",
                nodes: 60,
                tiers: &[
                    ("knn", Knn, 24, 0),
                    ("count", Count, 24, 0),
                    ("topranker", TopRanker, 12, 0),
                ],
                edges: &[(0, 1, SPREAD), (1, 2, SPREAD)],
            },
            App::RtaSf => &Spec {
                name: "rta-sf",
                description: "spam filter",
                nodes: 96,
                tiers: &[
                    ("count", Count, 24, 0),
                    ("spike", Spike, 24, 0),
                    ("kvs", Kvs, 24, 0),
                    ("bayes", Bayes, 24, 0),
                ],
                edges: &[(0, 1, SPREAD), (1, 2, SPREAD), (2, 3, SPREAD)],
            },
            App::RtaShm => &Spec {
                name: "rta-shm",
                description: "server health monitoring",
                nodes: 84,
                tiers: &[
                    ("count", Count, 24, 0),
                    ("ema", Ema, 24, 0),
                    ("bm25", Bm25, 24, 0),
                    ("sql", Sql, 12, 0),
                ],
                edges: &[(0, 1, SPREAD), (1, 3, SPREAD), (2, 3, SPREAD)],
            },
            App::IotDh => &Spec {
                name: "iot-dh",
                description: "IoT data hub",
                nodes: 108,
                tiers: &[
                    ("apigw", ApiGateway, 12, 0),
                    ("count", Count, 24, 0),
                    ("kvs", Kvs, 24, 0),
                    ("knn", Knn, 24, 0),
                    ("sql", Sql, 24, 0),
                ],
                edges: &[
                    (0, 1, SPREAD),
                    (0, 2, SPREAD),
                    (1, 3, SPREAD),
                    (2, 4, SPREAD),
                ],
            },
            App::IotTs => &Spec {
                name: "iot-ts",
                description: "thermostat",
                nodes: 108,
                tiers: &[
                    ("apigw", ApiGateway, 6, 1),
                    ("sql", Sql, 12, 1),
                    ("ema", Ema, 12, 1),
                    ("spike", Spike, 12, 1),
                    ("recommend", Recommend, 12, 1),
                ],
                edges: &[
                    (0, 1, SPREAD),
                    (0, 2, SPREAD),
                    (2, 3, SPREAD),
                    (3, 4, SPREAD),
                ],
            },
        }
    }

    /// The name used on the command line and in tables (`nfv-fin`, ...).
    pub const fn name(self) -> &'static str {
        self.spec().name
    }

    /// What the application does.
    pub const fn description(self) -> &'static str {
        self.spec().description
    }

    /// Table 3's node count N (primaries and backups).
    pub const fn node_count(self) -> usize {
        self.spec().nodes
    }

    /// The application's DAG.
    pub fn dag(self) -> Dag {
        // The specs above are constants checked by this module's tests, so building cannot
        // fail; a failure would be a bug in the table, reported by the tests.
        self.try_dag()
            .unwrap_or_else(|error| panic!("built-in application {}: {error}", self.name()))
    }

    fn try_dag(self) -> Result<Dag, DagError> {
        let spec = self.spec();
        let mut builder = DagBuilder::new(spec.name);
        let mut ids = alloc::vec::Vec::with_capacity(spec.tiers.len());
        for &(name, kind, shards, backups) in spec.tiers {
            ids.push(builder.tier(name, kind, shards, backups)?);
        }
        for &(from, to, wiring) in spec.edges {
            builder.connect(ids[from], ids[to], wiring)?;
        }
        builder.build()
    }
}

impl fmt::Display for App {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// An application name that is not built in.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct UnknownApp;

impl fmt::Display for UnknownApp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("unknown application (built in: ")?;
        for (i, app) in App::ALL.iter().enumerate() {
            if i > 0 {
                f.write_str(", ")?;
            }
            f.write_str(app.name())?;
        }
        f.write_str(")")
    }
}

impl FromStr for App {
    type Err = UnknownApp;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        App::ALL
            .into_iter()
            .find(|a| a.name().eq_ignore_ascii_case(s))
            .ok_or(UnknownApp)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::apps::dag::{EdgeKind, FanOut, Role};
    use alloc::collections::BTreeSet;
    use alloc::vec::Vec;

    #[test]
    fn every_app_builds_with_table_3_node_count() {
        for app in App::ALL {
            let dag = app.try_dag().unwrap();
            assert_eq!(dag.len(), app.node_count(), "{app}");
            assert_eq!(app.name().parse::<App>(), Ok(app));
        }
    }

    #[test]
    fn service_mixes_match_table_3() {
        let mix = |app: App| -> BTreeSet<ServiceKind> {
            app.dag().nodes().iter().map(|n| n.kind).collect()
        };
        let expect = |kinds: &[ServiceKind]| kinds.iter().copied().collect::<BTreeSet<_>>();
        assert_eq!(mix(App::NfvFin), expect(&[FlowMonitor, IpSec, Nids]));
        assert_eq!(mix(App::NfvDin), expect(&[Ddos, Nat, Nids]));
        assert_eq!(mix(App::NfvIfid), expect(&[Nat, FlowMonitor, IpSec, Ddos]));
        assert_eq!(mix(App::RtaPtc), expect(&[Count, TopRanker, Knn]));
        assert_eq!(mix(App::RtaSf), expect(&[Spike, Count, Kvs, Bayes]));
        assert_eq!(mix(App::RtaShm), expect(&[Count, Ema, Sql, Bm25]));
        assert_eq!(mix(App::IotDh), expect(&[ApiGateway, Count, Knn, Kvs, Sql]));
        assert_eq!(
            mix(App::IotTs),
            expect(&[ApiGateway, Ema, Spike, Recommend, Sql])
        );
    }

    #[test]
    fn iot_ts_is_sharded_with_one_backup_each() {
        let dag = App::IotTs.dag();
        let shards = |kind: ServiceKind| {
            dag.nodes()
                .iter()
                .filter(|n| n.kind == kind && n.role == Role::Primary)
                .count()
        };
        assert_eq!(shards(ApiGateway), 6);
        assert_eq!(shards(Sql), 12);
        assert_eq!(shards(Ema), 12);
        assert_eq!(shards(Spike), 12);
        assert_eq!(shards(Recommend), 12);
        let replications = dag
            .edges()
            .iter()
            .filter(|e| e.kind == EdgeKind::Replicate)
            .count();
        assert_eq!(replications, 54);
        for node in dag.nodes() {
            if let Role::Backup { primary, .. } = node.role {
                assert_eq!(dag.node(primary).kind, node.kind);
                assert_eq!(dag.node(primary).shard, node.shard);
            }
        }
    }

    #[test]
    fn fan_out_is_near_the_papers_mean_6_and_max_12() {
        let all = App::ALL
            .iter()
            .map(|a| a.dag().fan_out())
            .fold(FanOut::default(), |sum, f| FanOut {
                callers: sum.callers + f.callers,
                calls: sum.calls + f.calls,
                max: sum.max.max(f.max),
            });
        assert_eq!(all.max, 12);
        assert!((5.5..=7.0).contains(&all.mean()), "mean {}", all.mean());
    }

    #[test]
    fn sources_are_the_entry_tiers() {
        let dag = App::RtaShm.dag();
        let tiers: BTreeSet<_> = dag
            .sources()
            .map(|v| dag.tier(dag.node(v).tier).name.as_str())
            .collect();
        assert_eq!(tiers, ["bm25", "count"].into_iter().collect());
        let sources: Vec<_> = App::IotTs.dag().sources().collect();
        assert_eq!(sources.len(), 6);
    }
}
