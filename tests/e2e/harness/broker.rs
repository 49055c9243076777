//! The broker a test runs on: Apache Kafka (one KRaft node, or a three-node KRaft cluster with
//! replication factor 3 and `min.insync.replicas=2`) or Herald's embedded broker
//! (`herald broker`, tansu). Each runs as its own processes on free loopback ports with its
//! data under the test's directory, and is killed when the test ends, failed or not.
//!
//! Apache Kafka's jars come from Maven Central through `tests/kafka/fetch.sh` (pinned by
//! `tests/kafka/pom.xml`, cached under `~/.cache/herald-kafka`), fetched on first use.

use super::procs::{free_port, Proc};
use rdkafka::consumer::{BaseConsumer, Consumer};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

/// Which broker.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Flavor {
    /// Apache Kafka, one KRaft node (broker and controller).
    Kafka,
    /// Apache Kafka, three KRaft nodes (each broker and controller), RF 3, min ISR 2.
    KafkaCluster,
    /// Herald's embedded broker, `herald broker` (what `herald dev` runs).
    Embedded,
}

impl Flavor {
    /// The broker of the main suite: Apache Kafka, or the embedded broker when
    /// `E2E_BROKER=embedded` (to run the whole suite on what `herald dev` uses).
    pub fn suite() -> Flavor {
        match std::env::var("E2E_BROKER").as_deref() {
            Ok("embedded") => Flavor::Embedded,
            Ok("kafka") | Err(_) => Flavor::Kafka,
            Ok(other) => panic!("E2E_BROKER={other}: expected `kafka` or `embedded`"),
        }
    }

    fn nodes(self) -> usize {
        match self {
            Flavor::KafkaCluster => 3,
            Flavor::Kafka | Flavor::Embedded => 1,
        }
    }
}

/// One broker process and its addresses.
struct Node {
    id: usize,
    addr: SocketAddr,
    controller: SocketAddr,
    proc: Option<Proc>,
}

/// A running broker (or cluster); every process is killed on drop.
pub struct Broker {
    pub flavor: Flavor,
    dir: PathBuf,
    nodes: Vec<Node>,
}

impl Broker {
    /// Starts `flavor` with its data under `dir` and waits until it answers metadata requests.
    pub fn start(flavor: Flavor, dir: &Path) -> Self {
        super::tools::ensure();
        let nodes = (1..=flavor.nodes())
            .map(|id| Node {
                id,
                addr: free_port(),
                controller: free_port(),
                proc: None,
            })
            .collect();
        let mut broker = Self {
            flavor,
            dir: dir.to_owned(),
            nodes,
        };
        if flavor != Flavor::Embedded {
            broker.format();
        }
        for i in 0..broker.nodes.len() {
            broker.spawn(i);
        }
        broker.wait_ready(&(0..broker.nodes.len()).collect::<Vec<_>>());
        broker
    }

    /// `host:port,…` of every node.
    pub fn bootstrap(&self) -> String {
        self.nodes
            .iter()
            .map(|n| n.addr.to_string())
            .collect::<Vec<_>>()
            .join(",")
    }

    /// Settings a Herald process needs to use this broker.
    pub fn herald_env(&self) -> Vec<(&'static str, String)> {
        let mut env = vec![("HERALD_KAFKA__BROKERS", self.bootstrap())];
        if self.flavor == Flavor::KafkaCluster {
            env.push(("HERALD_KAFKA__REPLICATION_FACTOR", "3".to_owned()));
        }
        env
    }

    /// Node `i`'s Kafka node id (1-based, as in `node.id`).
    pub fn node_id(&self, i: usize) -> i32 {
        self.nodes[i].id as i32
    }

    /// Index of the node whose Kafka node id is `id`.
    pub fn index_of(&self, id: i32) -> usize {
        self.nodes
            .iter()
            .position(|n| n.id as i32 == id)
            .unwrap_or_else(|| panic!("no node {id}"))
    }

    /// Sends `signal` to node `i` and waits until it exited.
    pub fn stop_node(&mut self, i: usize, signal: &str) {
        let mut proc = self.nodes[i].proc.take().expect("the node runs");
        proc.signal(signal);
        proc.wait_exit(Duration::from_secs(60));
    }

    /// Starts node `i` again (same ports and data) and waits until it is back in the cluster.
    pub fn start_node(&mut self, i: usize) {
        assert!(self.nodes[i].proc.is_none(), "node {i} runs already");
        self.spawn(i);
        self.wait_ready(&[i]);
    }

    /// Stops every node (SIGTERM: a clean shutdown).
    pub fn stop(&mut self) {
        for i in 0..self.nodes.len() {
            if self.nodes[i].proc.is_some() {
                self.stop_node(i, "TERM");
            }
        }
    }

    /// Starts every stopped node again.
    pub fn restart(&mut self) {
        let stopped: Vec<usize> = (0..self.nodes.len())
            .filter(|i| self.nodes[*i].proc.is_none())
            .collect();
        for i in &stopped {
            self.spawn(*i);
        }
        self.wait_ready(&stopped);
    }

    fn spawn(&mut self, i: usize) {
        let node = &self.nodes[i];
        let name = format!("broker-{}", node.id);
        let proc = match self.flavor {
            Flavor::Embedded => {
                let mut proc = Proc::spawn(
                    &name,
                    &[
                        "broker",
                        "--data-dir",
                        self.dir.join("broker").to_str().unwrap(),
                        "--listen",
                        &node.addr.to_string(),
                    ],
                    &[],
                    &self.dir,
                );
                proc.wait_line("herald: broker listening on", Duration::from_secs(60));
                proc
            }
            Flavor::Kafka | Flavor::KafkaCluster => {
                let props = self.properties_file(i);
                let mut args = java_args();
                args.extend(["kafka.Kafka".to_owned(), props]);
                let args: Vec<&str> = args.iter().map(String::as_str).collect();
                Proc::spawn_program(&java(), &name, &args, &[], &self.dir)
            }
        };
        self.nodes[i].proc = Some(proc);
    }

    /// Formats every Kafka node's storage with one fresh cluster id.
    fn format(&self) {
        let cluster_id = cluster_id();
        for i in 0..self.nodes.len() {
            let props = self.properties_file(i);
            let mut args = java_args();
            args.extend(
                [
                    "kafka.tools.StorageTool",
                    "format",
                    "-t",
                    &cluster_id,
                    "-c",
                    &props,
                ]
                .map(str::to_owned),
            );
            if self.flavor == Flavor::Kafka {
                args.push("--standalone".to_owned());
            }
            let out = std::process::Command::new(java())
                .args(&args)
                .output()
                .expect("run java (Apache Kafka needs Java 17 or newer on PATH)");
            assert!(
                out.status.success(),
                "formatting Kafka storage failed: {}{}",
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            );
        }
    }

    /// Writes node `i`'s `server.properties` (once) and returns its path.
    fn properties_file(&self, i: usize) -> String {
        let node = &self.nodes[i];
        let path = self.dir.join(format!("kafka-{}.properties", node.id));
        if !path.exists() {
            std::fs::write(&path, self.properties(node)).unwrap();
        }
        path.to_str().unwrap().to_owned()
    }

    fn properties(&self, node: &Node) -> String {
        let replicas = self.nodes.len();
        let min_isr = replicas.min(2);
        let quorum = if self.flavor == Flavor::Kafka {
            format!("controller.quorum.bootstrap.servers={}", node.controller)
        } else {
            let voters: Vec<String> = self
                .nodes
                .iter()
                .map(|n| format!("{}@{}", n.id, n.controller))
                .collect();
            format!("controller.quorum.voters={}", voters.join(","))
        };
        let data = self.dir.join(format!("kafka-{}", node.id));
        format!(
            "process.roles=broker,controller
node.id={id}
listeners=PLAINTEXT://{addr},CONTROLLER://{controller}
advertised.listeners=PLAINTEXT://{addr}
controller.listener.names=CONTROLLER
inter.broker.listener.name=PLAINTEXT
listener.security.protocol.map=PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT
{quorum}
log.dirs={data}
auto.create.topics.enable=false
num.partitions=1
default.replication.factor={replicas}
min.insync.replicas={min_isr}
offsets.topic.replication.factor={replicas}
offsets.topic.num.partitions=5
transaction.state.log.replication.factor={replicas}
transaction.state.log.min.isr={min_isr}
share.coordinator.state.topic.replication.factor={replicas}
share.coordinator.state.topic.min.isr={min_isr}
group.initial.rebalance.delay.ms=0
broker.session.timeout.ms=3000
broker.heartbeat.interval.ms=500
log.cleaner.dedupe.buffer.size=4194304
log.cleaner.backoff.ms=1000
",
            id = node.id,
            addr = node.addr,
            controller = node.controller,
            data = data.display(),
        )
    }

    /// Waits until each node in `nodes` answers a metadata request listing every node of the
    /// cluster (an open port is not enough: a broker accepts connections before it serves).
    fn wait_ready(&mut self, nodes: &[usize]) {
        let expected = self.nodes.len();
        for &i in nodes {
            let addr = self.nodes[i].addr;
            let client: BaseConsumer = rdkafka::ClientConfig::new()
                .set("bootstrap.servers", addr.to_string())
                .set("log_level", "0")
                .create()
                .expect("metadata client");
            let deadline = Instant::now() + Duration::from_secs(120);
            loop {
                let proc = self.nodes[i].proc.as_mut().expect("started");
                if let Ok(Some(status)) = proc.child.try_wait() {
                    panic!(
                        "{} exited with {status} while starting; see {}",
                        proc.name,
                        self.dir.join(format!("{}.log", proc.name)).display()
                    );
                }
                if let Ok(metadata) = client.fetch_metadata(None, Duration::from_secs(2)) {
                    if metadata.brokers().len() == expected {
                        break;
                    }
                }
                assert!(
                    Instant::now() < deadline,
                    "broker node {} did not answer metadata within 120 s",
                    self.nodes[i].id
                );
                std::thread::sleep(Duration::from_millis(200));
            }
        }
    }
}

/// A fresh Kafka cluster id: 16 random bytes, URL-safe base64 without padding, never
/// starting with `-` (StorageTool's argument parser would take it for an option, as Kafka's
/// own `random-uuid` avoids too).
fn cluster_id() -> String {
    use base64::Engine as _;
    loop {
        let id =
            base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(rand::random::<[u8; 16]>());
        if !id.starts_with('-') {
            return id;
        }
    }
}

fn java() -> String {
    match std::env::var("JAVA_HOME") {
        Ok(home) if !home.is_empty() => format!("{home}/bin/java"),
        _ => "java".to_owned(),
    }
}

/// The JVM flags and class path every Kafka process of the tests runs with: small heap,
/// serial GC and the C1 compiler only (short-lived brokers on a 2-core machine), logging to
/// stderr through `tests/kafka/log4j2.properties`.
fn java_args() -> Vec<String> {
    let kafka = kafka_dir();
    vec![
        "-Xms512m".to_owned(),
        "-Xmx512m".to_owned(),
        "-XX:+UseSerialGC".to_owned(),
        "-XX:TieredStopAtLevel=1".to_owned(),
        "-Djava.awt.headless=true".to_owned(),
        format!(
            "-Dlog4j2.configurationFile={}",
            kafka.join("log4j2.properties").display()
        ),
        "-cp".to_owned(),
        format!("{}/*", kafka_libs().display()),
    ]
}

fn kafka_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tests/kafka")
}

/// The directory of Apache Kafka's jars, fetched by `tests/kafka/fetch.sh` on first use
/// (once per machine; later runs find them in the cache).
pub fn kafka_libs() -> &'static Path {
    static LIBS: OnceLock<PathBuf> = OnceLock::new();
    LIBS.get_or_init(|| {
        let script = kafka_dir().join("fetch.sh");
        let out = std::process::Command::new("bash")
            .arg(&script)
            .stderr(std::process::Stdio::inherit())
            .output()
            .expect("run tests/kafka/fetch.sh");
        assert!(
            out.status.success(),
            "could not fetch Apache Kafka from Maven Central with {} (needs mvn and Java 17+; \
             the message above says what failed)",
            script.display()
        );
        let stdout = String::from_utf8_lossy(&out.stdout);
        PathBuf::from(
            stdout
                .lines()
                .last()
                .expect("fetch.sh prints the libs directory"),
        )
    })
}
