//! The raffle (seed 000): every Nth tablet request across all front-ends wins, in one global
//! order: exactly one winner per N requests, under concurrency, crashes and a leader change.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use serde_json::Value;

use crate::helpers::{TestApp, error_body, eventually, spawn_app_with};

const READS: [&str; 4] = [
    "/olympics/games",
    "/olympics/games/curling/score",
    "/olympics/teams/gauls/medals",
    "/olympics/teams",
];

async fn register_tablets(app: &TestApp, count: usize) -> Vec<String> {
    let mut tablets = Vec::new();
    for _ in 0..count {
        let tablet = app.register_tablet().await;
        tablets.push(tablet["id"].as_str().unwrap().to_owned());
    }
    tablets
}

/// What a burst of reads came back with.
#[derive(Default)]
struct Burst {
    /// Successful tablet replies, by the front-end that served them.
    served_by: BTreeMap<String, usize>,
    /// `X-Raffle-Won` positions, with the tablet told.
    told: Vec<(u64, String)>,
}

impl Burst {
    fn successes(&self) -> usize {
        self.served_by.values().sum()
    }
}

/// `rounds` reads by every tablet at once (round after round), plus anonymous reads, which
/// do not take part in the raffle.
async fn burst(app: &TestApp, tablets: &[String], rounds: usize) -> Burst {
    let mut result = Burst::default();
    for round in 0..rounds {
        let reads = tablets.iter().map(|tablet| async move {
            let path = READS[round % READS.len()];
            let response = app.get_as_tablet(path, tablet).await;
            (tablet.clone(), response)
        });
        let anonymous = app.get("/olympics/games");
        let (replies, anonymous) =
            futures_util::future::join(futures_util::future::join_all(reads), anonymous).await;
        assert_eq!(anonymous.status(), 200);
        for (tablet, response) in replies {
            assert_eq!(response.status(), 200, "a tablet read failed");
            let by = response.headers()["X-Served-By"]
                .to_str()
                .unwrap()
                .to_owned();
            *result.served_by.entry(by).or_default() += 1;
            if let Some(won) = response.headers().get("X-Raffle-Won") {
                for position in won.to_str().unwrap().split(',') {
                    result
                        .told
                        .push((position.parse().unwrap(), tablet.clone()));
                }
            }
        }
    }
    result
}

async fn standing(app: &TestApp, query: &str) -> (u64, Vec<(u64, String)>) {
    let body: Value = app
        .get_json(&format!("/olympics/raffle/winners{query}"))
        .await;
    let winners = body["winners"]
        .as_array()
        .unwrap()
        .iter()
        .map(|w| {
            (
                w["position"].as_u64().unwrap(),
                w["tablet_id"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    (body["requests_counted"].as_u64().unwrap(), winners)
}

/// Waits until every live front-end has reported all it served; returns the raffle then.
async fn settled(app: &TestApp) -> (u64, Vec<(u64, String)>) {
    eventually(Duration::from_secs(5), || async {
        app.cluster_members()
            .await
            .iter()
            .filter(|m| m["alive"] == true)
            .all(|m| m["raffle_uncounted"] == 0)
    })
    .await;
    standing(app, "").await
}

/// Exactly the multiples of `every` up to `counted`, each once.
fn assert_one_winner_per_block(every: u64, counted: u64, winners: &[(u64, String)]) {
    let positions: Vec<u64> = winners.iter().map(|w| w.0).collect();
    let expected: Vec<u64> = (1..=counted / every).map(|k| k * every).collect();
    assert_eq!(positions, expected, "{counted} requests counted");
}

#[actix_web::test]
async fn every_nth_tablet_request_wins_once_and_the_winner_is_told() {
    let app = spawn_app_with(|s| s.raffle.every = 7).await;
    let tablets = register_tablets(&app, 6).await;

    // 1. 300 tablet reads through all front-ends at once (and anonymous ones, not counted).
    let first = burst(&app, &tablets, 50).await;
    assert_eq!(first.successes(), 300);
    assert_eq!(first.served_by.len(), 3, "{:?}", first.served_by);

    // 2. Counted exactly once each; exactly one winner per 7; every winner one of ours; the
    //    winners are persisted.
    let (counted, winners) = settled(&app).await;
    assert_eq!(counted, 300);
    assert_one_winner_per_block(7, counted, &winners);
    assert!(winners.iter().all(|(_, tablet)| tablets.contains(tablet)));
    let persisted: i64 = sqlx::query_scalar("SELECT count(*) FROM raffle_winners")
        .fetch_one(&app.db)
        .await
        .unwrap();
    assert_eq!(persisted as usize, winners.len());

    // 3. Each tablet reads once more: every winner has now been told, in its own replies, of
    //    exactly the positions it won.
    let second = burst(&app, &tablets, 1).await;
    let told: BTreeSet<(u64, String)> = first.told.into_iter().chain(second.told).collect();
    let won: BTreeSet<(u64, String)> = winners.into_iter().collect();
    assert_eq!(told, won);

    // 4. One tablet's winnings alone (among the first 300: step 3's reads are being counted).
    let (_, mine) = standing(&app, &format!("?tablet={}", tablets[0])).await;
    assert!(mine.iter().all(|(_, tablet)| tablet == &tablets[0]));
    let mine: Vec<_> = mine.into_iter().filter(|(p, _)| *p <= 300).collect();
    assert_eq!(
        mine.len(),
        won.iter()
            .filter(|(_, tablet)| tablet == &tablets[0])
            .count()
    );
    let bad = error_body(app.get("/olympics/raffle/winners?tablet=nope").await, 422).await;
    assert!(
        bad["error"].as_str().unwrap().contains("tablet id"),
        "{bad}"
    );
}

#[actix_web::test]
async fn the_raffle_keeps_one_winner_per_n_through_crashes_and_a_leader_change() {
    let app = spawn_app_with(|s| s.raffle.every = 5).await;
    let tablets = register_tablets(&app, 6).await;

    // 1. Traffic while a front-end crashes (panic) and is restarted by its supervisor: what it
    //    served but had not reported survives the restart, so the count is exact.
    let before = burst(&app, &tablets, 10).await;
    let crash = async {
        assert_eq!(app.crash("frontend-1", "mode=panic").await.status(), 202);
    };
    let (during, ()) = futures_util::future::join(burst(&app, &tablets, 20), crash).await;
    app.await_restart("frontend-1", 1).await;
    let (counted, winners) = settled(&app).await;
    assert_eq!(counted as usize, before.successes() + during.successes());
    assert_one_winner_per_block(5, counted, &winners);

    // 2. Traffic while the leader (front-end 3) is killed for good. What it served and had not
    //    reported is lost with it (a crash), but never counted twice: the count lies between
    //    what the survivors served and everything served, and the winners are still exactly
    //    one per 5.
    let kill = app.kill_frontend(3);
    let (second, ()) = futures_util::future::join(burst(&app, &tablets, 30), kill).await;
    let (total, winners) = settled(&app).await;
    let by_survivors: usize = second
        .served_by
        .iter()
        .filter(|(by, _)| by.as_str() != "frontend-3")
        .map(|(_, n)| n)
        .sum();
    let added = (total - counted) as usize;
    assert!(
        by_survivors <= added && added <= second.successes(),
        "{added} counted; survivors served {by_survivors} of {}",
        second.successes()
    );
    assert_one_winner_per_block(5, total, &winners);

    // 3. A front-end started again with the id of the killed one: its requests count too.
    app.add_frontend(3).await;
    // New tablets go to it, the least loaded.
    let newcomers = register_tablets(&app, 2).await;
    let third = burst(&app, &newcomers, 10).await;
    assert_eq!(third.served_by.keys().collect::<Vec<_>>(), ["frontend-3"]);
    let (after, winners) = settled(&app).await;
    assert_eq!((after - total) as usize, third.successes());
    assert_one_winner_per_block(5, after, &winners);
}
