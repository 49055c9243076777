//! Apache Kafka for a load run: one KRaft node (broker and controller) on a free loopback
//! port, its data under the run's work directory, stopped with the run.
//!
//! The jars are the ones the end-to-end tests use (`tests/kafka/fetch.sh`, pinned by
//! `tests/kafka/pom.xml`, fetched once per machine into `~/.cache/herald-kafka`). Unlike the
//! tests' short-lived brokers, this one runs with the JVM's full JIT (C2) and a 1 GiB heap:
//! it is being measured, so it gets the settings a production node would start from.

use crate::procs::{free_port, path_str, Proc};
use anyhow::{bail, Context, Result};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

/// `tests/kafka` of this checkout (fetch script, log4j2 configuration).
fn kafka_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tests/kafka")
}

/// The directory of Apache Kafka's jars: `$HERALD_KAFKA_LIBS`, or what `fetch.sh` prints.
pub fn libs() -> Result<PathBuf> {
    if let Some(libs) = std::env::var_os("HERALD_KAFKA_LIBS") {
        return Ok(PathBuf::from(libs));
    }
    let script = kafka_dir().join("fetch.sh");
    let out = Command::new("bash")
        .arg(&script)
        .stderr(std::process::Stdio::inherit())
        .output()
        .with_context(|| format!("running {}", script.display()))?;
    if !out.status.success() {
        bail!(
            "{} could not fetch Apache Kafka (needs mvn and Java 17+; see the message above)",
            script.display()
        );
    }
    let stdout = String::from_utf8_lossy(&out.stdout);
    let libs = stdout.lines().last().unwrap_or_default().trim().to_owned();
    if libs.is_empty() {
        bail!("{} printed no directory", script.display());
    }
    Ok(PathBuf::from(libs))
}

fn java() -> String {
    match std::env::var("JAVA_HOME") {
        Ok(home) if !home.is_empty() => format!("{home}/bin/java"),
        _ => "java".to_owned(),
    }
}

fn jvm_args(libs: &Path) -> Vec<String> {
    vec![
        "-Xms1g".to_owned(),
        "-Xmx1g".to_owned(),
        "-XX:+UseG1GC".to_owned(),
        "-XX:MaxGCPauseMillis=20".to_owned(),
        "-Djava.awt.headless=true".to_owned(),
        format!(
            "-Dlog4j2.configurationFile={}",
            kafka_dir().join("log4j2.properties").display()
        ),
        "-cp".to_owned(),
        format!("{}/*", libs.display()),
    ]
}

/// A single-node cluster's `server.properties`: replication factor 1, topics created by
/// Herald only, Kafka's defaults otherwise (no fsync per write, as on a production node).
fn properties(addr: &str, controller: &str, data: &Path) -> String {
    format!(
        "process.roles=broker,controller
node.id=1
listeners=PLAINTEXT://{addr},CONTROLLER://{controller}
advertised.listeners=PLAINTEXT://{addr}
controller.listener.names=CONTROLLER
inter.broker.listener.name=PLAINTEXT
listener.security.protocol.map=PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT
controller.quorum.bootstrap.servers={controller}
log.dirs={data}
auto.create.topics.enable=false
num.partitions=1
default.replication.factor=1
min.insync.replicas=1
offsets.topic.replication.factor=1
offsets.topic.num.partitions=3
transaction.state.log.replication.factor=1
transaction.state.log.min.isr=1
share.coordinator.state.topic.replication.factor=1
share.coordinator.state.topic.min.isr=1
group.initial.rebalance.delay.ms=0
",
        data = data.display()
    )
}

/// Formats and starts the node under `dir`; returns it once it logged that it started.
pub async fn start(dir: &Path) -> Result<(Proc, String)> {
    let libs = libs()?;
    let addr = free_port()?.to_string();
    let controller = free_port()?.to_string();
    let props = dir.join("kafka.properties");
    std::fs::write(&props, properties(&addr, &controller, &dir.join("kafka")))
        .context("writing kafka.properties")?;
    let props = path_str(&props)?.to_owned();
    let cluster_id = {
        use base64::Engine as _;
        let id =
            base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(rand::random::<[u8; 16]>());
        // StorageTool would read a leading `-` as an option.
        format!("h{}", &id[1..])
    };
    let mut format = jvm_args(&libs);
    format.extend(
        [
            "kafka.tools.StorageTool",
            "format",
            "--standalone",
            "-t",
            &cluster_id,
            "-c",
            &props,
        ]
        .map(str::to_owned),
    );
    let out = Command::new(java())
        .args(&format)
        .output()
        .context("running java (Apache Kafka needs Java 17 or newer on PATH)")?;
    if !out.status.success() {
        bail!(
            "formatting Kafka storage failed: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }
    let mut run = jvm_args(&libs);
    run.extend(["kafka.Kafka".to_owned(), props]);
    let args: Vec<&str> = run.iter().map(String::as_str).collect();
    let mut proc = Proc::spawn(Path::new(&java()), "kafka", &args, &[], dir)?;
    proc.wait_log("Kafka Server started", Duration::from_secs(120))
        .await?;
    Ok((proc, addr))
}
