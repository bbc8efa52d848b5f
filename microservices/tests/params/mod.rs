//! Deploy parameters of every kind for the deploy tests: a small configuration that differs
//! from the standard one in every field.

use microservices::services::deploy::Params;
use microservices::services::ipsec::SecurityAssociation;
use microservices::services::nat::Rule;
use microservices::ServiceKind;

/// A small configuration of each kind that differs from the standard one in every field.
pub fn custom(kind: ServiceKind) -> Params {
    let rules = vec![
        Rule {
            prefix: 0x0a00_0000,
            len: 8,
            to: 0xc0a8_0000,
        },
        Rule {
            prefix: 0x0a01_0280,
            len: 25,
            to: 0xc0a8_0080,
        },
    ];
    match kind {
        ServiceKind::IpSec => Params::IpSec {
            sa: SecurityAssociation {
                spi: 0x1234,
                encryption_key: [1; 16],
                iv_key: [2; 16],
                authentication_key: [3; 20],
                tunnel_source: 0xc000_0201,
                tunnel_destination: 0xc000_0202,
            },
            rules,
        },
        ServiceKind::Bm25 => Params::Bm25 {
            documents: 20,
            words: 100,
            seed: 7,
        },
        ServiceKind::Nat => Params::Nat { rules },
        ServiceKind::Nids => Params::Nids {
            patterns: vec![b"attack".to_vec(), b"/etc/passwd".to_vec()],
        },
        ServiceKind::Count => Params::Count { items: 100 },
        ServiceKind::Ema => Params::Ema {
            streams: 10,
            alpha: 0.5,
        },
        ServiceKind::Kvs => Params::Kvs { capacity: 16 },
        ServiceKind::FlowMonitor => Params::FlowMonitor {
            depth: 2,
            width: 64,
            seed: 9,
        },
        ServiceKind::Ddos => Params::Ddos {
            window: 32,
            low: 0.2,
            high: 0.9,
        },
        ServiceKind::Recommend => Params::Recommend {
            users: 8,
            items: 5,
            seed: 3,
        },
        ServiceKind::Knn => Params::Knn {
            points: 30,
            dims: 4,
            classes: 3,
            seed: 5,
        },
        ServiceKind::Spike => Params::Spike {
            sensors: 4,
            window: 8,
            threshold: 2.5,
        },
        ServiceKind::Bayes => Params::Bayes {
            classes: 2,
            vocabulary: 50,
            documents: 10,
            seed: 11,
        },
        ServiceKind::ApiGateway => Params::ApiGateway {
            clients: 4,
            rate: 10.0,
            burst: 20.0,
            key: b"secret".to_vec(),
        },
        ServiceKind::TopRanker => Params::TopRanker { items: 10 },
        ServiceKind::Sql => Params::Sql,
    }
}
