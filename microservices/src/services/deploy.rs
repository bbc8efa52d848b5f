//! Deploying a service: the one factory that builds an instance of any kind from its deploy
//! parameters, for every node. The NIC's agent (DEPLOY commands) and boot configuration, the
//! host's `e3 serve` and the benchmark all build their instances here, so a service deployed
//! with the same parameters behaves the same on a NIC and on a host.
//!
//! Deploy parameters are bytes, little-endian, one layout per kind (docs/services.md, "Deploy
//! parameters"); empty parameters mean the kind's standard configuration
//! ([`super::standard`]). Parameters arrive from the network and from files, so [`plan`]
//! decodes and bounds every field, and tells how much memory the instance will take
//! ([`Plan::footprint`]) before anything large is allocated: a node refuses a deploy that does
//! not fit its memory ([`Plan::fits`]) instead of running out halfway.
//!
//! SQL is host only: a NIC ([`Node::Nic`]) answers [`DeployError::HostOnly`], whatever
//! features the build has; a host built without the `sql` feature refuses it.

use alloc::boxed::Box;
use alloc::string::String;
use alloc::vec::Vec;
use core::fmt;

use super::apigw::{ApiGateway, ApiGatewayConfig};
use super::bayes::{self, Bayes};
use super::bm25::{Bm25, Bm25Config};
use super::count::{Count, CountConfig};
use super::ddos::{Ddos, DdosConfig};
use super::ema::{Ema, EmaConfig};
use super::flowmon::{FlowMonitor, FlowMonitorConfig};
use super::ipsec::{IpSec, SecurityAssociation};
use super::knn::{self, Knn};
use super::kvs::{Kvs, KvsConfig};
use super::nat::{self, Nat, Rule};
use super::nids::Nids;
use super::recommend::Recommend;
use super::spike::{Spike, SpikeConfig};
use super::standard as std_config;
use super::topranker::{TopRanker, TopRankerConfig};
use crate::codec::Request;
use crate::engines::PatternSet;
use crate::kind::ServiceKind;
use crate::service::{Service, ServiceId};

/// Most NAT rules one deploy carries (rule values are 15 bits in the DIR-24-8 table).
pub const MAX_RULES: usize = 0x7fff;
/// Most NIDS patterns one deploy carries.
pub const MAX_PATTERNS: usize = 4096;
/// Longest API gateway key.
pub const MAX_KEY: usize = 64;
/// Bytes every footprint adds for the instance itself and its small allocations.
pub const INSTANCE_BYTES: usize = 4096;

/// Why a service could not be deployed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DeployError {
    /// The kind only runs on a host (SQL) and this node cannot build it.
    HostOnly(ServiceKind),
    /// The parameters do not follow the kind's layout or hold a value out of bounds.
    BadParameters {
        /// The kind being deployed.
        kind: ServiceKind,
        /// What is wrong.
        reason: &'static str,
    },
    /// The instance needs more memory than the node has free.
    NoMemory {
        /// The kind being deployed.
        kind: ServiceKind,
        /// Bytes the instance takes while it is built.
        needed: usize,
        /// Bytes the node has free.
        available: usize,
    },
    /// An allocation failed while the instance was built (the free memory was there, but not
    /// in one piece).
    OutOfMemory(ServiceKind),
    /// The service refused the configuration the parameters describe.
    Refused {
        /// The kind being deployed.
        kind: ServiceKind,
        /// Why.
        reason: &'static str,
    },
}

impl fmt::Display for DeployError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            DeployError::HostOnly(kind) => write!(f, "`{kind}` runs on a host only"),
            DeployError::BadParameters { kind, reason } => {
                write!(f, "`{kind}` deploy parameters refused: {reason}")
            }
            DeployError::NoMemory {
                kind,
                needed,
                available,
            } => write!(
                f,
                "`{kind}` needs {} KiB of memory and {} KiB are free",
                needed.div_ceil(1024),
                available / 1024
            ),
            DeployError::OutOfMemory(kind) => {
                write!(f, "`{kind}`: an allocation failed while building it")
            }
            DeployError::Refused { kind, reason } => write!(f, "`{kind}` refused: {reason}"),
        }
    }
}

impl core::error::Error for DeployError {}

/// The decoded parameters of one kind: what an instance is built from.
#[derive(Clone, Debug, PartialEq)]
pub enum Params {
    /// IPsec: the outbound security association and the NAT rules applied first.
    IpSec {
        /// The security association.
        sa: SecurityAssociation,
        /// NAT rules.
        rules: Vec<Rule>,
    },
    /// BM25 over a synthetic corpus ([`std_config::bm25_corpus`]).
    Bm25 {
        /// Documents in the corpus.
        documents: u32,
        /// Words in its vocabulary.
        words: u32,
        /// Seed of the corpus.
        seed: u64,
    },
    /// NATv4 with these rules.
    Nat {
        /// Rules, later ones winning over earlier ones of the same prefix.
        rules: Vec<Rule>,
    },
    /// NIDS with these signatures.
    Nids {
        /// Byte patterns; pattern `i` is reported as rule `i`.
        patterns: Vec<Vec<u8>>,
    },
    /// Count over items `0..items`.
    Count {
        /// Item space.
        items: u32,
    },
    /// EMA over up to `streams` streams.
    Ema {
        /// Streams tracked at most.
        streams: u32,
        /// Weight of a new sample, in (0, 1].
        alpha: f64,
    },
    /// KVS holding up to `capacity` keys.
    Kvs {
        /// Keys held at most.
        capacity: u32,
    },
    /// Flow monitor: a `depth` x `width` count-min sketch.
    FlowMonitor {
        /// Rows (hash functions), 1 to 16.
        depth: u8,
        /// Counters per row.
        width: u32,
        /// Seed of the row hashes.
        seed: u64,
    },
    /// DDoS detection over a window of source addresses.
    Ddos {
        /// Packets in the window.
        window: u32,
        /// Normalised entropy below which the alarm rises (a few sources dominate).
        low: f64,
        /// Normalised entropy above which the alarm rises (spoofed random sources).
        high: f64,
    },
    /// Recommend over items named `product-<word>` ([`std_config::product_names_of`]).
    Recommend {
        /// Users tracked at most.
        users: u32,
        /// Items in the catalogue.
        items: u16,
        /// Seed of the user table's hash.
        seed: u64,
    },
    /// KNN over a synthetic training set ([`std_config::knn_training`]).
    Knn {
        /// Training points.
        points: u32,
        /// Features per point.
        dims: u16,
        /// Clusters (labels).
        classes: u16,
        /// Seed of the training set.
        seed: u64,
    },
    /// Spike detection per sensor.
    Spike {
        /// Sensors tracked at most.
        sensors: u32,
        /// Samples in each sensor's window.
        window: u16,
        /// Z-score above which a sample is a spike.
        threshold: f64,
    },
    /// Naive Bayes trained on synthetic documents ([`std_config::bayes_training`]).
    Bayes {
        /// Classes.
        classes: u16,
        /// Tokens in the vocabulary.
        vocabulary: u32,
        /// Training documents.
        documents: u32,
        /// Seed of the training set.
        seed: u64,
    },
    /// API gateway: token buckets and the key tokens are authenticated with.
    ApiGateway {
        /// Clients tracked at most.
        clients: u32,
        /// Tokens per second each client earns.
        rate: f64,
        /// Bucket size.
        burst: f64,
        /// HMAC-SHA1 key of the tokens (1 to 64 bytes).
        key: Vec<u8>,
    },
    /// Top ranker over up to `items` items.
    TopRanker {
        /// Items tracked at most.
        items: u32,
    },
    /// SQL with the standard schema and statements (host only).
    Sql,
}

/// Bounds of one numeric field: `min..=max`, or the parameters are refused with `reason`.
fn bounded<T: PartialOrd>(
    kind: ServiceKind,
    value: T,
    min: T,
    max: T,
    reason: &'static str,
) -> Result<T, DeployError> {
    if value >= min && value <= max {
        Ok(value)
    } else {
        Err(DeployError::BadParameters { kind, reason })
    }
}

impl Params {
    /// The kind's standard configuration (what empty parameters mean).
    pub fn standard(kind: ServiceKind) -> Params {
        match kind {
            ServiceKind::IpSec => Params::IpSec {
                sa: std_config::security_association(),
                rules: std_config::nat_rules(),
            },
            ServiceKind::Bm25 => Params::Bm25 {
                documents: std_config::BM25_DOCUMENTS as u32,
                words: std_config::BM25_WORDS as u32,
                seed: std_config::BM25_SEED,
            },
            ServiceKind::Nat => Params::Nat {
                rules: std_config::nat_rules(),
            },
            ServiceKind::Nids => Params::Nids {
                patterns: std_config::nids_rules(),
            },
            ServiceKind::Count => Params::Count {
                items: std_config::COUNT_ITEMS,
            },
            ServiceKind::Ema => Params::Ema {
                streams: std_config::EMA_STREAMS as u32,
                alpha: EmaConfig::default().alpha,
            },
            ServiceKind::Kvs => Params::Kvs {
                capacity: std_config::KVS_CAPACITY as u32,
            },
            ServiceKind::FlowMonitor => {
                let config = FlowMonitorConfig::default();
                Params::FlowMonitor {
                    depth: config.depth as u8,
                    width: config.width as u32,
                    seed: config.seed,
                }
            }
            ServiceKind::Ddos => {
                let config = DdosConfig::default();
                Params::Ddos {
                    window: config.window as u32,
                    low: config.low,
                    high: config.high,
                }
            }
            ServiceKind::Recommend => Params::Recommend {
                users: std_config::RECOMMEND_USERS as u32,
                items: std_config::RECOMMEND_ITEMS as u16,
                seed: std_config::SEED,
            },
            ServiceKind::Knn => Params::Knn {
                points: std_config::KNN_POINTS as u32,
                dims: std_config::KNN_DIMS as u16,
                classes: std_config::KNN_CLASSES,
                seed: std_config::KNN_SEED,
            },
            ServiceKind::Spike => {
                let config = SpikeConfig::default();
                Params::Spike {
                    sensors: std_config::SPIKE_SENSORS as u32,
                    window: config.window as u16,
                    threshold: config.threshold,
                }
            }
            ServiceKind::Bayes => Params::Bayes {
                classes: std_config::BAYES_CLASSES as u16,
                vocabulary: std_config::BAYES_VOCABULARY as u32,
                documents: std_config::BAYES_DOCUMENTS as u32,
                seed: std_config::BAYES_SEED,
            },
            ServiceKind::ApiGateway => {
                let config = ApiGatewayConfig::default();
                Params::ApiGateway {
                    clients: std_config::GATEWAY_CLIENTS as u32,
                    rate: config.rate,
                    burst: config.burst,
                    key: std_config::GATEWAY_KEY.to_vec(),
                }
            }
            ServiceKind::TopRanker => Params::TopRanker {
                items: std_config::TOP_ITEMS as u32,
            },
            ServiceKind::Sql => Params::Sql,
        }
    }

    /// The kind these parameters deploy.
    pub fn kind(&self) -> ServiceKind {
        match self {
            Params::IpSec { .. } => ServiceKind::IpSec,
            Params::Bm25 { .. } => ServiceKind::Bm25,
            Params::Nat { .. } => ServiceKind::Nat,
            Params::Nids { .. } => ServiceKind::Nids,
            Params::Count { .. } => ServiceKind::Count,
            Params::Ema { .. } => ServiceKind::Ema,
            Params::Kvs { .. } => ServiceKind::Kvs,
            Params::FlowMonitor { .. } => ServiceKind::FlowMonitor,
            Params::Ddos { .. } => ServiceKind::Ddos,
            Params::Recommend { .. } => ServiceKind::Recommend,
            Params::Knn { .. } => ServiceKind::Knn,
            Params::Spike { .. } => ServiceKind::Spike,
            Params::Bayes { .. } => ServiceKind::Bayes,
            Params::ApiGateway { .. } => ServiceKind::ApiGateway,
            Params::TopRanker { .. } => ServiceKind::TopRanker,
            Params::Sql => ServiceKind::Sql,
        }
    }

    /// Decodes `kind`'s parameters from `bytes` (empty: the standard configuration) and checks
    /// every bound. Bytes after the layout are refused.
    pub fn decode(kind: ServiceKind, bytes: &[u8]) -> Result<Params, DeployError> {
        if bytes.is_empty() {
            return Ok(Params::standard(kind));
        }
        let bad = |reason| DeployError::BadParameters { kind, reason };
        let mut r = Request::new(bytes);
        let short = |_| bad("shorter than the kind's layout");
        let params = match kind {
            ServiceKind::IpSec => Params::IpSec {
                sa: SecurityAssociation {
                    spi: r.u32().map_err(short)?,
                    encryption_key: r.array().map_err(short)?,
                    iv_key: r.array().map_err(short)?,
                    authentication_key: r.array().map_err(short)?,
                    tunnel_source: u32::from_be_bytes(r.array().map_err(short)?),
                    tunnel_destination: u32::from_be_bytes(r.array().map_err(short)?),
                },
                rules: decode_rules(kind, &mut r)?,
            },
            ServiceKind::Bm25 => Params::Bm25 {
                documents: r.u32().map_err(short)?,
                words: r.u32().map_err(short)?,
                seed: r.u64().map_err(short)?,
            },
            ServiceKind::Nat => Params::Nat {
                rules: decode_rules(kind, &mut r)?,
            },
            ServiceKind::Nids => {
                let n = usize::from(r.u16().map_err(short)?);
                let mut patterns = Vec::new();
                for _ in 0..n.min(MAX_PATTERNS + 1) {
                    let len = usize::from(r.u8().map_err(short)?);
                    patterns.push(r.bytes(len).map_err(short)?.to_vec());
                }
                Params::Nids { patterns }
            }
            ServiceKind::Count => Params::Count {
                items: r.u32().map_err(short)?,
            },
            ServiceKind::Ema => Params::Ema {
                streams: r.u32().map_err(short)?,
                alpha: r.f64().map_err(short)?,
            },
            ServiceKind::Kvs => Params::Kvs {
                capacity: r.u32().map_err(short)?,
            },
            ServiceKind::FlowMonitor => Params::FlowMonitor {
                depth: r.u8().map_err(short)?,
                width: r.u32().map_err(short)?,
                seed: r.u64().map_err(short)?,
            },
            ServiceKind::Ddos => Params::Ddos {
                window: r.u32().map_err(short)?,
                low: r.f64().map_err(short)?,
                high: r.f64().map_err(short)?,
            },
            ServiceKind::Recommend => Params::Recommend {
                users: r.u32().map_err(short)?,
                items: r.u16().map_err(short)?,
                seed: r.u64().map_err(short)?,
            },
            ServiceKind::Knn => Params::Knn {
                points: r.u32().map_err(short)?,
                dims: r.u16().map_err(short)?,
                classes: r.u16().map_err(short)?,
                seed: r.u64().map_err(short)?,
            },
            ServiceKind::Spike => Params::Spike {
                sensors: r.u32().map_err(short)?,
                window: r.u16().map_err(short)?,
                threshold: r.f64().map_err(short)?,
            },
            ServiceKind::Bayes => Params::Bayes {
                classes: r.u16().map_err(short)?,
                vocabulary: r.u32().map_err(short)?,
                documents: r.u32().map_err(short)?,
                seed: r.u64().map_err(short)?,
            },
            ServiceKind::ApiGateway => {
                let clients = r.u32().map_err(short)?;
                let rate = r.f64().map_err(short)?;
                let burst = r.f64().map_err(short)?;
                let len = usize::from(r.u8().map_err(short)?);
                let key = r.bytes(len).map_err(short)?.to_vec();
                Params::ApiGateway {
                    clients,
                    rate,
                    burst,
                    key,
                }
            }
            ServiceKind::TopRanker => Params::TopRanker {
                items: r.u32().map_err(short)?,
            },
            ServiceKind::Sql => return Err(bad("SQL takes no parameters")),
        };
        if r.remaining() != 0 {
            return Err(bad("bytes after the kind's layout"));
        }
        params.check()?;
        Ok(params)
    }

    /// The parameters as bytes, in the layout [`Params::decode`] reads.
    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::new();
        // Each value little-endian, in order.
        macro_rules! le {
            ($($value:expr),+) => {{ $(out.extend_from_slice(&$value.to_le_bytes());)+ }};
        }
        let put_rules = |out: &mut Vec<u8>, rules: &[Rule]| {
            out.extend_from_slice(&(rules.len() as u16).to_le_bytes());
            for rule in rules {
                out.extend_from_slice(&rule.prefix.to_be_bytes());
                out.push(rule.len);
                out.extend_from_slice(&rule.to.to_be_bytes());
            }
        };
        match self {
            Params::IpSec { sa, rules } => {
                le!(sa.spi);
                out.extend_from_slice(&sa.encryption_key);
                out.extend_from_slice(&sa.iv_key);
                out.extend_from_slice(&sa.authentication_key);
                out.extend_from_slice(&sa.tunnel_source.to_be_bytes());
                out.extend_from_slice(&sa.tunnel_destination.to_be_bytes());
                put_rules(&mut out, rules);
            }
            Params::Bm25 {
                documents,
                words,
                seed,
            } => le!(documents, words, seed),
            Params::Nat { rules } => put_rules(&mut out, rules),
            Params::Nids { patterns } => {
                le!(patterns.len() as u16);
                for pattern in patterns {
                    out.push(pattern.len() as u8);
                    out.extend_from_slice(pattern);
                }
            }
            Params::Count { items } => le!(items),
            Params::Ema { streams, alpha } => le!(streams, alpha),
            Params::Kvs { capacity } => le!(capacity),
            Params::FlowMonitor { depth, width, seed } => le!(depth, width, seed),
            Params::Ddos { window, low, high } => le!(window, low, high),
            Params::Recommend { users, items, seed } => le!(users, items, seed),
            Params::Knn {
                points,
                dims,
                classes,
                seed,
            } => le!(points, dims, classes, seed),
            Params::Spike {
                sensors,
                window,
                threshold,
            } => le!(sensors, window, threshold),
            Params::Bayes {
                classes,
                vocabulary,
                documents,
                seed,
            } => le!(classes, vocabulary, documents, seed),
            Params::ApiGateway {
                clients,
                rate,
                burst,
                key,
            } => {
                le!(clients, rate, burst, key.len() as u8);
                out.extend_from_slice(key);
            }
            Params::TopRanker { items } => le!(items),
            Params::Sql => {}
        }
        out
    }

    /// Checks every bound of the kind's parameters.
    pub fn check(&self) -> Result<(), DeployError> {
        let kind = self.kind();
        let bad = |reason| Err(DeployError::BadParameters { kind, reason });
        let finite_positive = |x: f64| x.is_finite() && x > 0.0;
        match self {
            Params::IpSec { rules, .. } | Params::Nat { rules } => check_rules(kind, rules)?,
            Params::Bm25 {
                documents, words, ..
            } => {
                bounded(kind, *documents, 1, 1 << 20, "documents: 1 to 2^20")?;
                bounded(kind, *words, 1, 1 << 20, "words: 1 to 2^20")?;
            }
            Params::Nids { patterns } => {
                bounded(kind, patterns.len(), 1, MAX_PATTERNS, "1 to 4096 patterns")?;
                if patterns.iter().any(Vec::is_empty) {
                    return bad("an empty pattern");
                }
            }
            Params::Count { items } => {
                bounded(kind, *items, 1, 1 << 24, "items: 1 to 2^24")?;
            }
            Params::Ema { streams, alpha } => {
                bounded(kind, *streams, 1, 1 << 22, "streams: 1 to 2^22")?;
                if !(*alpha > 0.0 && *alpha <= 1.0) {
                    return bad("alpha must be in (0, 1]");
                }
            }
            Params::Kvs { capacity } => {
                bounded(kind, *capacity, 1, 1 << 20, "capacity: 1 to 2^20")?;
            }
            Params::FlowMonitor { depth, width, .. } => {
                bounded(kind, *depth, 1, 16, "depth: 1 to 16")?;
                bounded(kind, *width, 1, 1 << 24, "width: 1 to 2^24")?;
            }
            Params::Ddos { window, low, high } => {
                bounded(kind, *window, 2, 1 << 22, "window: 2 to 2^22")?;
                if !(0.0..=1.0).contains(low) || !(0.0..=1.0).contains(high) || low > high {
                    return bad("thresholds must satisfy 0 <= low <= high <= 1");
                }
            }
            Params::Recommend { users, items, .. } => {
                bounded(kind, *users, 1, 1 << 16, "users: 1 to 2^16")?;
                bounded(kind, *items, 1, 4096, "items: 1 to 4096")?;
            }
            Params::Knn {
                points,
                dims,
                classes,
                ..
            } => {
                bounded(kind, *points, 1, 1 << 20, "points: 1 to 2^20")?;
                bounded(kind, usize::from(*dims), 1, knn::MAX_DIMS, "dims: 1 to 256")?;
                bounded(kind, *classes, 1, 1024, "classes: 1 to 1024")?;
            }
            Params::Spike {
                sensors,
                window,
                threshold,
            } => {
                bounded(kind, *sensors, 1, 1 << 20, "sensors: 1 to 2^20")?;
                bounded(kind, *window, 2, 4096, "window: 2 to 4096")?;
                if !finite_positive(*threshold) {
                    return bad("threshold must be finite and positive");
                }
            }
            Params::Bayes {
                classes,
                vocabulary,
                documents,
                ..
            } => {
                let max_classes = bayes::MAX_CLASSES as u16;
                bounded(kind, *classes, 1, max_classes, "classes: 1 to 64")?;
                bounded(kind, *vocabulary, 1, 1 << 20, "vocabulary: 1 to 2^20")?;
                bounded(kind, *documents, 1, 1 << 20, "documents: 1 to 2^20")?;
            }
            Params::ApiGateway {
                clients,
                rate,
                burst,
                key,
            } => {
                bounded(kind, *clients, 1, 1 << 22, "clients: 1 to 2^22")?;
                if !finite_positive(*rate) || !finite_positive(*burst) {
                    return bad("rate and burst must be finite and positive");
                }
                bounded(kind, key.len(), 1, MAX_KEY, "key: 1 to 64 bytes")?;
            }
            Params::TopRanker { items } => {
                bounded(kind, *items, 1, 1 << 22, "items: 1 to 2^22")?;
            }
            Params::Sql => {}
        }
        Ok(())
    }

    /// Heap bytes building an instance takes at its peak (the instance plus what building it
    /// needs for a while: synthetic training sets, corpora, automaton construction). An upper
    /// bound; the tests hold it against a counting allocator.
    pub fn footprint(&self) -> usize {
        match self {
            Params::IpSec { rules, .. } | Params::Nat { rules } => nat::footprint(rules),
            Params::Bm25 {
                documents, words, ..
            } => bm25_footprint(*documents as usize, *words as usize),
            Params::Nids { patterns } => {
                PatternSet::footprint(patterns) + patterns.len().div_ceil(64) * 8
            }
            Params::Count { items } => Count::footprint(&CountConfig { items: *items }),
            Params::Ema { streams, alpha } => Ema::footprint(&EmaConfig {
                streams: *streams as usize,
                alpha: *alpha,
                ..EmaConfig::default()
            }),
            Params::Kvs { capacity } => Kvs::footprint(&KvsConfig {
                capacity: *capacity as usize,
                ..KvsConfig::default()
            }),
            Params::FlowMonitor { depth, width, seed } => {
                FlowMonitor::footprint(&flowmon_config(*depth, *width, *seed))
            }
            Params::Ddos { window, low, high } => {
                Ddos::footprint(&ddos_config(*window, *low, *high))
            }
            Params::Recommend { users, items, .. } => {
                let names: Vec<String> = std_config::product_names_of(usize::from(*items));
                let name_bytes: usize = names.iter().map(String::len).sum();
                Recommend::footprint(*users as usize, &names) + name_bytes + names.len() * 24
            }
            Params::Knn {
                points,
                dims,
                classes,
                ..
            } => {
                let (points, dims) = (*points as usize, usize::from(*dims));
                let centres = usize::from(*classes) * (dims * 4 + 24);
                centres + points * (dims * 4 + 2)
            }
            Params::Spike {
                sensors,
                window,
                threshold,
            } => Spike::footprint(&spike_config(*sensors, *window, *threshold)),
            Params::Bayes {
                classes,
                vocabulary,
                documents,
                ..
            } => {
                // Training documents (at most 199 tokens each), then the model's counts and
                // log-likelihoods.
                let (classes, vocabulary) = (usize::from(*classes), *vocabulary as usize);
                let training = *documents as usize * (199 * 4 + 24 + 24);
                training + Bayes::footprint(classes, vocabulary)
            }
            Params::ApiGateway { clients, key, .. } => {
                ApiGateway::footprint(&gateway_config(*clients, 1.0, 1.0, key.clone()))
            }
            Params::TopRanker { items } => TopRanker::footprint(&TopRankerConfig {
                items: *items as usize,
                ..TopRankerConfig::default()
            }),
            Params::Sql => 0,
        }
    }
}

fn decode_rules(kind: ServiceKind, r: &mut Request<'_>) -> Result<Vec<Rule>, DeployError> {
    let short = |_| DeployError::BadParameters {
        kind,
        reason: "shorter than the kind's layout",
    };
    let n = usize::from(r.u16().map_err(short)?);
    let mut rules = Vec::new();
    for _ in 0..n.min(MAX_RULES + 1) {
        rules.push(Rule {
            prefix: u32::from_be_bytes(r.array().map_err(short)?),
            len: r.u8().map_err(short)?,
            to: u32::from_be_bytes(r.array().map_err(short)?),
        });
    }
    Ok(rules)
}

fn check_rules(kind: ServiceKind, rules: &[Rule]) -> Result<(), DeployError> {
    bounded(kind, rules.len(), 1, MAX_RULES, "1 to 32767 NAT rules")?;
    if rules
        .iter()
        .any(|rule| rule.len > 32 || rule.prefix & !nat::mask(rule.len) != 0)
    {
        return Err(DeployError::BadParameters {
            kind,
            reason: "a NAT rule longer than /32 or with host bits set",
        });
    }
    Ok(())
}

/// Total terms of a synthetic corpus: at most 159 words per document.
fn bm25_footprint(documents: usize, words: usize) -> usize {
    let terms = documents * 159;
    // Corpus text: a word has one syllable of at most 3 letters per base-16 digit of its
    // index (plus 16), and a space.
    let digits = (usize::BITS - (words + 16).leading_zeros()).div_ceil(4) as usize;
    let corpus = terms * (3 * digits + 1) + documents * (24 + 16);
    corpus + Bm25::footprint(documents, terms)
}

fn flowmon_config(depth: u8, width: u32, seed: u64) -> FlowMonitorConfig {
    FlowMonitorConfig {
        depth: usize::from(depth),
        width: width as usize,
        seed,
    }
}

fn ddos_config(window: u32, low: f64, high: f64) -> DdosConfig {
    DdosConfig {
        window: window as usize,
        low,
        high,
        ..DdosConfig::default()
    }
}

fn spike_config(sensors: u32, window: u16, threshold: f64) -> SpikeConfig {
    SpikeConfig {
        sensors: sensors as usize,
        window: usize::from(window),
        threshold,
        ..SpikeConfig::default()
    }
}

fn gateway_config(clients: u32, rate: f64, burst: f64, key: Vec<u8>) -> ApiGatewayConfig {
    ApiGatewayConfig {
        clients: clients as usize,
        rate,
        burst,
        key,
        ..ApiGatewayConfig::default()
    }
}

/// The kind of node an instance is deployed on.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Node {
    /// A SmartNIC: host-only kinds ([`ServiceKind::host_only`]) are refused.
    Nic,
    /// A host: every kind this build has (SQL needs the `sql` feature).
    Host,
}

/// A deploy ready to build: decoded, checked parameters and the memory they take.
#[derive(Clone, Debug)]
pub struct Plan {
    params: Params,
    footprint: usize,
}

/// Decodes and checks `kind`'s deploy parameters (empty: the standard configuration) for an
/// instance on `node`.
pub fn plan(node: Node, kind: ServiceKind, params: &[u8]) -> Result<Plan, DeployError> {
    if node == Node::Nic && kind.host_only() {
        return Err(DeployError::HostOnly(kind));
    }
    Plan::new(node, Params::decode(kind, params)?)
}

impl Plan {
    /// A plan for parameters built in code, for an instance on `node` (checked as decoded
    /// ones are).
    pub fn new(node: Node, params: Params) -> Result<Plan, DeployError> {
        let kind = params.kind();
        if node == Node::Nic && kind.host_only() {
            return Err(DeployError::HostOnly(kind));
        }
        params.check()?;
        if params == Params::Sql && !cfg!(feature = "sql") {
            return Err(DeployError::Refused {
                kind,
                reason: "this build has no SQL engine (the `sql` feature)",
            });
        }
        let footprint = params.footprint() + INSTANCE_BYTES;
        Ok(Plan { params, footprint })
    }

    /// The parameters.
    pub fn params(&self) -> &Params {
        &self.params
    }

    /// Heap bytes the build takes at its peak.
    pub fn footprint(&self) -> usize {
        self.footprint
    }

    /// Refuses the deploy unless the build fits in `available` free bytes.
    pub fn fits(&self, available: usize) -> Result<(), DeployError> {
        if self.footprint <= available {
            Ok(())
        } else {
            Err(DeployError::NoMemory {
                kind: self.params.kind(),
                needed: self.footprint,
                available,
            })
        }
    }

    /// Builds instance `id`.
    pub fn build(&self, id: ServiceId) -> Result<Box<dyn Service>, DeployError> {
        let kind = self.params.kind();
        let refused = |reason| DeployError::Refused { kind, reason };
        let nat_refused = |error| match error {
            nat::LpmError::NoMemory => DeployError::OutOfMemory(kind),
            error => refused(nat_reason(error)),
        };
        let service: Box<dyn Service> = match &self.params {
            Params::IpSec { sa, rules } => {
                Box::new(IpSec::new(id, rules, sa.clone()).map_err(nat_refused)?)
            }
            Params::Bm25 {
                documents,
                words,
                seed,
            } => {
                let corpus = std_config::bm25_corpus(*documents as usize, *words as usize, *seed);
                let documents: Vec<&[u8]> = corpus.iter().map(|d| d.as_bytes()).collect();
                Box::new(
                    Bm25::index(id, &documents, Bm25Config::default())
                        .map_err(|_| refused("the corpus cannot be indexed"))?,
                )
            }
            Params::Nat { rules } => Box::new(Nat::new(id, rules).map_err(nat_refused)?),
            Params::Nids { patterns } => Box::new(
                Nids::new(id, patterns).map_err(|_| refused("the patterns do not compile"))?,
            ),
            Params::Count { items } => Box::new(Count::new(id, CountConfig { items: *items })),
            Params::Ema { streams, alpha } => Box::new(Ema::new(
                id,
                EmaConfig {
                    streams: *streams as usize,
                    alpha: *alpha,
                    ..EmaConfig::default()
                },
            )),
            Params::Kvs { capacity } => Box::new(Kvs::new(
                id,
                KvsConfig {
                    capacity: *capacity as usize,
                    ..KvsConfig::default()
                },
            )),
            Params::FlowMonitor { depth, width, seed } => {
                Box::new(FlowMonitor::new(id, flowmon_config(*depth, *width, *seed)))
            }
            Params::Ddos { window, low, high } => {
                Box::new(Ddos::new(id, ddos_config(*window, *low, *high)))
            }
            Params::Recommend { users, items, seed } => {
                let names = std_config::product_names_of(usize::from(*items));
                Box::new(
                    Recommend::new(id, names, *users as usize, *seed)
                        .map_err(|_| refused("the item names do not compile"))?,
                )
            }
            Params::Knn {
                points,
                dims,
                classes,
                seed,
            } => {
                let dims = usize::from(*dims);
                let (points, labels) =
                    std_config::knn_training(*points as usize, dims, *classes, *seed);
                Box::new(
                    Knn::new(id, dims, points, labels)
                        .map_err(|_| refused("the training set has a bad shape"))?,
                )
            }
            Params::Spike {
                sensors,
                window,
                threshold,
            } => Box::new(Spike::new(id, spike_config(*sensors, *window, *threshold))),
            Params::Bayes {
                classes,
                vocabulary,
                documents,
                seed,
            } => {
                let (classes, vocabulary) = (usize::from(*classes), *vocabulary as usize);
                let training =
                    std_config::bayes_training(classes, vocabulary, *documents as usize, *seed);
                let documents: Vec<(u16, &[u32])> =
                    training.iter().map(|(c, t)| (*c, &t[..])).collect();
                Box::new(
                    Bayes::train(id, classes, vocabulary, &documents)
                        .map_err(|_| refused("the training set does not fit the model"))?,
                )
            }
            Params::ApiGateway {
                clients,
                rate,
                burst,
                key,
            } => Box::new(ApiGateway::new(
                id,
                gateway_config(*clients, *rate, *burst, key.clone()),
            )),
            Params::TopRanker { items } => Box::new(TopRanker::new(
                id,
                TopRankerConfig {
                    items: *items as usize,
                    ..TopRankerConfig::default()
                },
            )),
            Params::Sql => sql(id)?,
        };
        Ok(service)
    }
}

fn nat_reason(error: nat::LpmError) -> &'static str {
    match error {
        nat::LpmError::BadPrefix => "a NAT rule longer than /32 or with host bits set",
        nat::LpmError::BadValue => "too many NAT rules",
        nat::LpmError::TooManySegments => "too many /24s hold rules longer than /24",
        nat::LpmError::NoMemory => "no memory for the DIR-24-8 table (refused before this)",
    }
}

/// Builds instance `id` of `kind` for a host from its deploy parameters (empty: the standard
/// configuration), without a memory check: a host's allocator is not a fixed heap. A NIC
/// plans ([`plan`] with [`Node::Nic`]), checks [`Plan::fits`], then builds.
pub fn build_on_host(
    kind: ServiceKind,
    id: ServiceId,
    params: &[u8],
) -> Result<Box<dyn Service>, DeployError> {
    plan(Node::Host, kind, params)?.build(id)
}

#[cfg(feature = "sql")]
fn sql(id: ServiceId) -> Result<Box<dyn Service>, DeployError> {
    let sql = super::sql::Sql::new(id, std_config::SQL_SCHEMA, &std_config::SQL_STATEMENTS)
        .map_err(|_| DeployError::Refused {
            kind: ServiceKind::Sql,
            reason: "the standard schema does not compile",
        })?;
    Ok(Box::new(sql))
}

#[cfg(not(feature = "sql"))]
fn sql(_id: ServiceId) -> Result<Box<dyn Service>, DeployError> {
    Err(DeployError::Refused {
        kind: ServiceKind::Sql,
        reason: "this build has no SQL engine (the `sql` feature)",
    })
}
