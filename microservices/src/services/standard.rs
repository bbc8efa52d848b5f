//! Standard instances: every service kind deployed with a realistic, reproducible deploy-time
//! configuration (rule sets, training sets, corpora synthesised from fixed seeds), the shapes
//! the request generators of [`crate::apps::traffic`] aim at and the benchmark measures.
//! Needs the `std` feature (the synthesis uses `rand`); SQL also needs `sql`.

use alloc::boxed::Box;
use alloc::format;
use alloc::string::String;
use alloc::vec::Vec;

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use rand_distr::{Distribution, Normal, Zipf};

use super::apigw::{ApiGateway, ApiGatewayConfig};
use super::bayes::Bayes;
use super::bm25::{Bm25, Bm25Config};
use super::count::{Count, CountConfig};
use super::ddos::{Ddos, DdosConfig};
use super::ema::{Ema, EmaConfig};
use super::flowmon::{FlowMonitor, FlowMonitorConfig};
use super::ipsec::{IpSec, SecurityAssociation};
use super::knn::Knn;
use super::kvs::{Kvs, KvsConfig};
use super::nat::{Nat, Rule};
use super::nids::Nids;
use super::recommend::Recommend;
use super::spike::{Spike, SpikeConfig};
use super::topranker::{TopRanker, TopRankerConfig};
use crate::engines::SoftwareEngines;
use crate::kind::ServiceKind;
use crate::service::{Context, Service, ServiceId};

/// Item ids of the standard Count instance.
pub const COUNT_ITEMS: u32 = 1 << 20;
/// Streams of the standard EMA instance.
pub const EMA_STREAMS: usize = 4096;
/// Keys the standard KVS holds at most.
pub const KVS_CAPACITY: usize = 8192;
/// Sensors of the standard Spike instance.
pub const SPIKE_SENSORS: usize = 1024;
/// Items of the standard Top ranker.
pub const TOP_ITEMS: usize = 16384;
/// Clients of the standard API gateway.
pub const GATEWAY_CLIENTS: usize = 4096;
/// The standard API gateway's token key.
pub const GATEWAY_KEY: &[u8] = b"standard gateway key";
/// Features per KNN point.
pub const KNN_DIMS: usize = 120;
/// KNN training points.
pub const KNN_POINTS: usize = 4096;
/// KNN classes.
pub const KNN_CLASSES: u16 = 8;
/// Naive Bayes classes.
pub const BAYES_CLASSES: usize = 20;
/// Naive Bayes vocabulary.
pub const BAYES_VOCABULARY: usize = 20_000;
/// Words of the BM25 corpus's vocabulary.
pub const BM25_WORDS: usize = 5000;
/// Documents of the BM25 corpus.
pub const BM25_DOCUMENTS: usize = 2000;
/// Users of the standard recommender.
pub const RECOMMEND_USERS: usize = 2048;
/// Items (named products) of the standard recommender.
pub const RECOMMEND_ITEMS: usize = 256;
/// The network the standard NAT and IPsec rules translate: 10.0.0.0/8.
pub const NAT_NETWORK: u32 = 0x0a00_0000;
/// Rules of the standard NAT.
pub const NAT_RULES: usize = 1000;

const SEED: u64 = 0x4533_5f73_7464;

fn rng(salt: u64) -> ChaCha8Rng {
    ChaCha8Rng::seed_from_u64(SEED ^ salt)
}

/// Word `i` of the synthetic vocabulary: pronounceable, distinct, 2 to 4 syllables.
pub fn word(i: usize) -> String {
    const SYLLABLES: [&str; 16] = [
        "ka", "lo", "mi", "ne", "ru", "sa", "ti", "vo", "zen", "dar", "pel", "qua", "bri", "fo",
        "gu", "hy",
    ];
    let mut out = String::new();
    let mut n = i + 16;
    while n > 0 {
        out.push_str(SYLLABLES[n % 16]);
        n /= 16;
    }
    out
}

/// The standard NAT rules: prefixes of /12 to /28 inside 10.0.0.0/8 onto 172.16.0.0/12
/// networks, plus 10.0.0.0/8 itself as the catch-all.
pub fn nat_rules() -> Vec<Rule> {
    let mut rng = rng(1);
    let mut rules = alloc::vec![Rule {
        prefix: NAT_NETWORK,
        len: 8,
        to: 0xac10_0000,
    }];
    for _ in 1..NAT_RULES {
        let len = rng.random_range(12..=28u8);
        let prefix = (NAT_NETWORK | rng.random_range(0..1u32 << 24)) & super::nat::mask(len);
        let to = 0xac00_0000 | rng.random_range(0..1u32 << 20) << 4;
        rules.push(Rule { prefix, len, to });
    }
    rules
}

/// The standard IPsec security association.
pub fn security_association() -> SecurityAssociation {
    SecurityAssociation {
        spi: 0x0000_e3e3,
        encryption_key: *b"standard aes key",
        iv_key: *b"standard iv key!",
        authentication_key: *b"standard hmac key 20",
        tunnel_source: 0xc633_6401,
        tunnel_destination: 0xc633_6402,
    }
}

/// The standard NIDS rules: classic signature strings plus random binary ones.
pub fn nids_rules() -> Vec<Vec<u8>> {
    let classic: [&[u8]; 12] = [
        b"/etc/passwd",
        b"/bin/sh",
        b"cmd.exe",
        b"' OR '1'='1",
        b"UNION SELECT",
        b"<script>",
        b"../../",
        b"\x90\x90\x90\x90\x90\x90\x90\x90",
        b"wget http://",
        b"${jndi:",
        b"eval(base64_decode",
        b"User-Agent: sqlmap",
    ];
    let mut rng = rng(2);
    let mut rules: Vec<Vec<u8>> = classic.iter().map(|r| r.to_vec()).collect();
    while rules.len() < 500 {
        let len = rng.random_range(6..=14);
        rules.push((0..len).map(|_| rng.random()).collect());
    }
    rules
}

/// Names of the standard recommender's items.
pub fn product_names() -> Vec<String> {
    (0..RECOMMEND_ITEMS)
        .map(|i| format!("product-{}", word(i)))
        .collect()
}

/// The KNN training set: `KNN_CLASSES` Gaussian clusters.
pub fn knn_training() -> (Vec<f32>, Vec<u16>) {
    let mut rng = rng(3);
    let centres: Vec<Vec<f32>> = (0..KNN_CLASSES)
        .map(|_| (0..KNN_DIMS).map(|_| rng.random_range(-4.0..4.0)).collect())
        .collect();
    knn_points(&mut rng, &centres, KNN_POINTS)
}

/// `n` points around `centres` (labels are the centre index), unit noise.
pub fn knn_points(rng: &mut impl Rng, centres: &[Vec<f32>], n: usize) -> (Vec<f32>, Vec<u16>) {
    let noise = Normal::new(0.0f32, 1.0).unwrap_or_else(|_| unreachable!("valid parameters"));
    let mut points = Vec::with_capacity(n * KNN_DIMS);
    let mut labels = Vec::with_capacity(n);
    for _ in 0..n {
        let class = rng.random_range(0..centres.len());
        points.extend(centres[class].iter().map(|c| c + noise.sample(rng)));
        labels.push(class as u16);
    }
    (points, labels)
}

/// The KNN clusters' centres (the same as the training set's).
pub fn knn_centres() -> Vec<Vec<f32>> {
    let mut rng = rng(3);
    (0..KNN_CLASSES)
        .map(|_| (0..KNN_DIMS).map(|_| rng.random_range(-4.0..4.0)).collect())
        .collect()
}

/// Token `rank` (0-based) of class `class`'s Zipf-distributed vocabulary: each class favours
/// its own slice of the shared vocabulary.
pub fn bayes_token(class: usize, rank: usize) -> u32 {
    ((class * 997 + rank) % BAYES_VOCABULARY) as u32
}

fn bayes_training() -> Vec<(u16, Vec<u32>)> {
    let mut rng = rng(4);
    let zipf = Zipf::new(BAYES_VOCABULARY as f64, 1.1).unwrap_or_else(|_| unreachable!("valid"));
    (0..4000)
        .map(|d| {
            let class = d % BAYES_CLASSES;
            let len = rng.random_range(50..200);
            let tokens = (0..len)
                .map(|_| bayes_token(class, zipf.sample(&mut rng) as usize - 1))
                .collect();
            (class as u16, tokens)
        })
        .collect()
}

/// The BM25 corpus: documents of Zipf-distributed words.
pub fn bm25_corpus() -> Vec<String> {
    let mut rng = rng(5);
    let zipf = Zipf::new(BM25_WORDS as f64, 1.0).unwrap_or_else(|_| unreachable!("valid"));
    (0..BM25_DOCUMENTS)
        .map(|_| {
            let len = rng.random_range(40..160);
            let words: Vec<String> = (0..len)
                .map(|_| word(zipf.sample(&mut rng) as usize - 1))
                .collect();
            words.join(" ")
        })
        .collect()
}

/// Keys the standard KVS is loaded with: `user:000000` up to this.
pub const KVS_LOADED: u32 = KVS_CAPACITY as u32 - 100;

/// The key `user:NNNNNN` of the standard KVS.
pub fn kvs_key(n: u32) -> String {
    format!("user:{n:06}")
}

/// A KVS holding [`KVS_LOADED`] keys with 400-byte values, room for 100 more.
fn loaded_kvs(id: ServiceId) -> Kvs {
    let mut kvs = Kvs::new(
        id,
        KvsConfig {
            capacity: KVS_CAPACITY,
            ..KvsConfig::default()
        },
    );
    let mut ctx = Context::new(&SoftwareEngines, 0);
    let mut response = [0u8; 16];
    for n in 0..KVS_LOADED {
        let key = kvs_key(n);
        let value = [b'a' + (n % 26) as u8; 400];
        let (_, error) = kvs.serve(
            &mut ctx,
            &super::kvs::request::put(key.as_bytes(), &value),
            &mut response,
        );
        debug_assert!(error.is_none());
    }
    kvs
}

/// The SQL schema of the standard instance: sensor readings.
pub const SQL_SCHEMA: &str =
    "CREATE TABLE readings (sensor INTEGER NOT NULL, at INTEGER NOT NULL, \
     value REAL NOT NULL, PRIMARY KEY (sensor, at)) WITHOUT ROWID;";
/// The statements of the standard SQL instance: insert (or replace) a reading, the last
/// readings of a sensor, the average of a sensor over a time range.
pub const SQL_STATEMENTS: [&str; 3] = [
    "INSERT OR REPLACE INTO readings VALUES (?1, ?2, ?3)",
    "SELECT at, value FROM readings WHERE sensor = ?1 ORDER BY at DESC LIMIT ?2",
    "SELECT count(*), avg(value) FROM readings WHERE sensor = ?1 AND at BETWEEN ?2 AND ?3",
];

/// The standard instance of `kind`; `None` only for SQL without the `sql` feature.
pub fn instantiate(kind: ServiceKind, id: ServiceId) -> Option<Box<dyn Service>> {
    let service: Box<dyn Service> = match kind {
        ServiceKind::IpSec => Box::new(IpSec::new(id, &nat_rules(), security_association()).ok()?),
        ServiceKind::Bm25 => {
            let corpus = bm25_corpus();
            let documents: Vec<&[u8]> = corpus.iter().map(|d| d.as_bytes()).collect();
            Box::new(Bm25::index(id, &documents, Bm25Config::default()).ok()?)
        }
        ServiceKind::Nat => Box::new(Nat::new(id, &nat_rules()).ok()?),
        ServiceKind::Nids => Box::new(Nids::new(id, nids_rules()).ok()?),
        ServiceKind::Count => Box::new(Count::new(id, CountConfig { items: COUNT_ITEMS })),
        ServiceKind::Ema => Box::new(Ema::new(
            id,
            EmaConfig {
                streams: EMA_STREAMS,
                ..EmaConfig::default()
            },
        )),
        ServiceKind::Kvs => Box::new(loaded_kvs(id)),
        ServiceKind::FlowMonitor => Box::new(FlowMonitor::new(id, FlowMonitorConfig::default())),
        ServiceKind::Ddos => Box::new(Ddos::new(id, DdosConfig::default())),
        ServiceKind::Recommend => {
            Box::new(Recommend::new(id, product_names(), RECOMMEND_USERS, SEED).ok()?)
        }
        ServiceKind::Knn => {
            let (points, labels) = knn_training();
            Box::new(Knn::new(id, KNN_DIMS, points, labels).ok()?)
        }
        ServiceKind::Spike => Box::new(Spike::new(
            id,
            SpikeConfig {
                sensors: SPIKE_SENSORS,
                ..SpikeConfig::default()
            },
        )),
        ServiceKind::Bayes => {
            let training = bayes_training();
            let documents: Vec<(u16, &[u32])> =
                training.iter().map(|(c, t)| (*c, &t[..])).collect();
            Box::new(Bayes::train(id, BAYES_CLASSES, BAYES_VOCABULARY, &documents).ok()?)
        }
        ServiceKind::ApiGateway => Box::new(ApiGateway::new(
            id,
            ApiGatewayConfig {
                clients: GATEWAY_CLIENTS,
                key: GATEWAY_KEY.to_vec(),
                ..ApiGatewayConfig::default()
            },
        )),
        ServiceKind::TopRanker => Box::new(TopRanker::new(
            id,
            TopRankerConfig {
                items: TOP_ITEMS,
                ..TopRankerConfig::default()
            },
        )),
        ServiceKind::Sql => sql(id)?,
    };
    Some(service)
}

#[cfg(feature = "sql")]
fn sql(id: ServiceId) -> Option<Box<dyn Service>> {
    Some(Box::new(
        super::sql::Sql::new(id, SQL_SCHEMA, &SQL_STATEMENTS).ok()?,
    ))
}

#[cfg(not(feature = "sql"))]
fn sql(_id: ServiceId) -> Option<Box<dyn Service>> {
    None
}
