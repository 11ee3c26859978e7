//! The sequenced write log with group commit, on its own: a toy service (named counters) whose
//! writes go through a `WriteLog` on a fresh database, under the real supervisor.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use actix::prelude::*;
use futures_util::future::{BoxFuture, join_all};
use obelix::actors::lifecycle::{Crash, CrashMode};
use obelix::actors::supervisor::{ActorCell, ShutdownSignal, start_supervised};
use obelix::actors::write_log::{
    DescribeLog, LogTable, Sequenced, SequencedWrite, Submit, Subscribe, WriteError, WriteLog,
    WriteLogLimits,
};
use obelix::settings::SupervisionSettings;
use serde::{Deserialize, Serialize};
use sqlx::{PgConnection, PgPool};

use crate::helpers::fresh_database;

const TABLE: LogTable = LogTable { name: "toy_log" };

/// Adds `by` to counter `name`; refused for an unknown counter. A negative total breaks the
/// table's CHECK: an SQL error, the poison of its group.
#[derive(Debug, Clone)]
struct Add {
    name: String,
    by: i64,
    key: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
struct Counted {
    name: String,
    value: i64,
    version: i64,
}

#[derive(Debug, Clone, PartialEq, Eq)]
struct UnknownCounter(String);

impl SequencedWrite for Add {
    type Applied = Counted;
    type Rejected = UnknownCounter;

    fn apply<'c>(
        &'c self,
        tx: &'c mut PgConnection,
    ) -> BoxFuture<'c, Result<Result<Counted, UnknownCounter>, sqlx::Error>> {
        Box::pin(async move {
            let row: Option<(i64, i64)> = sqlx::query_as(
                "UPDATE toy_counters SET value = value + $2, version = version + 1 \
                 WHERE name = $1 RETURNING value, version",
            )
            .bind(&self.name)
            .bind(self.by)
            .fetch_optional(&mut *tx)
            .await?;
            Ok(match row {
                Some((value, version)) => Ok(Counted {
                    name: self.name.clone(),
                    value,
                    version,
                }),
                None => Err(UnknownCounter(self.name.clone())),
            })
        })
    }

    fn describe(applied: &Counted) -> (&'static str, String) {
        ("add", applied.name.clone())
    }

    fn entered_via(&self) -> &str {
        "toy"
    }

    fn idempotency_key(&self) -> Option<&str> {
        self.key.as_deref()
    }

    fn fingerprint(&self) -> String {
        format!("{}:{}", self.name, self.by)
    }
}

type Log = WriteLog<Add>;

struct Toy {
    pool: PgPool,
    log: Addr<Log>,
    cell: Arc<ActorCell>,
}

async fn toy(max_group: usize) -> Toy {
    let url = fresh_database().await;
    let pool = PgPool::connect(&url).await.expect("connect");
    sqlx::migrate!().run(&pool).await.expect("migrations");
    sqlx::raw_sql(
        "CREATE TABLE toy_counters (name text PRIMARY KEY, value bigint NOT NULL CHECK (value >= 0), version bigint NOT NULL DEFAULT 0);
         INSERT INTO toy_counters (name, value) VALUES ('a', 0), ('b', 0);
         CREATE TABLE toy_log (seq bigint PRIMARY KEY, kind text NOT NULL, subject text NOT NULL,
             entered_via text NOT NULL, detail jsonb NOT NULL, idempotency_key text UNIQUE,
             fingerprint text, committed_at timestamptz NOT NULL DEFAULT now());",
    )
    .execute(&pool)
    .await
    .expect("toy tables");
    let log = start_log(&pool, max_group);
    Toy {
        pool,
        cell: log.1,
        log: log.0,
    }
}

fn start_log(pool: &PgPool, max_group: usize) -> (Addr<Log>, Arc<ActorCell>) {
    let cell = ActorCell::new("toy-write-log");
    let supervision = SupervisionSettings {
        max_restarts: 100,
        window_ms: 1000,
        max_backoff_ms: 10,
    };
    let (pool, actor_cell) = (pool.clone(), cell.clone());
    let addr = start_supervised(
        cell.clone(),
        &supervision,
        ShutdownSignal::default(),
        move |_| {
            WriteLog::new(
                actor_cell,
                pool,
                TABLE,
                WriteLogLimits {
                    max_group,
                    max_pending: 10_000,
                    max_subscribers: 8,
                },
            )
        },
    );
    (addr, cell)
}

fn add(name: &str, by: i64) -> Add {
    Add {
        name: name.into(),
        by,
        key: None,
    }
}

type Answer = Result<Sequenced<Counted>, WriteError<UnknownCounter>>;

async fn submit(log: &Addr<Log>, write: Add) -> Answer {
    log.send(Submit(write))
        .timeout(Duration::from_secs(10))
        .await
        .unwrap_or(Err(WriteError::Storage))
}

/// The log as psql shows it: (seq, subject, detail's value), in number order.
async fn logged(pool: &PgPool) -> Vec<(i64, String, i64)> {
    sqlx::query_as("SELECT seq, subject, (detail->>'value')::bigint FROM toy_log ORDER BY seq")
        .fetch_all(pool)
        .await
        .expect("read the log")
}

fn assert_gap_free(entries: &[(i64, String, i64)]) {
    for (i, (seq, _, _)) in entries.iter().enumerate() {
        assert_eq!(
            *seq,
            i as i64 + 1,
            "numbers are 1..n without gaps: {entries:?}"
        );
    }
}

#[actix_web::test]
async fn concurrent_writes_share_commits_and_get_gap_free_numbers_in_commit_order() {
    let t = toy(64).await;
    // 1. 200 writers at once, over two counters.
    let answers =
        join_all((0..200).map(|i| submit(&t.log, add(if i % 2 == 0 { "a" } else { "b" }, 1))))
            .await;
    let mut seqs: Vec<u64> = answers
        .iter()
        .map(|a| a.as_ref().expect("applied").seq)
        .collect();
    seqs.sort_unstable();
    assert_eq!(seqs, (1..=200).collect::<Vec<_>>());
    // 2. The log holds them in number order, and each counter's versions rise by one per write
    //    in that order.
    let entries = logged(&t.pool).await;
    assert_gap_free(&entries);
    for name in ["a", "b"] {
        let values: Vec<i64> = entries
            .iter()
            .filter(|e| e.1 == name)
            .map(|e| e.2)
            .collect();
        assert_eq!(
            values,
            (1..=100).collect::<Vec<_>>(),
            "{name}'s values follow the order"
        );
    }
    // 3. Fewer commits than writes: groups formed.
    let stats = t.log.send(DescribeLog).await.unwrap();
    assert_eq!(stats.last_seq, Some(200));
    assert!(stats.largest_group > 1, "writes were grouped: {stats:?}");
    assert!(stats.groups < 200, "fewer commits than writes: {stats:?}");
    let head: i64 =
        sqlx::query_scalar("SELECT last_seq FROM write_log_heads WHERE log = 'toy_log'")
            .fetch_one(&t.pool)
            .await
            .unwrap();
    assert_eq!(head, 200);
}

#[actix_web::test]
async fn a_refused_write_and_a_poisoned_write_fail_alone_and_take_no_number() {
    let t = toy(64).await;
    // 1. Good writes, refused ones (unknown counter) and poison (a negative total breaks a CHECK)
    //    interleaved, all at once so that they share groups.
    let writes: Vec<Add> = (0..60)
        .map(|i| match i % 6 {
            1 => add("nope", 1),
            4 => add("b", -1_000),
            _ => add("a", 1),
        })
        .collect();
    let answers = join_all(writes.iter().cloned().map(|w| submit(&t.log, w))).await;
    // 2. Each fails alone, with its own reason.
    for (write, answer) in writes.iter().zip(&answers) {
        match (write.name.as_str(), answer) {
            ("a", Ok(_)) => {}
            ("nope", Err(WriteError::Rejected(UnknownCounter(name)))) => assert_eq!(name, "nope"),
            ("b", Err(WriteError::Storage)) => {}
            other => panic!("unexpected answer {other:?}"),
        }
    }
    // 3. The 40 good ones have the numbers 1..40, in commit order, and nothing else is logged.
    let entries = logged(&t.pool).await;
    assert_eq!(entries.len(), 40);
    assert_gap_free(&entries);
    let value: i64 = sqlx::query_scalar("SELECT value FROM toy_counters WHERE name = 'a'")
        .fetch_one(&t.pool)
        .await
        .unwrap();
    assert_eq!(value, 40);
}

#[actix_web::test]
async fn a_key_counts_once_even_when_its_retries_share_a_group() {
    let t = toy(64).await;
    let keyed = |key: &str, by: i64| Add {
        name: "a".into(),
        by,
        key: Some(key.into()),
    };
    // 1. Ten copies of one keyed write at once (one group or a few), with other writes between.
    let mut writes = Vec::new();
    for _ in 0..10 {
        writes.push(keyed("k1", 5));
        writes.push(add("b", 1));
    }
    let answers = join_all(writes.into_iter().map(|w| submit(&t.log, w))).await;
    let k1: Vec<&Sequenced<Counted>> = answers
        .iter()
        .step_by(2)
        .map(|a| a.as_ref().unwrap())
        .collect();
    // 2. Applied once: every copy has the first's number and result.
    assert!(
        k1.iter()
            .all(|a| a.seq == k1[0].seq && a.applied == k1[0].applied)
    );
    assert_eq!(k1.iter().filter(|a| !a.replayed).count(), 1);
    assert_eq!(k1[0].applied.value, 5);
    // 3. A later retry is answered from the log; the same key for another write is refused.
    let later = submit(&t.log, keyed("k1", 5)).await.unwrap();
    assert_eq!((later.seq, later.replayed), (k1[0].seq, true));
    assert_eq!(
        submit(&t.log, keyed("k1", 6)).await,
        Err(WriteError::IdempotencyConflict("k1".into()))
    );
    let entries = logged(&t.pool).await;
    assert_eq!(entries.len(), 11, "one entry for k1, ten for b");
    assert_gap_free(&entries);
}

/// Records what it is told, and says whether it has seen a number.
struct Subscriber(Arc<Mutex<Vec<u64>>>);

impl Actor for Subscriber {
    type Context = Context<Self>;
}

impl Handler<Sequenced<Counted>> for Subscriber {
    type Result = ();
    fn handle(&mut self, msg: Sequenced<Counted>, _: &mut Self::Context) {
        self.0.lock().unwrap().push(msg.seq);
    }
}

#[derive(Message)]
#[rtype(result = "bool")]
struct HaveYouSeen(u64);

impl Handler<HaveYouSeen> for Subscriber {
    type Result = bool;
    fn handle(&mut self, msg: HaveYouSeen, _: &mut Self::Context) -> bool {
        self.0.lock().unwrap().contains(&msg.0)
    }
}

#[actix_web::test]
async fn subscribers_hear_every_write_in_number_order_before_its_writer_is_answered() {
    let t = toy(64).await;
    let seen = Arc::new(Mutex::new(Vec::new()));
    let subscriber = Subscriber(seen.clone()).start();
    t.log
        .send(Subscribe(subscriber.clone().recipient()))
        .await
        .unwrap();
    let answers = join_all((0..100).map(|_| {
        let (log, subscriber) = (t.log.clone(), subscriber.clone());
        async move {
            let seq = submit(&log, add("a", 1)).await.expect("applied").seq;
            // Sent after the answer, so handled after whatever was queued before it.
            subscriber.send(HaveYouSeen(seq)).await.unwrap()
        }
    }))
    .await;
    assert!(
        answers.iter().all(|&seen_first| seen_first),
        "told before answered"
    );
    assert_eq!(
        *seen.lock().unwrap(),
        (1..=100).collect::<Vec<_>>(),
        "in number order"
    );
}

#[actix_web::test]
async fn a_crash_under_load_loses_no_acknowledged_write_and_numbering_goes_on() {
    let t = toy(16).await;
    // 1. 40 writers, each writing 10 times in a row, while the log panics twice.
    let writers = (0..40).map(|w| {
        let log = t.log.clone();
        async move {
            let mut acked = Vec::new();
            for i in 0..10 {
                let write = Add {
                    name: "a".into(),
                    by: 1,
                    key: Some(format!("w{w}-{i}")),
                };
                if let Ok(answer) = submit(&log, write).await {
                    acked.push(answer.seq);
                }
            }
            acked
        }
    });
    let crasher = async {
        for _ in 0..2 {
            tokio::time::sleep(Duration::from_millis(30)).await;
            t.log.do_send(Crash {
                mode: CrashMode::Panic,
                stay_down: Duration::ZERO,
            });
        }
    };
    let (acked, ()) = tokio::join!(join_all(writers), crasher);
    assert!(t.cell.restarts() >= 1, "the log was restarted");
    // 2. Every acknowledged number is in the log, the log is gap-free, and writing goes on.
    let entries = logged(&t.pool).await;
    assert_gap_free(&entries);
    let logged_seqs: Vec<u64> = entries.iter().map(|e| e.0 as u64).collect();
    for seq in acked.iter().flatten() {
        assert!(
            logged_seqs.contains(seq),
            "acknowledged #{seq} is in the log"
        );
    }
    let next = submit(&t.log, add("b", 1)).await.expect("writes go on").seq;
    assert_eq!(next, entries.len() as u64 + 1);
}

#[actix_web::test]
async fn a_second_writer_of_the_same_log_cannot_fork_its_order() {
    let t = toy(8).await;
    // 1. A second log actor on the same table, as a second process on the same data would be.
    let (second, _) = start_log(&t.pool, 8);
    let answers = join_all((0..100).map(|i| {
        let log = if i % 2 == 0 {
            t.log.clone()
        } else {
            second.clone()
        };
        async move { submit(&log, add("a", 1)).await }
    }))
    .await;
    // 2. Whatever each got, the numbers acknowledged are unique and the log is gap-free.
    let mut acked: Vec<u64> = answers
        .iter()
        .filter_map(|a| a.as_ref().ok())
        .map(|a| a.seq)
        .collect();
    let count = acked.len();
    acked.sort_unstable();
    acked.dedup();
    assert_eq!(acked.len(), count, "no number given twice");
    let entries = logged(&t.pool).await;
    assert_gap_free(&entries);
    assert_eq!(entries.len(), count);
}

#[actix_web::test]
async fn a_subscriber_started_again_replaces_its_dead_entry() {
    let t = toy(8).await;
    let live = Subscriber(Arc::default()).start();
    t.log
        .send(Subscribe(live.clone().recipient()))
        .await
        .unwrap();
    // 1. A subscriber started, stopped and started again, a hundred times.
    for _ in 0..100 {
        let short = Subscriber(Arc::default()).start();
        t.log
            .send(Subscribe(short.clone().recipient()))
            .await
            .unwrap();
        short.send(Stop).await.ok();
    }
    // 2. The list holds the live ones, not every one ever seen.
    t.log
        .send(Subscribe(live.clone().recipient()))
        .await
        .unwrap();
    let stats = t.log.send(DescribeLog).await.unwrap();
    assert!(
        stats.subscribers <= 2,
        "dead subscribers are dropped: {stats:?}"
    );
    submit(&t.log, add("a", 1)).await.expect("applied");
    assert!(
        live.send(HaveYouSeen(1)).await.unwrap(),
        "the live one still hears"
    );
}

#[derive(Message)]
#[rtype(result = "()")]
struct Stop;

impl Handler<Stop> for Subscriber {
    type Result = ();
    fn handle(&mut self, _: Stop, ctx: &mut Self::Context) {
        ctx.stop();
    }
}
