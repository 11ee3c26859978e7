//! Obelix's queue side by side with pgmq (on the same PostgreSQL) and NATS JetStream, in one
//! run on the same cores, and the ratios the queue is judged by.
//!
//! Three workloads, each run on every system in turn, 100-byte payloads by default:
//! - singles: 64 clients, each sending one message and awaiting its durable ack, again and
//!   again, for a fixed time after a warm-up;
//! - batches: 8 clients, each sending batches of 100 and awaiting the ack, same timing;
//! - dequeue: messages enqueued beforehand (not timed), then 8 readers taking batches of 100
//!   until none is left, after a few warm-up batches each.
//!
//! A system that is not there (no Obelix queue API yet, no PostgreSQL URL, no NATS server) is
//! skipped with a note. `scripts/queue_bench.sh` starts everything and runs this; by hand:
//!
//! `cargo run --release --features queue-peers --example queue_bench -- --obelix http://127.0.0.1:18080 \
//!   --pg-url 'postgres://postgres@localhost:5432/obelix?host=/tmp/obelix-pg-…' --nats 127.0.0.1:4222`
//!
//! - `drive`: the load loops and their clock, shared by every system;
//! - `obelix`, `obelix_kafka` (the same queue through `/kafka`, enqueue workloads only),
//!   `pgmq_peer`, `jetstream`: one client per system.

mod drive;
mod jetstream;
mod obelix;
mod obelix_kafka;
mod pgmq_peer;

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use clap::{Parser, ValueEnum};

use drive::{Clients, Measured, Result};
use jetstream::JetStream;
use obelix::{Obelix, Unavailable};
use obelix_kafka::ObelixKafka;
use pgmq_peer::Pgmq;

/// Warm-up batches each reader takes before the dequeue clock starts.
const DEQUEUE_WARM_STEPS: usize = 5;

#[derive(Parser)]
#[command(about = "Obelix's queue side by side with pgmq and NATS JetStream")]
struct Args {
    /// Obelix's base URL; skipped when nothing answers there or it has no /queue API yet.
    #[arg(long, default_value = "http://127.0.0.1:18080")]
    obelix: String,
    /// Any database on the PostgreSQL server Obelix uses (a Unix socket as `?host=/dir`); pgmq
    /// gets a database of its own on that server. pgmq is skipped without it.
    #[arg(long, env = "DATABASE_URL")]
    pg_url: Option<String>,
    /// The database pgmq is installed into (created if missing).
    #[arg(long, default_value = "pgmq_bench")]
    pgmq_database: String,
    /// A NATS server with JetStream enabled.
    #[arg(long, env = "NATS_URL", default_value = "127.0.0.1:4222")]
    nats: String,
    /// Which systems to run.
    #[arg(
        long,
        value_delimiter = ',',
        default_value = "obelix,obelix-kafka,pgmq,jetstream"
    )]
    systems: Vec<SystemName>,
    /// Which workloads to run.
    #[arg(long, value_delimiter = ',', default_value = "singles,batches,dequeue")]
    workloads: Vec<Workload>,
    /// Timed seconds of each enqueue run.
    #[arg(long, default_value_t = 10)]
    seconds: u64,
    /// Untimed seconds before each enqueue run.
    #[arg(long, default_value_t = 2)]
    warmup_seconds: u64,
    #[arg(long, default_value_t = 100)]
    payload_bytes: usize,
    /// Concurrent clients of the singles workload.
    #[arg(long, default_value_t = 64)]
    single_clients: usize,
    /// Concurrent clients of the batches workload (and of the dequeue's untimed fill).
    #[arg(long, default_value_t = 8)]
    batch_clients: usize,
    /// Messages per batch, enqueued or dequeued.
    #[arg(long, default_value_t = 100)]
    batch_size: usize,
    /// Concurrent readers of the dequeue workload.
    #[arg(long, default_value_t = 8)]
    dequeue_clients: usize,
    /// Messages enqueued before the dequeue workload.
    #[arg(long, default_value_t = 200_000)]
    dequeue_messages: usize,
    /// Partitions of each Obelix topic.
    #[arg(long, default_value_t = 3)]
    partitions: u32,
}

#[derive(Clone, Copy, PartialEq, Eq, ValueEnum)]
enum SystemName {
    Obelix,
    /// Obelix through its Kafka REST Proxy v2 dialect (`/kafka`); enqueue workloads only.
    ObelixKafka,
    Pgmq,
    Jetstream,
}

#[derive(Clone, Copy, PartialEq, Eq, ValueEnum)]
enum Workload {
    Singles,
    Batches,
    Dequeue,
}

impl Workload {
    fn key(self) -> &'static str {
        match self {
            Workload::Singles => "singles",
            Workload::Batches => "batches",
            Workload::Dequeue => "dequeue",
        }
    }

    fn title(self, args: &Args) -> String {
        let clients = |n: usize, what: &str| format!("{n} {what}{}", if n == 1 { "" } else { "s" });
        match self {
            Workload::Singles => format!("enqueue 1, {}", clients(args.single_clients, "client")),
            Workload::Batches => format!(
                "enqueue {} per batch, {}",
                args.batch_size,
                clients(args.batch_clients, "client")
            ),
            Workload::Dequeue => format!(
                "dequeue {} per batch, {}",
                args.batch_size,
                clients(args.dequeue_clients, "reader")
            ),
        }
    }
}

/// One system under test.
enum Peer {
    Obelix(Obelix),
    /// Topics are created through the native API, records produced through `/kafka`.
    ObelixKafka(Obelix, ObelixKafka),
    Pgmq(Pgmq),
    JetStream(JetStream),
}

impl Peer {
    fn name(&self) -> &'static str {
        match self {
            Peer::Obelix(_) => "Obelix",
            Peer::ObelixKafka(..) => "Obelix /kafka",
            Peer::Pgmq(_) => "pgmq",
            Peer::JetStream(_) => "JetStream",
        }
    }

    /// How this system does `workload`, for the table.
    fn how(&self, workload: Workload) -> &'static str {
        match (self, workload) {
            (Peer::Obelix(_), Workload::Singles) => {
                "POST .../messages {message}, a producer and a keep-alive connection per client"
            }
            (Peer::Obelix(_), Workload::Batches) => "POST .../messages {messages: [100]}",
            (Peer::Obelix(_), Workload::Dequeue) => {
                "GET .../messages?max=100&wait_ms=0; a consumer id per reader, each reads all"
            }
            (Peer::ObelixKafka(..), Workload::Singles) => {
                "POST /kafka/topics/{t} json.v2 {records: [1]}, a keep-alive connection per client"
            }
            (Peer::ObelixKafka(..), Workload::Batches) => {
                "POST /kafka/topics/{t} json.v2 {records: [100]}"
            }
            (Peer::ObelixKafka(..), Workload::Dequeue) => "not measured",
            (Peer::Pgmq(_), Workload::Singles) => "send; a pool connection per client",
            (Peer::Pgmq(_), Workload::Batches) => "send_batch of 100",
            (Peer::Pgmq(_), Workload::Dequeue) => {
                "read (qty 100, vt 30 s) then delete(msg_ids[]); readers share the queue"
            }
            (Peer::JetStream(_), Workload::Singles) => {
                "publish, await its ack; one connection for all"
            }
            (Peer::JetStream(_), Workload::Batches) => "100 publishes in flight, then their acks",
            (Peer::JetStream(_), Workload::Dequeue) => {
                "fetch 100 (no wait), ack policy all, 1 ack per batch; a durable consumer per reader, each reads all"
            }
        }
    }

    /// Whether this system runs `workload` (the `/kafka` row: enqueue workloads only).
    fn serves(&self, workload: Workload) -> bool {
        !matches!((self, workload), (Peer::ObelixKafka(..), Workload::Dequeue))
    }

    /// Whether readers share the messages (each read once in all) or each reads them all.
    fn readers_share(&self) -> bool {
        matches!(self, Peer::Pgmq(_))
    }

    /// A fresh, empty topic, queue or stream for `workload`; returns its name.
    async fn fresh_target(&self, workload: Workload, args: &Args, run_id: u64) -> Result<String> {
        match self {
            Peer::Obelix(obelix) | Peer::ObelixKafka(obelix, _) => {
                // Topics can't be deleted over the API: each run has names of its own.
                let dialect = if matches!(self, Peer::ObelixKafka(..)) {
                    "kafka_"
                } else {
                    ""
                };
                let name = format!("qbench_{dialect}{}_{run_id}", workload.key());
                obelix
                    .create_topic(&name, args.partitions)
                    .await
                    .map_err(|e| match e {
                        obelix::TopicError::NotFound => "POST /queue/topics: 404".into(),
                        obelix::TopicError::Other(e) => e,
                    })?;
                Ok(name)
            }
            Peer::Pgmq(pgmq) => {
                let name = format!("qbench_{}", workload.key());
                pgmq.fresh_queue(&name).await?;
                Ok(name)
            }
            Peer::JetStream(js) => {
                let name = format!("qbench_{}", workload.key());
                js.fresh_stream(&name).await?;
                Ok(name)
            }
        }
    }

    /// Gives the disk back (the batches workload writes millions of rows).
    async fn drop_target(&self, name: &str) {
        match self {
            Peer::Obelix(_) | Peer::ObelixKafka(..) => {}
            Peer::Pgmq(pgmq) => {
                if let Err(e) = pgmq.drop_queue(name).await {
                    eprintln!("pgmq: could not drop queue {name}: {e}");
                }
            }
            Peer::JetStream(js) => js.delete_stream(name).await,
        }
    }

    async fn writers(
        &self,
        target: &str,
        clients: usize,
        batch: usize,
        payload: &str,
    ) -> Result<Clients> {
        match self {
            Peer::Obelix(obelix) => obelix.writers(target, clients, batch, payload).await,
            Peer::ObelixKafka(_, kafka) => Ok(kafka.writers(target, clients, batch, payload)),
            Peer::Pgmq(pgmq) => pgmq.writers(target, clients, batch, payload).await,
            Peer::JetStream(js) => Ok(js.writers(target, clients, batch, payload)),
        }
    }

    async fn readers(&self, target: &str, clients: usize, batch: usize) -> Result<Clients> {
        match self {
            Peer::Obelix(obelix) => obelix.readers(target, clients, batch).await,
            Peer::ObelixKafka(..) => Err("dequeue is not measured through /kafka".into()),
            Peer::Pgmq(pgmq) => pgmq.readers(target, clients, batch).await,
            Peer::JetStream(js) => js.readers(target, clients, batch).await,
        }
    }

    async fn run(
        &self,
        workload: Workload,
        args: &Args,
        payload: &str,
        run_id: u64,
    ) -> Result<Measured> {
        let target = self.fresh_target(workload, args, run_id).await?;
        let result = self.run_on(workload, args, payload, &target).await;
        self.drop_target(&target).await;
        result
    }

    async fn run_on(
        &self,
        workload: Workload,
        args: &Args,
        payload: &str,
        target: &str,
    ) -> Result<Measured> {
        let warmup = Duration::from_secs(args.warmup_seconds);
        let run = Duration::from_secs(args.seconds);
        match workload {
            Workload::Singles => {
                let writers = self
                    .writers(target, args.single_clients, 1, payload)
                    .await?;
                drive::timed(writers, warmup, run).await
            }
            Workload::Batches => {
                let writers = self
                    .writers(target, args.batch_clients, args.batch_size, payload)
                    .await?;
                drive::timed(writers, warmup, run).await
            }
            Workload::Dequeue => {
                let writers = self
                    .writers(target, args.batch_clients, args.batch_size, payload)
                    .await?;
                drive::fill(writers, args.dequeue_messages, args.batch_size).await?;
                // fill rounds up to whole batches.
                let filled = args.dequeue_messages.div_ceil(args.batch_size) * args.batch_size;
                let readers = self
                    .readers(target, args.dequeue_clients, args.batch_size)
                    .await?;
                let (measured, total) = drive::drain(readers, DEQUEUE_WARM_STEPS).await?;
                let expected = if self.readers_share() {
                    filled
                } else {
                    filled * args.dequeue_clients
                } as u64;
                if total != expected {
                    return Err(format!(
                        "{filled} enqueued, {} readers read {total} in all, expected {expected}",
                        args.dequeue_clients
                    )
                    .into());
                }
                Ok(measured)
            }
        }
    }
}

/// A result of one system on one workload.
struct Row {
    workload: Workload,
    system: &'static str,
    how: &'static str,
    outcome: std::result::Result<Measured, String>,
}

/// What the queue is judged against: Obelix's msg/s over a peer's, on one workload.
struct Target {
    workload: Workload,
    ours: &'static str,
    peer: &'static str,
    at_least: f64,
}

const TARGETS: [Target; 6] = [
    Target {
        ours: "Obelix /kafka",
        workload: Workload::Batches,
        peer: "Obelix",
        at_least: 0.9,
    },
    Target {
        ours: "Obelix",
        workload: Workload::Batches,
        peer: "pgmq",
        at_least: 1.0,
    },
    Target {
        ours: "Obelix",
        workload: Workload::Batches,
        peer: "JetStream",
        at_least: 1.0,
    },
    Target {
        ours: "Obelix",
        workload: Workload::Singles,
        peer: "pgmq",
        at_least: 3.0,
    },
    Target {
        ours: "Obelix",
        workload: Workload::Dequeue,
        peer: "pgmq",
        at_least: 3.0,
    },
    Target {
        ours: "Obelix",
        workload: Workload::Dequeue,
        peer: "JetStream",
        at_least: 1.0,
    },
];

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let args = Args::parse();
    let payload = payload(args.payload_bytes);
    let run_id = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    let mut notes: Vec<String> = Vec::new();
    let mut peers: Vec<Peer> = Vec::new();

    if args.systems.contains(&SystemName::Obelix) {
        let probe = format!("qbench_{}_{run_id}", Workload::Singles.key());
        match Obelix::connect(&args.obelix, &probe, args.partitions).await {
            Ok(obelix) => peers.push(Peer::Obelix(obelix)),
            Err(Unavailable::NoQueueApi) => notes.push(format!(
                "Obelix skipped: {} answers 404 on POST /queue/topics (no queue API in this build).",
                args.obelix
            )),
            Err(Unavailable::NoServer(e)) => notes.push(format!(
                "Obelix skipped: no answer from {}: {e}",
                args.obelix
            )),
        }
    }
    if args.systems.contains(&SystemName::ObelixKafka) {
        let probe = format!("qbench_kafka_{}_{run_id}", Workload::Singles.key());
        let kafka = ObelixKafka::new(&args.obelix).map_err(|e| e.to_string());
        match (
            Obelix::connect(&args.obelix, &probe, args.partitions).await,
            kafka,
        ) {
            (Ok(obelix), Ok(kafka)) => peers.push(Peer::ObelixKafka(obelix, kafka)),
            (Err(_), _) => notes.push("Obelix /kafka skipped: no Obelix queue API.".into()),
            (_, Err(e)) => notes.push(format!("Obelix /kafka skipped: {e}")),
        }
    }
    let mut pg_line = String::from("pgmq not run");
    if args.systems.contains(&SystemName::Pgmq) {
        match &args.pg_url {
            None => notes.push("pgmq skipped: no --pg-url (or DATABASE_URL) given.".into()),
            Some(url) => match Pgmq::connect(url, &args.pgmq_database).await {
                Ok(pgmq) => {
                    match pgmq.describe().await {
                        Ok(d) => {
                            pg_line = format!(
                                "pgmq {} in database `{}` of the same server as Obelix; {d}",
                                d.pgmq_version, args.pgmq_database
                            )
                        }
                        Err(e) => notes.push(format!("pgmq: could not read its settings: {e}")),
                    }
                    peers.push(Peer::Pgmq(pgmq));
                }
                Err(e) => notes.push(format!("pgmq skipped: {e}")),
            },
        }
    }
    let mut nats_line = String::from("JetStream not run");
    if args.systems.contains(&SystemName::Jetstream) {
        match JetStream::connect(&args.nats).await {
            Ok(js) => {
                nats_line = format!(
                    "nats-server {} at {}, JetStream file storage",
                    js.server_version(),
                    args.nats
                );
                peers.push(Peer::JetStream(js));
            }
            Err(e) => notes.push(format!("JetStream skipped: {}: {e}", args.nats)),
        }
    }
    for note in &notes {
        eprintln!("queue_bench: {note}");
    }

    let mut rows = Vec::new();
    for &workload in &args.workloads {
        for peer in peers.iter().filter(|p| p.serves(workload)) {
            eprintln!("queue_bench: {} / {} ...", workload.key(), peer.name());
            let outcome = peer
                .run(workload, &args, &payload, run_id)
                .await
                .map_err(|e| e.to_string());
            match &outcome {
                Ok(m) => eprintln!(
                    "queue_bench: {} / {}: {} msg/s",
                    workload.key(),
                    peer.name(),
                    thousands(m.per_second())
                ),
                Err(e) => eprintln!("queue_bench: {} / {}: {e}", workload.key(), peer.name()),
            }
            rows.push(Row {
                workload,
                system: peer.name(),
                how: peer.how(workload),
                outcome,
            });
        }
    }
    print_report(&args, &rows, &notes, &pg_line, &nats_line);
}

fn print_report(args: &Args, rows: &[Row], notes: &[String], pg_line: &str, nats_line: &str) {
    println!(
        "Payload {} bytes. Enqueue runs: {} s timed after {} s of warm-up. Dequeue: {} messages \
         enqueued first (not timed), then {} warm-up batches per reader, then timed until empty. \
         Load generator: tokio, 2 worker threads, on the same cores.",
        args.payload_bytes,
        args.seconds,
        args.warmup_seconds,
        args.dequeue_messages,
        DEQUEUE_WARM_STEPS
    );
    println!("PostgreSQL: {pg_line}.");
    println!("NATS: {nats_line}.");
    println!();
    println!("| workload | system | how | messages | seconds | msg/s |");
    println!("|---|---|---|---:|---:|---:|");
    for row in rows {
        match &row.outcome {
            Ok(m) => println!(
                "| {} | {} | {} | {} | {:.1} | {} |",
                row.workload.title(args),
                row.system,
                row.how,
                thousands(m.messages as f64),
                m.elapsed.as_secs_f64(),
                thousands(m.per_second())
            ),
            Err(e) => println!(
                "| {} | {} | {} | | | error: {} |",
                row.workload.title(args),
                row.system,
                row.how,
                e.replace('|', "/")
            ),
        }
    }
    println!();
    println!("| target | msg/s | peer msg/s | ratio | met |");
    println!("|---|---:|---:|---:|---|");
    let rate = |workload: Workload, system: &str| {
        rows.iter()
            .find(|r| r.workload == workload && r.system == system)
            .and_then(|r| r.outcome.as_ref().ok())
            .map(Measured::per_second)
    };
    for target in &TARGETS {
        let label = format!(
            "{}: {} ≥ {}× {}",
            target.workload.key(),
            target.ours,
            target.at_least,
            target.peer
        );
        let ours = rate(target.workload, target.ours);
        let theirs = rate(target.workload, target.peer);
        let show = |r: Option<f64>| r.map_or_else(|| "n/a".into(), thousands);
        let (ratio, met) = match (ours, theirs) {
            (Some(o), Some(t)) => {
                let ratio = o / t;
                (
                    format!("{ratio:.2}"),
                    if ratio >= target.at_least {
                        "yes"
                    } else {
                        "**no**"
                    },
                )
            }
            _ => ("n/a".into(), "n/a"),
        };
        println!(
            "| {label} | {} | {} | {ratio} | {met} |",
            show(ours),
            show(theirs)
        );
    }
    if !notes.is_empty() {
        println!();
        for note in notes {
            println!("- {note}");
        }
    }
}

/// `len` printable ASCII characters, the same for every message (no system compresses).
fn payload(len: usize) -> String {
    const ALPHABET: &[u8] = b"abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789";
    let mut x: u32 = 2463534242;
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 17;
            x ^= x << 5;
            ALPHABET[x as usize % ALPHABET.len()] as char
        })
        .collect()
}

/// 123456.7 → "123,457".
fn thousands(value: f64) -> String {
    let digits = format!("{:.0}", value.max(0.0));
    let mut out = String::with_capacity(digits.len() + digits.len() / 3);
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i) % 3 == 0 {
            out.push(',');
        }
        out.push(c);
    }
    out
}
