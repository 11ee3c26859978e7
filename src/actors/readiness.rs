//! Readiness, service by service: can each service answer its requests now? `/readyz` is 503
//! when one cannot, with the reasons; `/healthz` (the process answers) is liveness only.
//!
//! - Olympic results: at least one front-end alive and answering, and the database (the
//!   Database actor and PostgreSQL behind it).
//! - Log queue: a write manager (whichever the managers elected) alive, and every broker alive:
//!   a broker that is down leaves its partitions answering 503.
//!
//! Other actors being restarted (a read manager, the publisher) leave the services able to
//! answer, so they do not make the process unready; `/admin/actors` shows them.

use std::sync::atomic::Ordering;
use std::time::Duration;

use serde::Serialize;

use crate::actors::Tree;
use crate::actors::olympics::database::DatabaseCheck;

/// How long the database check may take before it counts as failed.
const DATABASE_CHECK_TIMEOUT: Duration = Duration::from_secs(2);

/// One service's readiness.
#[derive(Debug, Clone, Serialize, PartialEq, Eq, utoipa::ToSchema)]
pub struct ServiceReadiness {
    pub ready: bool,
    /// Why it is not ready; empty when it is.
    pub reasons: Vec<String>,
}

impl ServiceReadiness {
    fn from_reasons(reasons: Vec<String>) -> Self {
        Self {
            ready: reasons.is_empty(),
            reasons,
        }
    }
}

/// Every service's readiness, by name.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct Readiness {
    pub olympics: ServiceReadiness,
    pub queue: ServiceReadiness,
}

impl Readiness {
    pub fn ready(&self) -> bool {
        self.olympics.ready && self.queue.ready
    }

    /// `service: reason` for every reason of every service.
    pub fn reasons(&self) -> Vec<String> {
        [("olympics", &self.olympics), ("queue", &self.queue)]
            .into_iter()
            .flat_map(|(name, service)| service.reasons.iter().map(move |r| format!("{name}: {r}")))
            .collect()
    }
}

/// Asks every service.
pub async fn check(tree: &Tree) -> Readiness {
    Readiness {
        olympics: olympics(tree).await,
        queue: queue(tree),
    }
}

async fn olympics(tree: &Tree) -> ServiceReadiness {
    let mut reasons = Vec::new();
    let (database, members) = futures_util::future::join(
        tree.database
            .send(DatabaseCheck)
            .timeout(DATABASE_CHECK_TIMEOUT),
        tree.router.cluster(),
    )
    .await;
    match database {
        Ok(Ok(())) => {}
        Ok(Err(e)) => reasons.push(format!("database: {e}")),
        Err(e) => reasons.push(format!("database actor: {e}")),
    }
    // Alive and answering: a front-end that did not describe itself cannot serve either.
    if !members.iter().any(|m| m.alive && m.state.is_some()) {
        reasons.push(format!(
            "no front-end is alive and answering (of {})",
            members.len()
        ));
    }
    ServiceReadiness::from_reasons(reasons)
}

fn queue(tree: &Tree) -> ServiceReadiness {
    let shared = tree.queue.shared();
    let mut reasons = Vec::new();
    let leader = shared.leader.load(Ordering::Acquire);
    match shared.managers().iter().find(|m| m.id == leader) {
        Some(manager) if manager.cell.is_alive() => {}
        Some(manager) => reasons.push(format!(
            "the write manager {} is down; an election is due",
            manager.cell.name()
        )),
        None => reasons.push("no write manager is elected".to_owned()),
    }
    for broker in shared.brokers.iter().filter(|b| !b.cell.is_alive()) {
        reasons.push(format!(
            "{} is down; its partitions answer 503",
            broker.cell.name()
        ));
    }
    ServiceReadiness::from_reasons(reasons)
}
