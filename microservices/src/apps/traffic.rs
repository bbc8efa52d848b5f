//! Seeded, reproducible request generators: per service kind (requests of a chosen size for
//! the standard instances of [`crate::services::standard`]) and per application (events that
//! enter the application's DAG and the request each node on their path receives).
//!
//! What makes the traffic realistic: keys, items, clients and sensors follow Zipf laws (a few
//! are hot); sensor streams drift and carry injected spikes; packet traces alternate normal
//! traffic with attack bursts (floods from a handful of sources, spoofed random sources,
//! payloads carrying intrusion signatures). The same seed gives the same requests on every
//! machine (ChaCha8). Needs the `std` feature.

use alloc::vec::Vec;

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use rand_distr::{Distribution, Normal, Zipf};

use super::catalogue::App;
use super::dag::{Dag, NodeId};
use crate::engines::SoftwareEngines;
use crate::kind::ServiceKind;
use crate::services::flowmon::FlowKey;
use crate::services::ipv4::udp_packet;
use crate::services::standard::{self as std_instances, GATEWAY_KEY};
use crate::services::{
    apigw, bayes, bm25, count, ddos, ema, flowmon, knn, kvs, recommend, spike, topranker,
};

/// Where floods come from: 198.51.100.0/24 (TEST-NET-2).
pub const FLOOD_NETWORK: u32 = 0xc633_6400;

/// Kinds of attack a packet trace can be in the middle of.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Attack {
    /// A flood from a handful of sources.
    Flood,
    /// Packets from spoofed, uniformly random sources.
    Spoofed,
    /// Payloads carrying intrusion signatures.
    Intrusion,
}

/// One event of the workload: what the requests to every service are derived from.
#[derive(Clone, Debug, PartialEq)]
pub struct Event {
    /// When it happens, nanoseconds from the start.
    pub now_ns: u64,
    /// Its key (user, device, sensor, client): Zipf-distributed, picks shards.
    pub key: u32,
    /// A reading (sensor value, metric), with injected spikes.
    pub value: f32,
    /// Whether `value` is an injected spike.
    pub spike: bool,
    /// The attack in progress, if any.
    pub attack: Option<Attack>,
    /// Source address of the event's packet.
    pub source: u32,
}

/// Knobs of the workload.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Shape {
    /// Zipf exponent of keys.
    pub skew: f64,
    /// Distinct keys.
    pub keys: u32,
    /// Chance that a reading is a spike.
    pub spike_rate: f64,
    /// Events between attack bursts (0: never).
    pub attack_period: u64,
    /// Events an attack burst lasts.
    pub attack_length: u64,
    /// Mean time between events, nanoseconds.
    pub interval_ns: u64,
}

impl Default for Shape {
    fn default() -> Self {
        Self {
            skew: 1.1,
            keys: 4000,
            spike_rate: 0.01,
            attack_period: 5000,
            attack_length: 500,
            interval_ns: 20_000,
        }
    }
}

/// The state every generator draws from.
struct Source {
    rng: ChaCha8Rng,
    shape: Shape,
    keys: Zipf<f64>,
    noise: Normal<f32>,
    events: u64,
    now_ns: u64,
    drift: f32,
}

impl Source {
    fn new(seed: u64, shape: Shape) -> Self {
        let keys = shape.keys.max(1);
        Self {
            rng: ChaCha8Rng::seed_from_u64(seed),
            shape,
            keys: Zipf::new(f64::from(keys), shape.skew.max(0.0))
                .unwrap_or_else(|_| unreachable!("keys >= 1 and skew >= 0 are valid")),
            noise: Normal::new(0.0, 0.5).unwrap_or_else(|_| unreachable!("valid parameters")),
            events: 0,
            now_ns: 0,
            drift: 20.0,
        }
    }

    /// A Zipf key in `0..keys` (0 is the hottest).
    fn key(&mut self) -> u32 {
        self.keys.sample(&mut self.rng) as u32 - 1
    }

    fn event(&mut self) -> Event {
        self.events += 1;
        self.now_ns += self.rng.random_range(0..=2 * self.shape.interval_ns);
        let period = self.shape.attack_period;
        let attack = (period > 0 && self.events % period >= period - self.shape.attack_length)
            .then(|| match (self.events / period) % 3 {
                0 => Attack::Flood,
                1 => Attack::Spoofed,
                _ => Attack::Intrusion,
            });
        self.drift += self.noise.sample(&mut self.rng) * 0.1;
        let spike = self.rng.random_bool(self.shape.spike_rate.clamp(0.0, 1.0));
        let value = self.drift + self.noise.sample(&mut self.rng) + if spike { 25.0 } else { 0.0 };
        let key = self.key();
        let source = match attack {
            Some(Attack::Flood) => FLOOD_NETWORK | self.rng.random_range(1..4u32),
            Some(Attack::Spoofed) => self.rng.random(),
            _ => 0xc0a8_0000 | key,
        };
        Event {
            now_ns: self.now_ns,
            key,
            value,
            spike,
            attack,
            source,
        }
    }
}

/// Pads `request` with zeros to `size` bytes (services ignore bytes after the request).
fn padded(mut request: Vec<u8>, size: usize) -> Vec<u8> {
    if request.len() < size {
        request.resize(size, 0);
    }
    request
}

/// Builds the request each kind receives for an event.
struct Encoder {
    source: Source,
    size: usize,
    knn_centres: Vec<Vec<f32>>,
    word_zipf: Zipf<f64>,
    product_zipf: Zipf<f64>,
    token_zipf: Zipf<f64>,
}

impl Encoder {
    fn new(seed: u64, shape: Shape, size: usize) -> Self {
        let zipf =
            |n: usize, s: f64| Zipf::new(n as f64, s).unwrap_or_else(|_| unreachable!("valid"));
        Self {
            source: Source::new(seed, shape),
            size,
            knn_centres: std_instances::knn_centres(),
            word_zipf: zipf(std_instances::BM25_WORDS, 1.0),
            product_zipf: zipf(std_instances::RECOMMEND_ITEMS, 1.2),
            token_zipf: zipf(std_instances::BAYES_VOCABULARY, 1.1),
        }
    }

    /// How many fixed-size records fit a request of `self.size` after `header` bytes.
    fn fit(&self, header: usize, record: usize) -> usize {
        (self.size.saturating_sub(header) / record).max(1)
    }

    /// The event's packet: UDP from its source into 10.0.0.0/8, `size` bytes in all.
    fn packet(&mut self, event: &Event) -> Vec<u8> {
        let rng = &mut self.source.rng;
        let destination = std_instances::NAT_NETWORK | (event.key.wrapping_mul(2_654_435_761) >> 8);
        let mut payload: Vec<u8> = (0..self.size.saturating_sub(28))
            .map(|_| rng.random_range(b' '..=b'~'))
            .collect();
        if event.attack == Some(Attack::Intrusion) && !payload.is_empty() {
            let rules = [&b"/etc/passwd"[..], b"' OR '1'='1", b"${jndi:", b"<script>"];
            let rule = rules[rng.random_range(0..rules.len())];
            let at = rng.random_range(0..payload.len().saturating_sub(rule.len()).max(1));
            let end = (at + rule.len()).min(payload.len());
            payload[at..end].copy_from_slice(&rule[..end - at]);
        }
        let ports = (rng.random_range(1024..65535), 443);
        udp_packet(event.source, destination, ports, &payload)
    }

    fn text_words(&mut self, words: usize) -> Vec<u8> {
        let picked: Vec<_> = (0..words)
            .map(|_| std_instances::word(self.word_zipf.sample(&mut self.source.rng) as usize - 1))
            .collect();
        picked.join(" ").into_bytes()
    }

    fn request(&mut self, kind: ServiceKind, event: &Event) -> Vec<u8> {
        let size = self.size;
        let request = match kind {
            ServiceKind::IpSec | ServiceKind::Nat | ServiceKind::Nids => {
                let packet = self.packet(event);
                if kind == ServiceKind::Nids {
                    packet[28..].to_vec()
                } else {
                    packet
                }
            }
            ServiceKind::Bm25 => {
                let words = self.source.rng.random_range(2..6);
                let query = self.text_words(words);
                bm25::request::search(10, &query)
            }
            ServiceKind::Count => {
                let n = self.fit(3, 4);
                let first = event.key;
                let items: Vec<u32> =
                    core::iter::once(first)
                        .chain((1..n).map(|_| {
                            self.source.key().wrapping_mul(257) % std_instances::COUNT_ITEMS
                        }))
                        .collect();
                count::request::add(&items)
            }
            ServiceKind::Ema | ServiceKind::Spike => {
                let n = self.fit(7, 4);
                let mut samples: Vec<f32> = (0..n - 1)
                    .map(|_| {
                        event.value - if event.spike { 25.0 } else { 0.0 }
                            + self.source.noise.sample(&mut self.source.rng)
                    })
                    .collect();
                samples.push(event.value);
                if kind == ServiceKind::Ema {
                    ema::request::update(event.key % std_instances::EMA_STREAMS as u32, &samples)
                } else {
                    spike::request::observe(
                        event.key % std_instances::SPIKE_SENSORS as u32,
                        &samples,
                    )
                }
            }
            ServiceKind::Kvs => {
                let key = format!(
                    "user:{:06}",
                    event.key % (std_instances::KVS_CAPACITY as u32 - 100)
                );
                if self.source.rng.random_bool(0.1) {
                    let value =
                        alloc::vec![b'v'; size.saturating_sub(4 + key.len()).min(kvs::MAX_VALUE)];
                    kvs::request::put(key.as_bytes(), &value)
                } else {
                    kvs::request::get(key.as_bytes())
                }
            }
            ServiceKind::FlowMonitor => {
                let n = self.fit(3, flowmon::FLOW_KEY + 4);
                let flows: Vec<(FlowKey, u32)> = (0..n)
                    .map(|i| {
                        let src = if i == 0 {
                            event.source
                        } else {
                            0xc0a8_0000 | self.source.key()
                        };
                        let key = FlowKey {
                            src,
                            dst: std_instances::NAT_NETWORK | (src & 0xffff),
                            src_port: (src % 50_000) as u16 + 1024,
                            dst_port: 443,
                            protocol: 17,
                        };
                        (key, self.source.rng.random_range(64..1500))
                    })
                    .collect();
                flowmon::request::record(&flows)
            }
            ServiceKind::Ddos => {
                let n = self.fit(3, 4);
                let sources: Vec<u32> = (0..n)
                    .map(|_| match event.attack {
                        Some(Attack::Flood) => {
                            FLOOD_NETWORK | self.source.rng.random_range(1..4u32)
                        }
                        Some(Attack::Spoofed) => self.source.rng.random(),
                        _ => 0xc0a8_0000 | self.source.key(),
                    })
                    .collect();
                ddos::request::observe(&sources)
            }
            ServiceKind::Recommend => {
                let user = event.key % std_instances::RECOMMEND_USERS as u32;
                if self.source.rng.random_bool(0.1) {
                    recommend::request::recommend(user, 10)
                } else {
                    let names = std_instances::product_names();
                    let mut text = Vec::new();
                    while text.len() + 40 < size.saturating_sub(7) {
                        let item = self.product_zipf.sample(&mut self.source.rng) as usize - 1;
                        text.extend_from_slice(b"viewed ");
                        text.extend_from_slice(names[item].as_bytes());
                        text.extend_from_slice(b" then ");
                    }
                    recommend::request::view(user, &text)
                }
            }
            ServiceKind::Knn => {
                let centre = &self.knn_centres[event.key as usize % self.knn_centres.len()];
                let features: Vec<f32> = centre
                    .iter()
                    .map(|c| c + self.source.noise.sample(&mut self.source.rng) * 2.0)
                    .collect();
                knn::request::classify(7, &features)
            }
            ServiceKind::Bayes => {
                let n = self.fit(2, 4);
                let class = event.key as usize % std_instances::BAYES_CLASSES;
                let tokens: Vec<u32> = (0..n)
                    .map(|_| {
                        std_instances::bayes_token(
                            class,
                            self.token_zipf.sample(&mut self.source.rng) as usize - 1,
                        )
                    })
                    .collect();
                bayes::request::classify(&tokens)
            }
            ServiceKind::ApiGateway => {
                let client = event.key % std_instances::GATEWAY_CLIENTS as u32;
                let expiry = event.now_ns + 60_000_000_000;
                let mut tag = apigw::token_tag(&SoftwareEngines, GATEWAY_KEY, client, expiry);
                if event.attack.is_some() && self.source.rng.random_bool(0.5) {
                    tag[0] ^= 0x5a;
                }
                let body = self.text_words(8);
                apigw::request::call(client, expiry, &tag, &body)
            }
            ServiceKind::TopRanker => {
                if self.source.rng.random_bool(0.1) {
                    topranker::request::top(10)
                } else {
                    let n = self.fit(3, 8);
                    let deltas: Vec<(u32, f32)> = (0..n)
                        .map(|_| (self.source.key() % std_instances::TOP_ITEMS as u32, 1.0))
                        .collect();
                    topranker::request::update(&deltas)
                }
            }
            ServiceKind::Sql => self.sql(event),
        };
        padded(request, size)
    }

    #[cfg(feature = "sql")]
    fn sql(&mut self, event: &Event) -> Vec<u8> {
        use crate::services::sql::{request::execute, Value};
        let sensor = Value::Integer(i64::from(event.key % 1000));
        let at = Value::Integer((event.now_ns / 1_000_000) as i64);
        match self.source.rng.random_range(0..10) {
            0..=6 => execute(0, &[sensor, at, Value::Real(f64::from(event.value))]),
            7 | 8 => execute(1, &[sensor, Value::Integer(10)]),
            _ => execute(2, &[sensor, Value::Integer(0), at]),
        }
    }

    #[cfg(not(feature = "sql"))]
    fn sql(&mut self, _event: &Event) -> Vec<u8> {
        Vec::new()
    }
}

/// Requests of one service kind, for its standard instance.
pub struct ServiceTraffic {
    kind: ServiceKind,
    encoder: Encoder,
}

impl ServiceTraffic {
    /// Requests for `kind` of about `size` bytes (padded up to it), from `seed`.
    pub fn new(kind: ServiceKind, seed: u64, size: usize) -> Self {
        Self {
            kind,
            encoder: Encoder::new(seed, Shape::default(), size),
        }
    }

    /// The next request and the time it arrives.
    pub fn next_request(&mut self) -> (u64, Vec<u8>) {
        let event = self.encoder.source.event();
        (event.now_ns, self.encoder.request(self.kind, &event))
    }
}

/// One request to one node of an application's DAG.
#[derive(Clone, Debug, PartialEq)]
pub struct Call {
    /// The node it goes to.
    pub node: NodeId,
    /// The request.
    pub request: Vec<u8>,
}

/// An event entering an application and the calls it causes along the DAG.
#[derive(Clone, Debug, PartialEq)]
pub struct Trace {
    /// The event.
    pub event: Event,
    /// Every call, source first, then in breadth-first order.
    pub calls: Vec<Call>,
}

/// The workload of one application (E3 Table 3).
pub struct AppTraffic {
    app: App,
    dag: Dag,
    sources: Vec<NodeId>,
    encoder: Encoder,
}

/// The workload shape that suits `app`: packet traces with attack bursts for the NFV
/// applications, skewed keys for analytics, sensor streams with spikes for IoT.
pub fn shape_of(app: App) -> Shape {
    let base = Shape::default();
    match app {
        App::NfvFin | App::NfvDin | App::NfvIfid => Shape {
            keys: 60_000,
            attack_period: 2000,
            attack_length: 300,
            ..base
        },
        App::RtaPtc | App::RtaSf | App::RtaShm => Shape {
            skew: 1.2,
            attack_period: 0,
            ..base
        },
        App::IotDh | App::IotTs => Shape {
            keys: 1000,
            skew: 0.8,
            spike_rate: 0.02,
            attack_period: 0,
            ..base
        },
    }
}

impl AppTraffic {
    /// The workload of `app` from `seed`, requests padded to `size` bytes.
    pub fn new(app: App, seed: u64, size: usize) -> Self {
        let dag = app.dag();
        let sources = dag.sources().collect();
        Self {
            app,
            encoder: Encoder::new(seed, shape_of(app), size),
            dag,
            sources,
        }
    }

    /// The application.
    pub fn app(&self) -> App {
        self.app
    }

    /// The DAG the calls refer to.
    pub fn dag(&self) -> &Dag {
        &self.dag
    }

    /// The next event and its calls: it enters at one source (equal shares, by key), and
    /// every node it reaches calls each downstream tier once, on the node of that tier's
    /// slice picked by the event's key.
    pub fn next_trace(&mut self) -> Trace {
        let event = self.encoder.source.event();
        let mut calls = Vec::new();
        if self.sources.is_empty() {
            return Trace { event, calls };
        }
        let key = event.key as usize;
        let mut frontier = alloc::vec![self.sources[key % self.sources.len()]];
        let mut seen = alloc::vec![false; self.dag.len()];
        while let Some(node) = frontier.first().copied() {
            frontier.remove(0);
            if core::mem::replace(&mut seen[node.index()], true) {
                continue;
            }
            let kind = self.dag.node(node).kind;
            let request = self.encoder.request(kind, &event);
            calls.push(Call { node, request });
            for (_, group) in self.dag.call_groups(node) {
                if !group.is_empty() {
                    frontier.push(group[key % group.len()].to);
                }
            }
        }
        Trace { event, calls }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::service::{Context, ServiceId};
    use crate::services::standard::instantiate;

    #[test]
    fn same_seed_same_requests() {
        for kind in [ServiceKind::Kvs, ServiceKind::Ddos, ServiceKind::Nat] {
            let mut a = ServiceTraffic::new(kind, 7, 512);
            let mut b = ServiceTraffic::new(kind, 7, 512);
            let mut c = ServiceTraffic::new(kind, 8, 512);
            let (x, y, z): (Vec<_>, Vec<_>, Vec<_>) = (0..20)
                .map(|_| (a.next_request(), b.next_request(), c.next_request()))
                .fold(
                    (Vec::new(), Vec::new(), Vec::new()),
                    |mut acc, (x, y, z)| {
                        acc.0.push(x);
                        acc.1.push(y);
                        acc.2.push(z);
                        acc
                    },
                );
            assert_eq!(x, y);
            assert_ne!(x, z);
        }
    }

    #[test]
    fn every_kind_is_served_by_its_standard_instance() {
        for kind in ServiceKind::ALL {
            let Some(mut service) = instantiate(kind, ServiceId(1)) else {
                assert_eq!(kind, ServiceKind::Sql);
                continue;
            };
            let mut traffic = ServiceTraffic::new(kind, 1, 512);
            let mut response = [0u8; 2048];
            let mut ok = 0;
            for _ in 0..50 {
                let (now_ns, request) = traffic.next_request();
                assert!(request.len() >= 512, "{kind}: {}", request.len());
                if kind == ServiceKind::Knn {
                    // Every byte is a field: 127 features fill 512 bytes without padding.
                    assert_eq!(request.len(), 512);
                    assert_eq!(request[2..4], 127u16.to_le_bytes());
                }
                let mut ctx = Context::new(&SoftwareEngines, now_ns);
                let (_, error) = service.serve(&mut ctx, &request, &mut response);
                ok += usize::from(error.is_none());
            }
            // Forged gateway tokens and refused rate limits may fail; nothing else does.
            assert!(ok >= 40, "{kind}: only {ok} of 50 succeeded");
        }
    }

    /// Migration moves every service's snapshot: a standard instance restored from another's
    /// snapshot answers the next requests exactly as the original does. Table 2's stateful
    /// kinds snapshot something, and so does IPsec (its ESP sequence number) although Table 2
    /// marks it stateless; the other stateless kinds snapshot nothing.
    #[test]
    fn every_kind_migrates_without_losing_state() {
        for kind in ServiceKind::ALL {
            let (Some(mut original), Some(mut moved)) = (
                instantiate(kind, ServiceId(1)),
                instantiate(kind, ServiceId(1)),
            ) else {
                assert_eq!(kind, ServiceKind::Sql);
                continue;
            };
            let mut traffic = ServiceTraffic::new(kind, 2, 512);
            let mut response = [0u8; 2048];
            for _ in 0..30 {
                let (now_ns, request) = traffic.next_request();
                let mut ctx = Context::new(&SoftwareEngines, now_ns);
                original.serve(&mut ctx, &request, &mut response);
            }
            let mut snapshot = Vec::new();
            original.snapshot(&mut snapshot);
            let carries_state = kind.stateful() || kind == ServiceKind::IpSec;
            assert_eq!(!snapshot.is_empty(), carries_state, "{kind}");
            moved.restore(&snapshot).expect("the snapshot restores");
            let mut expected = [0u8; 2048];
            for _ in 0..20 {
                let (now_ns, request) = traffic.next_request();
                let mut ctx = Context::new(&SoftwareEngines, now_ns);
                let (n, _) = original.serve(&mut ctx, &request, &mut expected);
                let (m, _) = moved.serve(&mut ctx, &request, &mut response);
                assert_eq!(&response[..m], &expected[..n], "{kind} after migration");
            }
        }
    }

    #[test]
    fn packet_traces_carry_attack_bursts() {
        let mut traffic = AppTraffic::new(App::NfvDin, 3, 256);
        let traces: Vec<Trace> = (0..4000).map(|_| traffic.next_trace()).collect();
        let attacks = traces.iter().filter(|t| t.event.attack.is_some()).count();
        assert!((400..=1000).contains(&attacks), "{attacks} attack events");
        let floods: Vec<u32> = traces
            .iter()
            .filter(|t| t.event.attack == Some(Attack::Flood))
            .map(|t| t.event.source)
            .collect();
        assert!(!floods.is_empty() && floods.iter().all(|&s| s & !0xff == FLOOD_NETWORK));
        // Every trace starts at a source and visits every tier of the chain once.
        let dag = traffic.dag();
        let tiers = dag.tiers().len();
        for trace in &traces[..50] {
            assert_eq!(dag.in_degree(trace.calls[0].node), 0);
            assert!(trace.calls.len() >= tiers.min(2));
        }
    }

    #[test]
    fn sensor_streams_carry_spikes_and_keys_are_skewed() {
        let mut traffic = AppTraffic::new(App::IotTs, 5, 512);
        let events: Vec<Event> = (0..5000).map(|_| traffic.next_trace().event).collect();
        let spikes = events.iter().filter(|e| e.spike).count();
        assert!((50..=200).contains(&spikes), "{spikes} spikes");
        let hottest = events.iter().filter(|e| e.key == 0).count();
        let median = events.iter().filter(|e| e.key == 500).count();
        assert!(
            hottest > 10 * median.max(1),
            "key 0: {hottest}, key 500: {median}"
        );
    }
}
