//! The Kafka REST dialect's instances' actor crashes (panic, then stop): it is restarted with
//! its instances, their subscriptions and positions, and their group goes on where it was.

use reqwest::Method;
use serde_json::json;

use crate::helpers::spawn_app;
use crate::kafka::{JSON_V2, V2, kafka, poll_until, reply};
use crate::queue::{CONSUMER, PRODUCER};

#[actix_web::test]
async fn a_crash_of_the_instances_actor_loses_no_instance_nor_position() {
    let app = spawn_app().await;
    app.queue().create_topic("t", 1).await.unwrap();
    let produce = |n: usize| {
        let records: Vec<_> = (0..n).map(|i| json!({"value": i})).collect();
        kafka(
            &app,
            Method::POST,
            PRODUCER,
            "/topics/t",
            Some(JSON_V2),
            Some(json!({"records": records})),
        )
    };
    assert_eq!(produce(3).await.status(), 200);
    let create = json!({"name": "c", "format": "json", "auto.offset.reset": "earliest", "auto.commit.enable": "false"});
    kafka(
        &app,
        Method::POST,
        CONSUMER,
        "/consumers/g",
        Some(V2),
        Some(create),
    )
    .await;
    let sub = json!({"topics": ["t"]});
    kafka(
        &app,
        Method::POST,
        CONSUMER,
        "/consumers/g/instances/c/subscription",
        Some(V2),
        Some(sub),
    )
    .await;
    let base = "/kafka/consumers/g/instances/c";
    let first = poll_until(&app, base, JSON_V2, 3).await;
    assert_eq!(first.len(), 3);

    for (mode, restarts) in [("panic", 1), ("stop", 2)] {
        // 1. Crash it; it comes back with the same instances.
        let response = app
            .crash("queue-kafka-consumers", &format!("mode={mode}"))
            .await;
        assert!(response.status().is_success(), "crash {mode}");
        app.await_restart("queue-kafka-consumers", restarts).await;
        // 2. The instance reads on from its own position (nothing was committed: auto-commit
        //    is off, so a lost position would read the first records again).
        assert_eq!(produce(1).await.status(), 200);
        let next = poll_until(&app, base, JSON_V2, 1).await;
        assert_eq!(next.len(), 1, "{mode}: {next:?}");
        assert_eq!(
            next[0]["offset"],
            first.len() as i64 + restarts as i64 - 1,
            "{mode}"
        );
    }
    let (_, _, sub) = reply(
        kafka(
            &app,
            Method::GET,
            CONSUMER,
            "/consumers/g/instances/c/subscription",
            None,
            None,
        )
        .await,
    )
    .await;
    assert_eq!(sub, json!({"topics": ["t"]}));
}
