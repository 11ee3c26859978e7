//! The fuzz cases: a table of every route, and generators of paths, query strings, headers and
//! bodies. Half the cases are a valid request with one thing broken (so that they reach the
//! checks behind the first one); the other half are broken everywhere.

use rand::rngs::StdRng;
use rand::seq::IndexedRandom;
use rand::{Rng, SeedableRng};
use reqwest::Method;
use reqwest::header::{HeaderName, HeaderValue};
use serde_json::{Value, json};

use crate::helpers::{ADMIN_TOKEN, REPORTER_TOKEN};

#[derive(Clone, Copy, PartialEq, Eq)]
pub enum Auth {
    Anyone,
    Reporter,
    Admin,
    /// The queue's topic administration, producers and consumers (the shipped tokens).
    QueueAdmin,
    Producer,
    Consumer,
    /// The bookstore's manager.
    Manager,
}

#[derive(Clone, Copy, PartialEq, Eq)]
pub enum Body {
    None,
    Score,
    Medal,
    NewFrontend,
    NewTopic,
    Registration,
    Enqueue,
    Commit,
    Restock,
    Cost,
    Reservation,
    NewRoomServer,
}

use Auth::{Admin, Anyone, Consumer, Manager, Producer, QueueAdmin, Reporter};

/// The bookstore manager's token in the fuzzed app.
pub const MANAGER_TOKEN: &str = "fuzz-manager-token";

/// Every registered route: method, path, who may call it, its body, its query keys. In paths,
/// `{fuzz}` is never a real name (a crash or a kill would take what other cases need), and
/// `{leaving_…}` are ids made for the routes that delete them.
#[rustfmt::skip]
pub const ROUTES: &[(&str, &str, Auth, Body, &[&str])] = &[
    ("GET", "/healthz", Anyone, Body::None, &[]),
    ("GET", "/readyz", Anyone, Body::None, &[]),
    ("GET", "/olympics/games", Anyone, Body::None, &[]),
    ("GET", "/olympics/games/{game}/score", Anyone, Body::None, &[]),
    ("PUT", "/olympics/games/{game}/score", Reporter, Body::Score, &[]),
    ("GET", "/olympics/teams", Anyone, Body::None, &[]),
    ("GET", "/olympics/teams/{team}/medals", Anyone, Body::None, &[]),
    ("POST", "/olympics/teams/{team}/medals", Reporter, Body::Medal, &[]),
    ("POST", "/olympics/tablets", Anyone, Body::None, &[]),
    ("DELETE", "/olympics/tablets/{leaving_tablet}", Anyone, Body::None, &[]),
    ("GET", "/olympics/tablets/{tablet}/events", Anyone, Body::None, &["games", "teams", "last_event_id"]),
    ("GET", "/olympics/raffle/winners", Anyone, Body::None, &["tablet"]),
    ("GET", "/cluster", Anyone, Body::None, &[]),
    ("GET", "/cluster/members/{member}/updates", Anyone, Body::None, &[]),
    ("POST", "/admin/frontends", Admin, Body::NewFrontend, &[]),
    ("DELETE", "/admin/frontends/{fuzz}", Admin, Body::None, &[]),
    ("GET", "/admin/actors", Admin, Body::None, &[]),
    ("POST", "/admin/actors/{fuzz}/crash", Admin, Body::None, &["mode", "stay_down_ms"]),
    ("POST", "/queue/topics", QueueAdmin, Body::NewTopic, &[]),
    ("GET", "/queue/topics", Consumer, Body::None, &[]),
    ("POST", "/queue/producers", Producer, Body::Registration, &[]),
    ("POST", "/queue/producers/{producer}/messages", Producer, Body::Enqueue, &[]),
    ("POST", "/queue/consumers", Consumer, Body::Registration, &[]),
    ("DELETE", "/queue/consumers/{leaving_consumer}", Consumer, Body::None, &[]),
    ("GET", "/queue/consumers/{consumer}/messages", Consumer, Body::None, &["topic", "max", "wait_ms", "commit"]),
    ("GET", "/queue/consumers/{consumer}/size", Consumer, Body::None, &["topic"]),
    ("POST", "/queue/consumers/{consumer}/offsets", Consumer, Body::Commit, &[]),
    ("GET", "/bookstore/books", Anyone, Body::None, &["topic"]),
    ("GET", "/bookstore/books/{book}", Anyone, Body::None, &[]),
    ("PATCH", "/bookstore/books/{book}", Manager, Body::Cost, &[]),
    ("POST", "/bookstore/books/{book}/buy", Anyone, Body::None, &[]),
    ("POST", "/bookstore/books/{book}/restock", Manager, Body::Restock, &[]),
    ("GET", "/bookstore/orders/{order}", Anyone, Body::None, &[]),
    ("GET", "/bookstore/replicas", Anyone, Body::None, &[]),
    ("GET", "/rooms/rooms", Anyone, Body::None, &[]),
    ("GET", "/rooms/timeslots", Anyone, Body::None, &[]),
    ("GET", "/rooms/days", Anyone, Body::None, &[]),
    ("GET", "/rooms/rooms/{room}/reservations", Anyone, Body::None, &[]),
    ("POST", "/rooms/rooms/{room}/reservations", Anyone, Body::Reservation, &[]),
    ("DELETE", "/rooms/reservations/{leaving_reservation}", Anyone, Body::None, &[]),
    ("GET", "/rooms/servers", Anyone, Body::None, &[]),
    ("POST", "/admin/rooms/servers", Admin, Body::NewRoomServer, &[]),
    ("DELETE", "/admin/rooms/servers/{fuzz}", Admin, Body::None, &[]),
];

/// Real names and ids made at set-up, so that cases get past the first check.
pub struct Targets {
    pub games: Vec<String>,
    pub teams: Vec<String>,
    pub tablet: String,
    pub leaving_tablets: Vec<String>,
    pub producer: String,
    pub consumer: String,
    pub leaving_consumers: Vec<String>,
    pub topic: String,
    /// Book ids of the catalog, an order made at set-up.
    pub books: Vec<String>,
    pub order: String,
    /// The rooms, slots and days of the catalogue, and reservations made for the cancels.
    pub rooms: Vec<String>,
    pub timeslots: Vec<String>,
    pub days: Vec<String>,
    pub leaving_reservations: Vec<String>,
}

/// Where a case is broken.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Site {
    Path,
    Query,
    Headers,
    Body,
    Method,
}

/// A valid request broken in one site, or one broken everywhere.
struct Mutation {
    one_site: Option<Site>,
}

impl Mutation {
    /// Should this element of `site` be fuzzed? `odds` applies to cases broken everywhere.
    fn breaks(&self, rng: &mut StdRng, site: Site, odds: f64) -> bool {
        match self.one_site {
            Some(broken) => broken == site && rng.random_bool(0.5),
            None => rng.random_bool(odds),
        }
    }
}

/// One fuzzed request, made before any is sent, so that the set is the same on every run.
pub struct Case {
    /// `METHOD /path/{template}` as in [`ROUTES`].
    pub route: String,
    pub method: Method,
    pub path: String,
    pub headers: Vec<(HeaderName, HeaderValue)>,
    pub body: Option<Vec<u8>>,
}

impl Case {
    /// Does this case's request contain `marker` (in its path, query or body)?
    pub fn contains(&self, marker: &str) -> bool {
        self.path.contains(marker)
            || self
                .body
                .as_ref()
                .is_some_and(|b| String::from_utf8_lossy(b).contains(marker))
    }
}

/// `per_route` cases for every route, from `seed`.
pub fn cases(seed: u64, per_route: usize, targets: &Targets) -> Vec<Case> {
    let mut rng = StdRng::seed_from_u64(seed);
    let mut cases = Vec::new();
    for route in ROUTES {
        for _ in 0..per_route {
            cases.push(case(&mut rng, route, targets));
        }
    }
    cases
}

/// Fuzzed text. None of it is a real actor name or front-end 1 to 3, and no word of it is one
/// the checks look for in error bodies (an echo of the input must not count as a leak).
fn text(rng: &mut StdRng) -> String {
    const POOL: &[&str] = &[
        "",
        " ",
        "%00",
        "a%00b",
        "%FF%FE",
        "%C0%AF",
        "%E2%82",
        "..",
        "%2e%2e",
        "%2F",
        "%",
        "%zz",
        "\u{1F600}",
        "\u{00DF}",
        "-1",
        "0",
        "-9223372036854775809",
        "18446744073709551616",
        "99999999999999999999999999999",
        "1e309",
        "NaN",
        "null",
        "true",
        "[]",
        "{}",
        "'; DROP TABLE games;--",
        "\" OR 1=1 --",
        "\\",
        "<script>",
        "a,b,,c",
    ];
    match rng.random_range(0..10) {
        0 => "x".repeat(rng.random_range(200..6_000)),
        1 | 2 => (0..rng.random_range(1..12))
            .map(|_| *b"akz3-_.".choose(rng).unwrap() as char)
            .collect(),
        _ => POOL.choose(rng).unwrap().to_string(),
    }
}

/// A JSON value of any kind, sometimes nested.
fn any_json(rng: &mut StdRng, depth: u32) -> Value {
    match rng.random_range(0..12) {
        0 => json!(null),
        1 => json!(rng.random::<bool>()),
        2 => json!(rng.random::<i64>()),
        3 => json!(u64::MAX),
        4 => json!(-1),
        5 => json!(1.5),
        6 | 7 => json!(text(rng)),
        8 => json!("nul\u{0}inside"),
        9 if depth < 3 => json!([any_json(rng, depth + 1), any_json(rng, depth + 1)]),
        10 if depth < 3 => json!({ text(rng): any_json(rng, depth + 1) }),
        _ => json!(0),
    }
}

/// A body for `kind`: a well-formed object (fields fuzzed where the mutation says), or bytes of
/// any sort.
fn body(rng: &mut StdRng, m: &Mutation, kind: Body, t: &Targets) -> Option<Vec<u8>> {
    const RAW: &[&[u8]] = &[
        b"",
        b"{",
        b"not json",
        b"\xff\xfe{\"a\":1}",
        b"{\"medal\":\"gold\",\"medal\":\"silver\"}",
        b"{\"topic\":\"t\\u0000\"}",
        b"{\"topic\":\"t\x00\"}",
        b"[1,2,3]",
        b"{\"scores\":{\"gauls\":1e400}}",
        b"{\"a\":\"\\ud800\"}",
        b"null",
    ];
    if m.breaks(rng, Site::Body, 0.3) {
        return Some(match rng.random_range(0..3) {
            0 => RAW.choose(rng).unwrap().to_vec(),
            1 => {
                let depth = rng.random_range(100..3_000);
                format!("{}{}", "[".repeat(depth), "]".repeat(depth)).into_bytes()
            }
            _ => serde_json::to_vec(&any_json(rng, 0)).unwrap(),
        });
    }
    let field = |rng: &mut StdRng, good: Value| {
        if m.breaks(rng, Site::Body, 0.4) {
            any_json(rng, 0)
        } else {
            good
        }
    };
    let team = t.teams.choose(rng).unwrap().clone();
    let mut value = match kind {
        Body::None => {
            return m
                .breaks(rng, Site::Body, 0.3)
                .then(|| b"{\"x\":1}".to_vec());
        }
        Body::Score => {
            let team = match field(rng, json!(team)) {
                Value::String(team) => team,
                _ => "gauls".to_owned(),
            };
            let points = json!(rng.random_range(0..50));
            json!({ "scores": { team: field(rng, points) } })
        }
        Body::Medal => {
            let medal = json!(*["gold", "silver", "bronze"].choose(rng).unwrap());
            json!({ "medal": field(rng, medal) })
        }
        Body::NewFrontend => {
            let (id, skew) = (
                rng.random_range(1_000u64..u64::MAX),
                rng.random_range(-900..900),
            );
            json!({ "id": field(rng, json!(id)), "clock_skew_ms": field(rng, json!(skew)) })
        }
        Body::NewTopic => {
            let (name, partitions) = (
                format!("fz{}", rng.random_range(0..1_000)),
                rng.random_range(1..4),
            );
            json!({ "name": field(rng, json!(name)), "partitions": field(rng, json!(partitions)) })
        }
        Body::Registration => {
            let partition = rng.random_range(0..2);
            json!({ "topic": field(rng, json!(t.topic)), "partition": field(rng, json!(partition)) })
        }
        Body::Enqueue => {
            let message = match rng.random_range(0..6) {
                0 if m.breaks(rng, Site::Body, 1.0) => json!("nul\u{0}in a message"),
                1 => json!("m".repeat(rng.random_range(0..40_000))),
                _ => json!("a log line"),
            };
            json!({ "topic": field(rng, json!(t.topic)), "message": field(rng, message) })
        }
        Body::Commit => {
            let offset = rng.random_range(0i64..3);
            json!({ "topic": field(rng, json!(t.topic)), "partition": field(rng, json!(0)), "offset": field(rng, json!(offset)) })
        }
        Body::Restock => {
            let quantity = rng.random_range(1..100);
            json!({ "quantity": field(rng, json!(quantity)) })
        }
        Body::Cost => {
            let cents = rng.random_range(1..100_000);
            json!({ "cost": field(rng, json!(f64::from(cents) / 100.0)) })
        }
        Body::Reservation => {
            let (slot, day) = (
                t.timeslots.choose(rng).unwrap(),
                t.days.choose(rng).unwrap(),
            );
            json!({ "timeslot": field(rng, json!(slot)), "day": field(rng, json!(day)) })
        }
        Body::NewRoomServer => {
            let id = rng.random_range(1_000u64..u64::MAX);
            json!({ "id": field(rng, json!(id)) })
        }
    };
    if m.breaks(rng, Site::Body, 0.1) {
        value[text(rng)] = any_json(rng, 0); // an unknown field
    }
    Some(serde_json::to_vec(&value).unwrap())
}

fn case(rng: &mut StdRng, route: &(&str, &str, Auth, Body, &[&str]), t: &Targets) -> Case {
    let &(method, template, auth, kind, keys) = route;
    let sites = [
        Site::Path,
        Site::Query,
        Site::Headers,
        Site::Body,
        Site::Method,
    ];
    let m = Mutation {
        one_site: rng.random_bool(0.5).then(|| *sites.choose(rng).unwrap()),
    };

    // The path, its placeholders filled.
    let mut path = template.to_owned();
    let tablet = t.leaving_tablets.choose(rng).unwrap();
    let consumer = t.leaving_consumers.choose(rng).unwrap();
    let (game, team) = (t.games.choose(rng).unwrap(), t.teams.choose(rng).unwrap());
    let (book, room) = (t.books.choose(rng).unwrap(), t.rooms.choose(rng).unwrap());
    let reservation = t.leaving_reservations.choose(rng).unwrap();
    for (placeholder, good) in [
        ("{game}", game.as_str()),
        ("{team}", team.as_str()),
        ("{tablet}", t.tablet.as_str()),
        ("{leaving_tablet}", tablet.as_str()),
        ("{producer}", t.producer.as_str()),
        ("{consumer}", t.consumer.as_str()),
        ("{leaving_consumer}", consumer.as_str()),
        ("{member}", "1"),
        ("{book}", book.as_str()),
        ("{order}", t.order.as_str()),
        ("{room}", room.as_str()),
        ("{leaving_reservation}", reservation.as_str()),
    ] {
        if path.contains(placeholder) {
            let value = if m.breaks(rng, Site::Path, 0.65) {
                text(rng)
            } else {
                good.to_owned()
            };
            path = path.replace(placeholder, &value);
        }
    }
    path = path.replace("{fuzz}", &format!("zz{}", text(rng)));

    // The query string.
    let mut query = Vec::new();
    for key in keys {
        let good = match *key {
            "topic" => t.topic.clone(),
            "games" => game.clone(),
            "teams" => team.clone(),
            "tablet" => t.tablet.clone(),
            "max" | "wait_ms" | "stay_down_ms" => rng.random_range(0..50).to_string(),
            "commit" => "false".to_owned(),
            "mode" => "stop".to_owned(),
            _ => continue, // last_event_id: only fuzzed
        };
        let value = if m.breaks(rng, Site::Query, 0.5) {
            text(rng)
        } else {
            good
        };
        query.push(format!("{key}={value}"));
    }
    if m.breaks(rng, Site::Query, 0.15) {
        query.push(format!("{}={}", text(rng), text(rng)));
    }
    if !query.is_empty() {
        path = format!("{path}?{}", query.join("&"));
    }

    // Headers.
    let mut headers = Vec::new();
    let mut add = |name: &'static str, value: &[u8]| {
        if let Ok(value) = HeaderValue::from_bytes(value) {
            headers.push((HeaderName::from_static(name), value));
        }
    };
    let token = match auth {
        Reporter => REPORTER_TOKEN,
        Admin => ADMIN_TOKEN,
        QueueAdmin => obelix::queue::tokens::DEVELOPMENT_ADMIN,
        Producer => obelix::queue::tokens::DEVELOPMENT_PRODUCER,
        Consumer => obelix::queue::tokens::DEVELOPMENT_CONSUMER,
        Manager => MANAGER_TOKEN,
        Anyone => "nobody",
    };
    let authorization = match m.breaks(rng, Site::Headers, 0.5) {
        true => ["Bearer wrong", "Basic Zm9vOmJhcg==", "", "Bearer"]
            .choose(rng)
            .unwrap()
            .to_string(),
        false => format!("Bearer {token}"),
    };
    add("authorization", authorization.as_bytes());
    if m.breaks(rng, Site::Headers, 0.1) {
        add("authorization", b"Bearer second"); // a duplicate
    }
    const ODD: &[&[u8]] = &[
        b"\xff\xfe",
        b"not-a-uuid",
        b"",
        b"W/\"1\", *",
        b"99999999999999999999",
    ];
    if rng.random_bool(0.3) {
        let broken = m.breaks(rng, Site::Headers, 0.5);
        add(
            "x-tablet-id",
            if broken {
                ODD.choose(rng).unwrap()
            } else {
                t.tablet.as_bytes()
            },
        );
        if broken && rng.random_bool(0.3) {
            add("x-tablet-id", b"00000000-0000-0000-0000-000000000000"); // a duplicate
        }
    }
    for name in ["idempotency-key", "if-none-match", "last-event-id"] {
        if m.breaks(rng, Site::Headers, 0.15) {
            let long = "k".repeat(300);
            add(
                name,
                if rng.random_bool(0.3) {
                    long.as_bytes()
                } else {
                    ODD.choose(rng).unwrap()
                },
            );
        }
    }
    let body = body(rng, &m, kind, t);
    if body.is_some() {
        let content_type: &[u8] = match m.breaks(rng, Site::Headers, 0.4) {
            true => [
                &b"text/plain"[..],
                b"application/x-www-form-urlencoded",
                b"application/json; charset=latin1",
                b"\xff",
            ]
            .choose(rng)
            .unwrap(),
            false => b"application/json",
        };
        add("content-type", content_type);
    }

    let method = match m.breaks(rng, Site::Method, 0.15) {
        true => [
            Method::HEAD,
            Method::OPTIONS,
            Method::PATCH,
            Method::GET,
            Method::DELETE,
        ]
        .choose(rng)
        .unwrap()
        .clone(),
        false => Method::from_bytes(method.as_bytes()).unwrap(),
    };
    Case {
        route: format!("{method} {template}", method = route.0),
        method,
        path,
        headers,
        body,
    }
}
