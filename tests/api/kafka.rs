//! The queue's Kafka REST Proxy v2 dialect (`/kafka`), replaying the request and response
//! examples of the v2 API reference (produce JSON and binary, create an instance, subscribe,
//! fetch, commit, seek, delete) and checking the replies field by field; then v2's errors.

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use reqwest::{Method, Response};
use serde_json::{Value, json};

use crate::helpers::{TestApp, spawn_app};
use crate::queue::{ADMIN, CONSUMER, PRODUCER};

pub const V2: &str = "application/vnd.kafka.v2+json";
pub const JSON_V2: &str = "application/vnd.kafka.json.v2+json";
pub const BINARY_V2: &str = "application/vnd.kafka.binary.v2+json";

/// A `/kafka` request with a token, a content type and a body (when given).
pub async fn kafka(
    app: &TestApp,
    method: Method,
    token: &str,
    path: &str,
    content_type: Option<&str>,
    body: Option<Value>,
) -> Response {
    let mut request = app
        .request(method, &format!("/kafka{path}"))
        .bearer_auth(token);
    if let Some(ct) = content_type {
        request = request.header("Content-Type", ct);
    }
    if let Some(body) = body {
        request = request.body(body.to_string());
    }
    request.send().await.expect("a /kafka request")
}

/// The reply's status, content type and JSON body.
pub async fn reply(response: Response) -> (u16, String, Value) {
    let status = response.status().as_u16();
    let ct = response
        .headers()
        .get("content-type")
        .map(|v| v.to_str().unwrap().to_owned())
        .unwrap_or_default();
    let text = response.text().await.unwrap();
    let body = if text.is_empty() {
        Value::Null
    } else {
        serde_json::from_str(&text).unwrap_or_else(|_| panic!("JSON body: {text}"))
    };
    (status, ct, body)
}

/// The keys of a JSON object.
pub fn keys(v: &Value) -> BTreeSet<&str> {
    v.as_object()
        .expect("an object")
        .keys()
        .map(String::as_str)
        .collect()
}

/// Asserts a v2 error: its status, `error_code`, and nothing but `error_code` and `message`.
pub async fn assert_v2_error(response: Response, status: u16, code: u64) -> String {
    let (got, ct, body) = reply(response).await;
    assert_eq!(
        (got, body["error_code"].as_u64()),
        (status, Some(code)),
        "{body}"
    );
    assert_eq!(ct, V2);
    assert_eq!(keys(&body), BTreeSet::from(["error_code", "message"]));
    body["message"].as_str().unwrap().to_owned()
}

/// Polls an instance until `n` records came (or 20 s passed).
pub async fn poll_until(app: &TestApp, base: &str, accept: &str, n: usize) -> Vec<Value> {
    let mut got = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(20);
    while got.len() < n {
        assert!(
            Instant::now() < deadline,
            "got {} of {n} records",
            got.len()
        );
        let response = app
            .request(Method::GET, &format!("{base}/records?timeout=500"))
            .bearer_auth(CONSUMER)
            .header("Accept", accept)
            .send()
            .await
            .unwrap();
        let (status, ct, body) = reply(response).await;
        assert_eq!((status, ct.as_str()), (200, accept), "{body}");
        got.extend(body.as_array().unwrap().iter().cloned());
    }
    got
}

async fn produce(app: &TestApp, path: &str, ct: &str, body: Value) -> Value {
    let (status, content_type, body) =
        reply(kafka(app, Method::POST, PRODUCER, path, Some(ct), Some(body)).await).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(content_type, V2);
    body
}

#[actix_web::test]
async fn the_reference_examples_replay_field_by_field() {
    let app = spawn_app().await;
    let queue = app.queue();
    for topic in ["test", "test1", "test2"] {
        queue.create_topic(topic, 3).await.unwrap();
    }

    // 1. Produce JSON: a keyed record, one to partition 1, one round-robin.
    let body = produce(
        &app,
        "/topics/test",
        JSON_V2,
        json!({"records": [
            {"key": "somekey", "value": {"foo": "bar"}},
            {"value": ["foo", "bar"], "partition": 1},
            {"value": 53.5}
        ]}),
    )
    .await;
    assert_eq!(
        keys(&body),
        BTreeSet::from(["offsets", "key_schema_id", "value_schema_id"])
    );
    assert_eq!(
        (&body["key_schema_id"], &body["value_schema_id"]),
        (&Value::Null, &Value::Null)
    );
    let offsets = body["offsets"].as_array().unwrap();
    assert_eq!(offsets.len(), 3);
    for o in offsets {
        assert_eq!(
            keys(o),
            BTreeSet::from(["partition", "offset", "error_code", "error"])
        );
        assert_eq!(
            (&o["error_code"], &o["error"]),
            (&Value::Null, &Value::Null)
        );
        assert!(o["offset"].as_i64().unwrap() >= 0);
    }
    let keyed = obelix::queue::routing::partition_for_key("somekey", 3) as i64;
    assert_eq!(
        offsets[0]["partition"].as_i64(),
        Some(keyed),
        "a key routes as /queue's"
    );
    assert_eq!(offsets[1]["partition"], 1);

    // 2. Produce binary (base64), to the topic and to a partition.
    let body = produce(
        &app,
        "/topics/test",
        BINARY_V2,
        json!({"records": [
            {"key": "a2V5", "value": "Y29uZmx1ZW50"},
            {"value": "a2Fma2E=", "partition": 1},
            {"value": "bG9ncw=="}
        ]}),
    )
    .await;
    assert_eq!(body["offsets"].as_array().unwrap().len(), 3);
    assert_eq!(body["offsets"][1]["partition"], 1);
    let body = produce(
        &app,
        "/topics/test/partitions/1",
        BINARY_V2,
        json!({"records": [{"value": "a2Fma2E="}, {"value": "bG9ncw=="}]}),
    )
    .await;
    let to_p1 = body["offsets"].as_array().unwrap();
    assert!(to_p1.iter().all(|o| o["partition"] == 1));
    assert_eq!(
        to_p1[1]["offset"].as_i64().unwrap(),
        to_p1[0]["offset"].as_i64().unwrap() + 1,
        "one request, dense offsets"
    );

    // 3. Topic metadata and a partition's offsets.
    let (status, _, topics) =
        reply(kafka(&app, Method::GET, CONSUMER, "/topics", None, None).await).await;
    assert_eq!((status, topics), (200, json!(["test", "test1", "test2"])));
    let (_, _, topic) =
        reply(kafka(&app, Method::GET, ADMIN, "/topics/test", None, None).await).await;
    assert_eq!(
        keys(&topic),
        BTreeSet::from(["name", "configs", "partitions"])
    );
    assert_eq!(topic["partitions"].as_array().unwrap().len(), 3);
    let p0 = &topic["partitions"][0];
    assert_eq!(
        keys(p0),
        BTreeSet::from(["partition", "leader", "replicas"])
    );
    assert_eq!(
        keys(&p0["replicas"][0]),
        BTreeSet::from(["broker", "leader", "in_sync"])
    );
    let (_, _, p1) = reply(
        kafka(
            &app,
            Method::GET,
            PRODUCER,
            "/topics/test/partitions/1",
            None,
            None,
        )
        .await,
    )
    .await;
    assert_eq!(
        (p1["partition"].as_i64(), p1["beginning_offset"].as_i64()),
        (Some(1), Some(0))
    );
    assert_eq!(
        p1["end_offset"].as_i64(),
        Some(to_p1[1]["offset"].as_i64().unwrap() + 1)
    );
    let (_, _, p1_offsets) = reply(
        kafka(
            &app,
            Method::GET,
            PRODUCER,
            "/topics/test/partitions/1/offsets",
            None,
            None,
        )
        .await,
    )
    .await;
    assert_eq!(
        p1_offsets,
        json!({"beginning_offset": 0, "end_offset": p1["end_offset"]})
    );

    // 4. Create an instance (the reference's body) and subscribe it.
    let create = json!({
        "name": "my_consumer", "format": "binary",
        "auto.offset.reset": "earliest", "auto.commit.enable": "false"
    });
    let (status, ct, created) = reply(
        kafka(
            &app,
            Method::POST,
            CONSUMER,
            "/consumers/testgroup",
            Some(V2),
            Some(create.clone()),
        )
        .await,
    )
    .await;
    assert_eq!((status, ct.as_str()), (200, V2));
    assert_eq!(keys(&created), BTreeSet::from(["instance_id", "base_uri"]));
    assert_eq!(created["instance_id"], "my_consumer");
    let base_uri = created["base_uri"].as_str().unwrap();
    assert_eq!(
        base_uri,
        format!(
            "{}/kafka/consumers/testgroup/instances/my_consumer",
            app.address
        )
    );
    let base = "/kafka/consumers/testgroup/instances/my_consumer";
    let inst = "/consumers/testgroup/instances/my_consumer";
    let subscribe = json!({"topics": ["test1", "test2"]});
    let (status, _, body) = reply(
        kafka(
            &app,
            Method::POST,
            CONSUMER,
            &format!("{inst}/subscription"),
            Some(V2),
            Some(subscribe),
        )
        .await,
    )
    .await;
    assert_eq!((status, body), (204, Value::Null));
    let (_, _, sub) = reply(
        kafka(
            &app,
            Method::GET,
            CONSUMER,
            &format!("{inst}/subscription"),
            None,
            None,
        )
        .await,
    )
    .await;
    assert_eq!(sub, json!({"topics": ["test1", "test2"]}));
    // Subscribed anew to `test`, whose records were produced above.
    let (status, _, _) = reply(
        kafka(
            &app,
            Method::POST,
            CONSUMER,
            &format!("{inst}/subscription"),
            Some(V2),
            Some(json!({"topics": ["test"]})),
        )
        .await,
    )
    .await;
    assert_eq!(status, 204);

    // 5. Fetch (binary): every record so far, each in the reference's shape.
    let records = poll_until(&app, base, BINARY_V2, 8).await;
    assert_eq!(records.len(), 8);
    for r in &records {
        assert_eq!(
            keys(r),
            BTreeSet::from(["topic", "key", "value", "partition", "offset"])
        );
        assert_eq!(r["topic"], "test");
    }
    let values: BTreeSet<&str> = records
        .iter()
        .map(|r| r["value"].as_str().unwrap())
        .collect();
    assert!(values.contains("Y29uZmx1ZW50") && values.contains("a2Fma2E="));
    // JSON records read as binary: the base64 of their JSON text.
    use base64::Engine;
    let foo_bar = base64::engine::general_purpose::STANDARD.encode(r#"{"foo":"bar"}"#);
    assert!(values.contains(foo_bar.as_str()));
    let (_, _, assigned) = reply(
        kafka(
            &app,
            Method::GET,
            CONSUMER,
            &format!("{inst}/assignments"),
            None,
            None,
        )
        .await,
    )
    .await;
    let assigned: BTreeSet<i64> = assigned["partitions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| {
            assert_eq!(keys(p), BTreeSet::from(["topic", "partition"]));
            p["partition"].as_i64().unwrap()
        })
        .collect();
    assert_eq!(
        assigned,
        BTreeSet::from([0, 1, 2]),
        "the group's only member has them all"
    );

    // 6. Commit (the reference's body shape): the group's next offset is the one after.
    let last_p1 = records
        .iter()
        .filter(|r| r["partition"] == 1)
        .map(|r| r["offset"].as_i64().unwrap())
        .max()
        .unwrap();
    let commit = json!({"offsets": [
        {"topic": "test", "partition": 1, "offset": last_p1 - 1, "metadata": ""}
    ]});
    let (status, _, _) = reply(
        kafka(
            &app,
            Method::POST,
            CONSUMER,
            &format!("{inst}/offsets"),
            Some(V2),
            Some(commit),
        )
        .await,
    )
    .await;
    assert_eq!(status, 200);
    let ask = json!({"partitions": [{"topic": "test", "partition": 1}, {"topic": "test", "partition": 2}]});
    let (status, _, committed) = reply(
        kafka(
            &app,
            Method::GET,
            CONSUMER,
            &format!("{inst}/offsets"),
            Some(V2),
            Some(ask.clone()),
        )
        .await,
    )
    .await;
    assert_eq!(status, 200, "{committed}");
    assert_eq!(
        committed["offsets"][0],
        json!({"topic": "test", "partition": 1, "offset": last_p1, "metadata": ""})
    );
    assert_eq!(
        committed["offsets"][1]["offset"], -1,
        "auto.commit is off: nothing committed"
    );
    // Without a body (as curl sends it, with the v2 content type): everything returned so far.
    let (status, _, _) = reply(
        kafka(
            &app,
            Method::POST,
            CONSUMER,
            &format!("{inst}/offsets"),
            Some(V2),
            None,
        )
        .await,
    )
    .await;
    assert_eq!(status, 200);
    let (_, _, committed) = reply(
        kafka(
            &app,
            Method::GET,
            CONSUMER,
            &format!("{inst}/offsets"),
            Some(V2),
            Some(ask),
        )
        .await,
    )
    .await;
    assert_eq!(committed["offsets"][0]["offset"], last_p1 + 1);

    // 7. Seek: to an offset, to the beginning; the next fetches read from there.
    let seek = json!({"offsets": [{"topic": "test", "partition": 1, "offset": last_p1}]});
    let (status, _, _) = reply(
        kafka(
            &app,
            Method::POST,
            CONSUMER,
            &format!("{inst}/positions"),
            Some(V2),
            Some(seek),
        )
        .await,
    )
    .await;
    assert_eq!(status, 204);
    let again = poll_until(&app, base, BINARY_V2, 1).await;
    assert_eq!(
        (
            again.len(),
            again[0]["partition"].as_i64(),
            again[0]["offset"].as_i64()
        ),
        (1, Some(1), Some(last_p1))
    );
    let beginning = json!({"partitions": [{"topic": "test", "partition": 1}]});
    let (status, _, _) = reply(
        kafka(
            &app,
            Method::POST,
            CONSUMER,
            &format!("{inst}/positions/beginning"),
            Some(V2),
            Some(beginning),
        )
        .await,
    )
    .await;
    assert_eq!(status, 204);
    let from_start = poll_until(&app, base, BINARY_V2, 1).await;
    assert_eq!(
        (
            from_start[0]["partition"].as_i64(),
            from_start[0]["offset"].as_i64()
        ),
        (Some(1), Some(0))
    );
    let end = json!({"partitions": [{"topic": "test", "partition": 1}]});
    let (status, _, _) = reply(
        kafka(
            &app,
            Method::POST,
            CONSUMER,
            &format!("{inst}/positions/end"),
            Some(V2),
            Some(end),
        )
        .await,
    )
    .await;
    assert_eq!(status, 204);
    let (status, _, nothing) = reply(
        app.request(Method::GET, &format!("{base}/records?timeout=0"))
            .bearer_auth(CONSUMER)
            .header("Accept", BINARY_V2)
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!((status, nothing), (200, json!([])));

    // 8. A format mismatch is 406 (40601); delete is 204, and then the instance is gone.
    let response = app
        .request(Method::GET, &format!("{base}/records"))
        .bearer_auth(CONSUMER)
        .header("Accept", JSON_V2)
        .send()
        .await
        .unwrap();
    assert_v2_error(response, 406, 40601).await;
    let (status, _, _) = reply(kafka(&app, Method::DELETE, CONSUMER, inst, None, None).await).await;
    assert_eq!(status, 204);
    let message = assert_v2_error(
        kafka(
            &app,
            Method::GET,
            CONSUMER,
            &format!("{inst}/subscription"),
            None,
            None,
        )
        .await,
        404,
        40403,
    )
    .await;
    assert_eq!(message, "Consumer instance not found");
    assert_v2_error(
        kafka(&app, Method::DELETE, CONSUMER, inst, None, None).await,
        404,
        40403,
    )
    .await;
}

#[actix_web::test]
async fn errors_come_in_v2_shape_with_the_proxy_status() {
    let app = spawn_app().await;
    app.queue().create_topic("logs", 2).await.unwrap();
    let records = json!({"records": [{"value": "x"}]});

    // Topic, partition, instance not found.
    let message = assert_v2_error(
        kafka(
            &app,
            Method::POST,
            PRODUCER,
            "/topics/nope",
            Some(JSON_V2),
            Some(records.clone()),
        )
        .await,
        404,
        40401,
    )
    .await;
    assert_eq!(message, "Topic not found");
    assert_v2_error(
        kafka(&app, Method::GET, CONSUMER, "/topics/nope", None, None).await,
        404,
        40401,
    )
    .await;
    for path in [
        "/topics/logs/partitions/2",
        "/topics/logs/partitions/x",
        "/topics/logs/partitions/-1",
    ] {
        assert_v2_error(
            kafka(&app, Method::GET, CONSUMER, path, None, None).await,
            404,
            40402,
        )
        .await;
    }
    assert_v2_error(
        kafka(
            &app,
            Method::POST,
            PRODUCER,
            "/topics/logs/partitions/7",
            Some(JSON_V2),
            Some(records.clone()),
        )
        .await,
        404,
        40402,
    )
    .await;
    let ghost = "/consumers/g/instances/ghost";
    assert_v2_error(
        kafka(
            &app,
            Method::GET,
            CONSUMER,
            &format!("{ghost}/assignments"),
            None,
            None,
        )
        .await,
        404,
        40403,
    )
    .await;
    assert_v2_error(
        kafka(
            &app,
            Method::POST,
            CONSUMER,
            &format!("{ghost}/positions/end"),
            Some(V2),
            Some(json!({"partitions": []})),
        )
        .await,
        404,
        40403,
    )
    .await;

    // Content types (415) and Accept (406), as the proxy answers them.
    assert_v2_error(
        kafka(
            &app,
            Method::POST,
            PRODUCER,
            "/topics/logs",
            Some("application/json"),
            Some(records.clone()),
        )
        .await,
        415,
        415,
    )
    .await;
    assert_v2_error(
        kafka(
            &app,
            Method::POST,
            PRODUCER,
            "/topics/logs",
            Some("application/vnd.kafka.avro.v2+json"),
            Some(records.clone()),
        )
        .await,
        415,
        415,
    )
    .await;
    assert_v2_error(
        kafka(
            &app,
            Method::POST,
            CONSUMER,
            "/consumers/g",
            Some("text/plain"),
            Some(json!({})),
        )
        .await,
        415,
        415,
    )
    .await;
    let response = app
        .request(Method::GET, "/kafka/topics")
        .bearer_auth(CONSUMER)
        .header("Accept", "text/html")
        .send()
        .await
        .unwrap();
    assert_v2_error(response, 406, 406).await;

    // Bodies: malformed JSON 400, wrong shapes 422, values the queue cannot store 422.
    let response = app
        .request(Method::POST, "/kafka/topics/logs")
        .bearer_auth(PRODUCER)
        .header("Content-Type", JSON_V2)
        .body("{\"records\": [")
        .send()
        .await
        .unwrap();
    assert_v2_error(response, 400, 400).await;
    for bad in [
        json!({"records": "x"}),
        json!({"records": []}),
        json!({"records": [{"value": "x", "colour": 1}]}),
    ] {
        assert_v2_error(
            kafka(
                &app,
                Method::POST,
                PRODUCER,
                "/topics/logs",
                Some(JSON_V2),
                Some(bad),
            )
            .await,
            422,
            422,
        )
        .await;
    }
    for bad in [json!("not base64!"), json!("/w=="), json!(null), json!(5)] {
        let body = json!({"records": [{"value": bad}]});
        let message = assert_v2_error(
            kafka(
                &app,
                Method::POST,
                PRODUCER,
                "/topics/logs",
                Some(BINARY_V2),
                Some(body),
            )
            .await,
            422,
            422,
        )
        .await;
        assert!(message.contains("records[0].value"), "{message}");
    }

    // A NUL byte: PostgreSQL text cannot hold it.
    assert_v2_error(
        kafka(
            &app,
            Method::POST,
            PRODUCER,
            "/topics/logs",
            Some(BINARY_V2),
            Some(json!({"records": [{"value": "AA=="}]})),
        )
        .await,
        422,
        422,
    )
    .await;

    // Consumer instances: bad configuration 42204, a name taken 40902, no subscription 40903.
    for config in [
        json!({"format": "avro"}),
        json!({"auto.offset.reset": "sometimes"}),
        json!({"auto.commit.enable": "maybe"}),
        json!({"name": "has space"}),
    ] {
        assert_v2_error(
            kafka(
                &app,
                Method::POST,
                CONSUMER,
                "/consumers/g",
                Some(V2),
                Some(config),
            )
            .await,
            422,
            42204,
        )
        .await;
    }
    let new = json!({"name": "c1", "format": "json"});
    let (status, _, _) = reply(
        kafka(
            &app,
            Method::POST,
            CONSUMER,
            "/consumers/g",
            Some(V2),
            Some(new.clone()),
        )
        .await,
    )
    .await;
    assert_eq!(status, 200);
    assert_v2_error(
        kafka(
            &app,
            Method::POST,
            CONSUMER,
            "/consumers/g",
            Some(V2),
            Some(new),
        )
        .await,
        409,
        40902,
    )
    .await;
    let response = app
        .request(Method::GET, "/kafka/consumers/g/instances/c1/records")
        .bearer_auth(CONSUMER)
        .header("Accept", JSON_V2)
        .send()
        .await
        .unwrap();
    assert_v2_error(response, 409, 40903).await;
    assert_v2_error(
        kafka(
            &app,
            Method::POST,
            CONSUMER,
            "/consumers/g/instances/c1/subscription",
            Some(V2),
            Some(json!({"topics": ["nope"]})),
        )
        .await,
        404,
        40401,
    )
    .await;

    // Tokens: each role its own (401, 40101), as Bearer or as the password of Basic.
    assert_v2_error(
        kafka(
            &app,
            Method::POST,
            CONSUMER,
            "/topics/logs",
            Some(JSON_V2),
            Some(records.clone()),
        )
        .await,
        401,
        40101,
    )
    .await;
    assert_v2_error(
        kafka(
            &app,
            Method::POST,
            PRODUCER,
            "/consumers/g",
            Some(V2),
            Some(json!({})),
        )
        .await,
        401,
        40101,
    )
    .await;
    assert_v2_error(
        app.request(Method::GET, "/kafka/topics")
            .send()
            .await
            .unwrap(),
        401,
        40101,
    )
    .await;
    let response = app
        .request(Method::POST, "/kafka/topics/logs")
        .basic_auth("anyone", Some(PRODUCER))
        .header("Content-Type", JSON_V2)
        .body(records.to_string())
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let response = app
        .request(Method::GET, "/kafka/topics")
        .basic_auth("anyone", Some("wrong"))
        .send()
        .await
        .unwrap();
    assert_v2_error(response, 401, 40101).await;

    // Paths and methods /kafka does not serve.
    assert_v2_error(
        kafka(&app, Method::GET, CONSUMER, "/brokers", None, None).await,
        404,
        404,
    )
    .await;
    let response = kafka(&app, Method::DELETE, ADMIN, "/topics/logs", None, None).await;
    assert_eq!(
        response
            .headers()
            .get("allow")
            .map(|v| v.to_str().unwrap().to_owned()),
        Some("GET, HEAD, POST".to_owned()),
        "a 405 names the route's methods"
    );
    assert_v2_error(response, 405, 405).await;
}
