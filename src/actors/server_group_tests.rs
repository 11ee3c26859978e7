//! The server group driven by the smallest actor that embeds it: a group forms, loses its
//! leader, and takes a newcomer with a higher id, with either election algorithm.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use actix::prelude::*;

use super::{Duty, Election, GroupMember, GroupTiming, Members};
use crate::settings::ElectionAlgorithm;

#[derive(Default)]
struct Roster(Mutex<Vec<(u64, Addr<Node>)>>);

impl Members<Node> for Roster {
    fn members(&self) -> Vec<(u64, Addr<Node>)> {
        self.0.lock().unwrap().clone()
    }
}

struct Node {
    group: GroupMember,
    roster: Arc<Roster>,
}

#[derive(Message)]
#[rtype(result = "()")]
struct Heartbeat;

#[derive(Message)]
#[rtype(result = "Option<u64>")]
struct WhoLeads;

#[derive(Message)]
#[rtype(result = "()")]
struct Die;

impl Actor for Node {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Self::Context) {
        let roster = self.roster.clone();
        self.group.start(&*roster);
        ctx.run_interval(self.group.tick_interval(), |act, ctx| {
            let roster = act.roster.clone();
            if let Duty::Heartbeat { leader, to } = act.group.tick(&*roster) {
                let ping = to.send(Heartbeat).timeout(act.group.heartbeat_timeout());
                ctx.spawn(ping.into_actor(act).map(move |answer, act, _| {
                    let roster = act.roster.clone();
                    act.group
                        .heartbeat_answered(leader, answer.is_ok(), &*roster);
                }));
            }
        });
    }
}

impl Handler<Election> for Node {
    type Result = ();
    fn handle(&mut self, msg: Election, _: &mut Self::Context) {
        let roster = self.roster.clone();
        self.group.on_election(msg, &*roster);
    }
}

impl Handler<Heartbeat> for Node {
    type Result = ();
    fn handle(&mut self, _: Heartbeat, _: &mut Self::Context) {}
}

impl Handler<WhoLeads> for Node {
    type Result = Option<u64>;
    fn handle(&mut self, _: WhoLeads, _: &mut Self::Context) -> Option<u64> {
        if self.group.is_electing() {
            None
        } else {
            self.group.leader()
        }
    }
}

impl Handler<Die> for Node {
    type Result = ();
    fn handle(&mut self, _: Die, ctx: &mut Self::Context) {
        ctx.stop();
    }
}

fn timing(election: ElectionAlgorithm) -> GroupTiming {
    GroupTiming {
        election,
        tick_ms: 5,
        heartbeat_interval_ms: 10,
        heartbeat_deadline_ms: 40,
        election_answer_ms: 30,
        election_coordinator_ms: 90,
    }
}

fn join(roster: &Arc<Roster>, id: u64, election: ElectionAlgorithm) -> Addr<Node> {
    let node = Node {
        group: GroupMember::new(id, "test", timing(election)),
        roster: roster.clone(),
    };
    // Listed before it starts, so its first election reaches everyone.
    let addr = Node::create(|ctx| {
        roster.0.lock().unwrap().push((id, ctx.address()));
        node
    });
    addr
}

/// Waits until every live member names `leader` and none is electing; fails after 5 s.
async fn await_leader(roster: &Roster, leader: u64) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    loop {
        let live: Vec<Addr<Node>> = roster
            .members()
            .into_iter()
            .map(|(_, a)| a)
            .filter(Addr::connected)
            .collect();
        assert!(!live.is_empty(), "no live member");
        let mut views = Vec::new();
        for addr in &live {
            views.push(addr.send(WhoLeads).await.ok().flatten());
        }
        if views.iter().all(|v| *v == Some(leader)) {
            return;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "members never agreed on {leader}: {views:?}"
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

async fn forms_fails_over_and_is_bullied(election: ElectionAlgorithm) {
    let roster = Arc::new(Roster::default());
    // 1. Three members start; the highest id leads.
    let _low = join(&roster, 3, election);
    let top = join(&roster, 7, election);
    let _mid = join(&roster, 5, election);
    await_leader(&roster, 7).await;
    // 2. The leader dies (it stays listed, as a crashed server would): its heartbeats fail and
    //    the survivors elect the next highest.
    top.do_send(Die);
    await_leader(&roster, 5).await;
    // 3. A higher id joins and takes over.
    let _newcomer = join(&roster, 9, election);
    await_leader(&roster, 9).await;
}

#[actix_web::test]
async fn a_bully_group_forms_fails_over_and_takes_a_higher_newcomer() {
    forms_fails_over_and_is_bullied(ElectionAlgorithm::Bully).await;
}

#[actix_web::test]
async fn a_ring_group_forms_fails_over_and_takes_a_higher_newcomer() {
    forms_fails_over_and_is_bullied(ElectionAlgorithm::Ring).await;
}
