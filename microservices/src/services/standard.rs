//! The standard configuration of every service kind: realistic, reproducible deploy-time
//! configuration (rule sets, training sets, corpora synthesised from seeds), the shapes the
//! request generators of [`crate::apps::traffic`] aim at and the benchmark measures. The
//! synthesis is `no_std` and seeded (ChaCha8): a NIC and a host given the same parameters build
//! the same rules and models. [`super::deploy`] builds instances from these (empty deploy
//! parameters) or from parameters of one's own; [`instantiate`] gives the benchmark's instances.

use alloc::boxed::Box;
use alloc::format;
use alloc::string::String;
use alloc::vec::Vec;

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use rand_distr::{Distribution, Normal, Zipf};

use super::ipsec::SecurityAssociation;
use super::kvs::{Kvs, KvsConfig};
use super::nat::Rule;
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
/// Features per KNN point: a classify request (`u16 k, u16 dims`, then the features as `f32`)
/// is then 4 + 127 × 4 = 512 bytes, the benchmark's request size, with no padding.
pub const KNN_DIMS: usize = 127;
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

/// The seed of the standard models.
pub const SEED: u64 = 0x4533_5f73_7464;

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
    product_names_of(RECOMMEND_ITEMS)
}

/// Names of a recommender's `items` items: `product-` and [`word`] `i`.
pub fn product_names_of(items: usize) -> Vec<String> {
    (0..items).map(|i| format!("product-{}", word(i))).collect()
}

/// A KNN training set of `points` points with `dims` features around `classes` Gaussian
/// clusters (centres uniform in [-4, 4) per feature, unit noise), from `seed`.
pub fn knn_training(points: usize, dims: usize, classes: u16, seed: u64) -> (Vec<f32>, Vec<u16>) {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let centres = centres(&mut rng, dims, classes);
    knn_points(&mut rng, &centres, points)
}

fn centres(rng: &mut ChaCha8Rng, dims: usize, classes: u16) -> Vec<Vec<f32>> {
    (0..classes)
        .map(|_| (0..dims).map(|_| rng.random_range(-4.0..4.0)).collect())
        .collect()
}

/// `n` points around `centres` (labels are the centre index), unit noise.
pub fn knn_points(rng: &mut impl Rng, centres: &[Vec<f32>], n: usize) -> (Vec<f32>, Vec<u16>) {
    let noise = Normal::new(0.0f32, 1.0).unwrap_or_else(|_| unreachable!("valid parameters"));
    let dims = centres.first().map_or(0, Vec::len);
    let mut points = Vec::with_capacity(n * dims);
    let mut labels = Vec::with_capacity(n);
    for _ in 0..n {
        let class = rng.random_range(0..centres.len());
        points.extend(centres[class].iter().map(|c| c + noise.sample(rng)));
        labels.push(class as u16);
    }
    (points, labels)
}

/// The standard KNN clusters' centres (those of the standard training set).
pub fn knn_centres() -> Vec<Vec<f32>> {
    centres(
        &mut ChaCha8Rng::seed_from_u64(KNN_SEED),
        KNN_DIMS,
        KNN_CLASSES,
    )
}

/// The seed of the standard KNN training set.
pub const KNN_SEED: u64 = SEED ^ 3;

/// Token `rank` (0-based) of class `class`'s Zipf-distributed vocabulary in the standard
/// model: each class favours its own slice of the shared vocabulary.
pub fn bayes_token(class: usize, rank: usize) -> u32 {
    token(class, rank, BAYES_VOCABULARY)
}

fn token(class: usize, rank: usize, vocabulary: usize) -> u32 {
    ((class * 997 + rank) % vocabulary.max(1)) as u32
}

/// Naive Bayes training documents: `documents` documents of 50 to 199 tokens, classes in
/// turn, each drawing Zipf-distributed ranks (exponent 1.1) of its class's slice of a
/// `vocabulary`-token vocabulary ([`bayes_token`]), from `seed`.
pub fn bayes_training(
    classes: usize,
    vocabulary: usize,
    documents: usize,
    seed: u64,
) -> Vec<(u16, Vec<u32>)> {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let zipf = Zipf::new(vocabulary as f64, 1.1).unwrap_or_else(|_| unreachable!("valid"));
    (0..documents)
        .map(|d| {
            let class = d % classes.max(1);
            let len = rng.random_range(50..200);
            let tokens = (0..len)
                .map(|_| token(class, zipf.sample(&mut rng) as usize - 1, vocabulary))
                .collect();
            (class as u16, tokens)
        })
        .collect()
}

/// Naive Bayes training documents of the standard instance.
pub const BAYES_DOCUMENTS: usize = 4000;
/// The seed of the standard naive Bayes training set.
pub const BAYES_SEED: u64 = SEED ^ 4;

/// A BM25 corpus: `documents` documents of 40 to 159 words drawn Zipf-distributed (exponent
/// 1.0) from a `words`-word vocabulary ([`word`]), from `seed`.
pub fn bm25_corpus(documents: usize, words: usize, seed: u64) -> Vec<String> {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let zipf = Zipf::new(words as f64, 1.0).unwrap_or_else(|_| unreachable!("valid"));
    (0..documents)
        .map(|_| {
            let len = rng.random_range(40..160);
            let words: Vec<String> = (0..len)
                .map(|_| word(zipf.sample(&mut rng) as usize - 1))
                .collect();
            words.join(" ")
        })
        .collect()
}

/// The seed of the standard BM25 corpus.
pub const BM25_SEED: u64 = SEED ^ 5;

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

/// The benchmark's instance of `kind`: its standard configuration ([`super::deploy`] with
/// empty parameters), the KVS loaded with [`KVS_LOADED`] keys; `None` only for SQL without the
/// `sql` feature.
pub fn instantiate(kind: ServiceKind, id: ServiceId) -> Option<Box<dyn Service>> {
    if kind == ServiceKind::Kvs {
        return Some(Box::new(loaded_kvs(id)));
    }
    super::deploy::build_on_host(kind, id, &[]).ok()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::service::ServiceError;
    use crate::services::ipv4::udp_packet;

    /// A packet whose IPv4 total length runs past the bytes given.
    fn cut_packet() -> Vec<u8> {
        udp_packet(1, NAT_NETWORK | 1, (1, 2), &[0; 60])[..40].to_vec()
    }

    /// Short requests, unknown operation codes and lengths past the end, for the kinds whose
    /// format has them (NIDS takes any bytes as a payload).
    fn malformed(kind: ServiceKind) -> Vec<(Vec<u8>, ServiceError)> {
        use ServiceError::{BadLength, BadOpcode, Truncated};
        let short = (Vec::new(), Truncated);
        let past_end = |bytes: &[u8]| (bytes.to_vec(), BadLength);
        let opcode = (vec![0xee], BadOpcode);
        match kind {
            ServiceKind::IpSec | ServiceKind::Nat => {
                vec![
                    short,
                    (vec![0x45; 19], Truncated),
                    (cut_packet(), BadLength),
                ]
            }
            ServiceKind::Bm25 => vec![
                short,
                (vec![1, 0], Truncated),
                past_end(&[1, 0, 9, 0, b'a']),
            ],
            ServiceKind::Nids => Vec::new(),
            ServiceKind::Count => vec![short, opcode, past_end(&[1, 3, 0, 1, 0, 0, 0])],
            ServiceKind::Ema => vec![short, opcode, past_end(&[1, 0, 0, 0, 0, 2, 0, 0, 0, 0, 0])],
            ServiceKind::Kvs => vec![short, opcode, past_end(&[1, 3, b'a'])],
            ServiceKind::FlowMonitor => vec![short, opcode, past_end(&[1, 2, 0, 1])],
            ServiceKind::Ddos => vec![short, opcode, past_end(&[1, 1, 0, 1])],
            ServiceKind::Recommend => vec![short, opcode, past_end(&[1, 0, 0, 0, 0, 5, 0, b'a'])],
            ServiceKind::Knn => vec![
                short,
                (vec![7, 0, 127], Truncated),
                past_end(&[7, 0, 127, 0, 0, 0, 0, 0]),
            ],
            ServiceKind::Spike => vec![short, opcode, past_end(&[1, 0, 0, 0, 0, 2, 0, 0, 0, 0, 0])],
            ServiceKind::Bayes => vec![short, past_end(&[3, 0, 1, 0, 0, 0])],
            ServiceKind::ApiGateway => vec![short, opcode, (vec![1, 0, 0, 0, 0], Truncated)],
            ServiceKind::TopRanker => {
                vec![short, opcode, past_end(&[1, 2, 0, 1, 0, 0, 0, 0, 0, 0, 0])]
            }
            ServiceKind::Sql => vec![
                short,
                (vec![9, 0], BadOpcode),
                past_end(&[0, 3, 3, 9, 0, b'a']),
            ],
        }
    }

    /// Every standard instance answers malformed requests with the one-byte error response
    /// and hands the error to its runtime, which counts it (host-lib's `service_errors`, the
    /// firmware's per-service error count).
    #[test]
    fn malformed_requests_get_an_error_response() {
        for kind in ServiceKind::ALL {
            let Some(mut service) = instantiate(kind, ServiceId(1)) else {
                continue;
            };
            let mut ctx = Context::new(&SoftwareEngines, 0);
            for (request, expected) in malformed(kind) {
                let mut response = [0xa5u8; 2048];
                let (len, error) = service.serve(&mut ctx, &request, &mut response);
                assert_eq!(error, Some(expected), "{kind} {request:02x?}");
                assert_eq!((len, response[0]), (1, expected.code()), "{kind}");
            }
        }
    }
}
