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

/// Each tablet's public label, by its id.
async fn labels(app: &TestApp) -> BTreeMap<String, String> {
    sqlx::query_as("SELECT id::text, label FROM tablets")
        .fetch_all(&app.db)
        .await
        .unwrap()
        .into_iter()
        .collect()
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
    let nobody = std::sync::atomic::AtomicUsize::new(0);
    burst_counting(app, tablets, rounds, "", &nobody).await
}

/// [`burst`], counting in `served` the replies of front-end `watched` as they come.
async fn burst_counting(
    app: &TestApp,
    tablets: &[String],
    rounds: usize,
    watched: &str,
    served: &std::sync::atomic::AtomicUsize,
) -> Burst {
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
            if by == watched {
                served.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            }
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
                w["tablet"].as_str().unwrap().to_owned(),
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

    // 2. Counted exactly once each; exactly one winner per 7; every winner one of ours (named
    //    by its label); the winners are persisted.
    let (counted, winners) = settled(&app).await;
    assert_eq!(counted, 300);
    assert_one_winner_per_block(7, counted, &winners);
    let labels = labels(&app).await;
    let label_of = |id: &String| labels[id].clone();
    assert!(
        winners
            .iter()
            .all(|(_, label)| tablets.iter().any(|t| &label_of(t) == label))
    );
    let persisted: i64 = sqlx::query_scalar("SELECT count(*) FROM raffle_winners")
        .fetch_one(&app.db)
        .await
        .unwrap();
    assert_eq!(persisted as usize, winners.len());

    // 3. Each tablet reads once more: every winner has now been told, in its own replies, of
    //    exactly the positions it won.
    let second = burst(&app, &tablets, 1).await;
    let told: BTreeSet<(u64, String)> = first
        .told
        .into_iter()
        .chain(second.told)
        .map(|(position, id)| (position, label_of(&id)))
        .collect();
    let won: BTreeSet<(u64, String)> = winners.into_iter().collect();
    assert_eq!(told, won);

    // 4. One tablet's winnings alone (among the first 300: step 3's reads are being counted).
    let mine_label = label_of(&tablets[0]);
    let (_, mine) = standing(&app, &format!("?tablet={}", tablets[0])).await;
    assert!(mine.iter().all(|(_, label)| label == &mine_label));
    let mine: Vec<_> = mine.into_iter().filter(|(p, _)| *p <= 300).collect();
    assert_eq!(
        mine.len(),
        won.iter().filter(|(_, label)| label == &mine_label).count()
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
    //    The kill comes once the leader has served some of this burst, so it dies serving.
    let leader_served = std::sync::atomic::AtomicUsize::new(0);
    let kill = async {
        eventually(Duration::from_secs(30), || async {
            leader_served.load(std::sync::atomic::Ordering::SeqCst) >= 6
        })
        .await;
        app.kill_frontend(3).await;
    };
    let (second, ()) = futures_util::future::join(
        burst_counting(&app, &tablets, 30, "frontend-3", &leader_served),
        kill,
    )
    .await;
    let by_leader = second.served_by.get("frontend-3").copied().unwrap_or(0);
    assert!(
        by_leader >= 6 && by_leader < second.successes(),
        "the leader served {by_leader} of {} before it died",
        second.successes()
    );
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

#[actix_web::test]
async fn requests_the_raffle_has_not_counted_are_bounded_and_then_refused_with_503() {
    // Reports never go out during the test, so every tablet request stays uncounted.
    let app = spawn_app_with(|s| {
        s.olympics.frontends = 1;
        s.raffle.report_interval_ms = 600_000;
        s.raffle.max_uncounted_requests = 10;
    })
    .await;
    let tablet = app.register_tablet().await;
    let id = tablet["id"].as_str().unwrap();
    for _ in 0..10 {
        assert_eq!(app.get_as_tablet("/olympics/games", id).await.status(), 200);
    }
    let refused = app.get_as_tablet("/olympics/games", id).await;
    assert_eq!(refused.headers()["retry-after"], "1");
    error_body(refused, 503).await;
    // Anonymous reads take no part in the raffle and are still served.
    assert_eq!(app.get("/olympics/games").await.status(), 200);
    let members = app.cluster_members().await;
    assert_eq!(members[0]["raffle_uncounted"], 10, "{members:?}");
}

#[actix_web::test]
async fn wins_not_yet_told_are_bounded_and_the_oldest_stay_in_the_winners_list() {
    let app = spawn_app_with(|s| {
        s.olympics.frontends = 1;
        s.raffle.every = 1;
        s.raffle.max_untold_wins = 3;
    })
    .await;
    let tablets = register_tablets(&app, 5).await;
    // 1. Each tablet reads once, in turn: each wins, and none reads again.
    for tablet in &tablets {
        assert_eq!(
            app.get_as_tablet("/olympics/games", tablet).await.status(),
            200
        );
        settled(&app).await;
    }
    let members = app.cluster_members().await;
    assert_eq!(members[0]["raffle_untold_wins"], 3, "{members:?}");
    // 2. The three latest winners are told at their next read; the first two were forgotten
    //    by the front-end, but the winners list still has them. (Latest first: each of these
    //    reads wins again, and the new win must not push out one not told yet.)
    for (i, tablet) in tablets.iter().enumerate().rev() {
        let response = app.get_as_tablet("/olympics/games", tablet).await;
        let told = response
            .headers()
            .get("X-Raffle-Won")
            .map(|v| v.to_str().unwrap().to_owned());
        if i < 2 {
            assert_eq!(told, None, "tablet {i}");
        } else {
            assert_eq!(told, Some((i + 1).to_string()), "tablet {i}");
        }
        let (_, mine) = standing(&app, &format!("?tablet={tablet}")).await;
        assert!(mine.iter().any(|(p, _)| *p == i as u64 + 1), "tablet {i}");
    }
}

#[actix_web::test]
async fn the_winners_list_names_tablets_by_label_and_never_shows_their_ids() {
    let app = spawn_app_with(|s| s.raffle.every = 2).await;
    let mut registered = Vec::new();
    for _ in 0..4 {
        let tablet = app.register_tablet().await;
        let label = tablet["label"].as_str().expect("a label").to_owned();
        let id = tablet["id"].as_str().unwrap().to_owned();
        assert!(!label.is_empty() && !label.contains(&id), "{tablet}");
        registered.push((id, label));
    }
    for _ in 0..3 {
        for (id, _) in &registered {
            app.get_as_tablet("/olympics/games", id).await;
        }
    }
    let (counted, winners) = settled(&app).await;
    assert_eq!(counted, 12);
    assert_eq!(winners.len(), 6);
    let listing = app
        .get("/olympics/raffle/winners")
        .await
        .text()
        .await
        .unwrap();
    for (id, _) in &registered {
        assert!(
            !listing.contains(id.as_str()),
            "a tablet id is published: {listing}"
        );
    }
    let labels: BTreeSet<&str> = registered.iter().map(|(_, l)| l.as_str()).collect();
    assert!(
        winners
            .iter()
            .all(|(_, label)| labels.contains(label.as_str()))
    );
    // A tablet still finds its own wins with its id, shown by its label.
    let (id, label) = &registered[1];
    let (_, mine) = standing(&app, &format!("?tablet={id}")).await;
    assert!(
        !mine.is_empty() && mine.iter().all(|(_, l)| l == label),
        "{mine:?}"
    );
}

#[actix_web::test]
async fn a_batch_retried_after_a_lost_reply_still_tells_its_winners() {
    let app = spawn_app_with(|s| {
        s.olympics.frontends = 1;
        s.olympics.request_timeout_ms = 1_000;
        s.raffle.every = 1;
    })
    .await;
    let tablets = register_tablets(&app, 1).await;
    let tablet = &tablets[0];

    // 1. The raffle's counter is locked: the front-end's report of the read below waits past
    //    its timeout, so it sends the same batch again, which waits behind the first.
    let mut blocker = app.db.begin().await.unwrap();
    sqlx::query("SELECT requests FROM raffle_counter FOR UPDATE")
        .execute(&mut *blocker)
        .await
        .unwrap();
    assert_eq!(
        app.get_as_tablet("/olympics/games", tablet).await.status(),
        200
    );
    eventually(Duration::from_secs(10), || async {
        let waiting: i64 = sqlx::query_scalar(
            "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() \
             AND wait_event_type = 'Lock'",
        )
        .fetch_one(&app.db)
        .await
        .unwrap();
        waiting >= 2
    })
    .await;
    // 2. The first report commits once the lock goes; its reply was given up on, and the retry
    //    finds the batch counted already.
    blocker.commit().await.unwrap();
    let (counted, winners) = settled(&app).await;
    assert_eq!(counted, 1, "the batch counted once");
    assert_eq!(winners.len(), 1);
    // 3. The winner is told all the same.
    let next = app.get_as_tablet("/olympics/games", tablet).await;
    assert_eq!(
        next.headers()
            .get("X-Raffle-Won")
            .map(|v| v.to_str().unwrap()),
        Some("1")
    );
}
