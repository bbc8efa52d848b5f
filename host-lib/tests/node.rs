//! The host node across two processes: this process runs a `HostNode` (an echo service and a
//! KVS) on a /dev/shm channel it creates; a child process plays the NIC with `pcie-channel`
//! directly, sends UDP requests on many flows plus messages the host must refuse, and checks
//! every reply (content, addressing, per-flow order). The child is this test binary, run with
//! `E3_NODE_CHILD` naming the region.

use std::path::PathBuf;
use std::process::Command;
use std::time::{Duration, Instant};

use host_lib::HostNode;
use microservices::services::Echo;
use microservices::services::{kvs, Kvs, KvsConfig};
use microservices::ServiceId;
use pcie_channel::message::{MessageHeader, UdpAddressing};
use pcie_channel::{ChannelError, EngineSet, Geometry, MappedChannel, Role};

const CHILD_ENV: &str = "E3_NODE_CHILD";
const ECHO_PORT: u16 = 7;
const KVS_PORT: u16 = 7000;
const REQUESTS: u32 = 20_000;
const FLOWS: u32 = 32;
const HOST_IP: [u8; 4] = [10, 0, 0, 1];
const GEOMETRY: Geometry = Geometry {
    engines: 4,
    ring_entries: 64,
    slot_bytes: 2048,
    lanes: 64,
};
/// A guard against a hung child, not a performance assertion.
const GIVE_UP: Duration = Duration::from_secs(300);

struct RemoveOnDrop(PathBuf);

impl Drop for RemoveOnDrop {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

#[test]
fn a_host_node_serves_a_nic_in_another_process() {
    let path = PathBuf::from(format!("/dev/shm/e3-node-test-{}", std::process::id()));
    let _file = RemoveOnDrop(path.clone());
    let node = HostNode::builder()
        .create_nic(&path, None, GEOMETRY, Some(b"host_ip=10.0.0.1".to_vec()))
        .service(ECHO_PORT, Box::new(Echo::new(ServiceId(1))))
        .service(
            KVS_PORT,
            Box::new(Kvs::new(ServiceId(2), KvsConfig::default())),
        )
        .workers(2)
        .queue_depth(64)
        .spawn()
        .expect("start the host node");
    let status = Command::new(std::env::current_exe().unwrap())
        .args(["--exact", "fake_nic_child", "--ignored", "--nocapture"])
        .env(CHILD_ENV, &path)
        .status()
        .expect("run the NIC process");
    assert!(
        status.success(),
        "the fake NIC found a wrong reply: {status}"
    );
    let stats = node.shutdown().expect("clean shutdown");
    let nic = stats.nics[0];
    assert_eq!(nic.requests, u64::from(REQUESTS) + 2, "{nic:?}");
    assert_eq!(nic.replies, u64::from(REQUESTS) + 2, "{nic:?}");
    assert_eq!(nic.no_service, 1, "{nic:?}");
    assert_eq!(nic.malformed, 2, "{nic:?}");
    assert_eq!(nic.control, 1, "{nic:?}");
    assert_eq!(nic.replies_abandoned, 0, "{nic:?}");
    let handled: u64 = stats.workers.iter().map(|w| w.requests).sum();
    assert_eq!(handled, u64::from(REQUESTS) + 2);
    assert!(stats.workers.iter().all(|w| w.requests > 0), "{stats:?}");
}

fn request(flow: u32, port: u16, payload: &[u8]) -> (u32, Vec<u8>) {
    let addressing = UdpAddressing {
        src_ip: [10, 0, 0, 100 + (flow % 50) as u8].into(),
        src_port: 40_000 + flow as u16,
        dst_ip: HOST_IP.into(),
        dst_port: port,
    };
    let mut message = vec![0u8; 16 + payload.len()];
    let n = MessageHeader::UdpRequest(addressing)
        .encode(payload, &mut message)
        .unwrap();
    message.truncate(n);
    (flow, message)
}

/// The NIC side of `a_host_node_serves_a_nic_in_another_process` (runs only as its child).
#[test]
#[ignore = "child process of a_host_node_serves_a_nic_in_another_process"]
fn fake_nic_child() {
    let Some(path) = std::env::var_os(CHILD_ENV) else {
        return;
    };
    let nic = MappedChannel::attach(&path, Role::Nic).expect("attach as the NIC");
    let mut config = [0u8; 64];
    let n = nic.read_boot_config(&mut config).unwrap();
    assert_eq!(&config[..n], b"host_ip=10.0.0.1");
    let mut tx = nic.sender(EngineSet::first(4)).unwrap();
    let mut rx = nic.receiver().unwrap();

    // What the host must refuse: a reply-kind message, a short one, a port nobody serves; a
    // heartbeat it counts. None of them gets an answer.
    let mut outgoing: Vec<(u32, Vec<u8>)> = Vec::new();
    let (_, mut wrong) = request(1, ECHO_PORT, b"x");
    wrong[0] = 2;
    outgoing.push((1, wrong));
    outgoing.push((1, vec![1, 0, 0]));
    outgoing.push(request(1, 9999, b"nobody"));
    let mut heartbeat = vec![0u8; 32];
    MessageHeader::Heartbeat
        .encode(&[7; 16], &mut heartbeat)
        .unwrap();
    outgoing.push((0, heartbeat));
    // A KVS put then get on one flow (the get must see the put: same flow, in order).
    outgoing.push(request(2, KVS_PORT, &kvs::request::put(b"key", b"value")));
    outgoing.push(request(2, KVS_PORT, &kvs::request::get(b"key")));
    // Echo requests on many flows, numbered per flow.
    let mut numbered = vec![0u32; FLOWS as usize];
    for i in 0..REQUESTS {
        let flow = 100 + (i * 7919) % FLOWS;
        let k = &mut numbered[(flow - 100) as usize];
        let payload = format!("flow {flow} #{k} {}", "x".repeat((i % 300) as usize));
        *k += 1;
        outgoing.push(request(flow, ECHO_PORT, payload.as_bytes()));
    }

    let mut next_echo = vec![0u32; FLOWS as usize];
    let mut kvs_replies = Vec::new();
    let mut received = 0u32;
    let mut sent = 0usize;
    let started = Instant::now();
    while received < REQUESTS + 2 {
        while sent < outgoing.len() {
            let (flow, message) = &outgoing[sent];
            match tx.send(*flow, message) {
                Ok(()) => sent += 1,
                Err(ChannelError::WouldBlock) => break,
                Err(other) => panic!("send: {other}"),
            }
        }
        nic.beat();
        let got = rx
            .poll(64, |m| {
                let mut bytes = vec![0u8; m.len()];
                m.copy_to(&mut bytes).unwrap();
                let (header, body) = MessageHeader::parse(&bytes).expect("a well-formed reply");
                let MessageHeader::UdpReply(a) = header else {
                    panic!("{header:?}")
                };
                assert_eq!(a.src_ip.octets(), HOST_IP);
                let flow = m.flow();
                assert_eq!(
                    a.dst_port,
                    40_000 + flow as u16,
                    "reply addressed to the client"
                );
                if a.src_port == KVS_PORT {
                    kvs_replies.push(body.to_vec());
                    return;
                }
                let k = &mut next_echo[(flow - 100) as usize];
                let expected = format!("flow {flow} #{k} ");
                assert_eq!(body[0], 0, "echo status");
                assert!(
                    body[1..].starts_with(expected.as_bytes()),
                    "flow {flow}: expected message #{k}, got {:?}",
                    String::from_utf8_lossy(&body[1..body.len().min(40)])
                );
                *k += 1;
            })
            .unwrap();
        received += got as u32;
        if got == 0 {
            assert!(
                started.elapsed() < GIVE_UP,
                "stuck after {received} replies"
            );
            std::thread::yield_now();
        }
    }
    assert_eq!(kvs_replies.len(), 2);
    assert_eq!(kvs_replies[0][0], 0, "put succeeded");
    assert_eq!(kvs_replies[1][0], 0, "get succeeded");
    assert!(
        kvs_replies[1].ends_with(b"value"),
        "get returns the value put on the same flow: {:?}",
        kvs_replies[1]
    );
}
