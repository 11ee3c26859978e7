//! Every supervised actor by name, for the admin API (`POST /admin/actors/{name}/crash`) and
//! `/readyz`.

use std::collections::BTreeMap;
use std::sync::{Arc, RwLock};

use std::time::{Duration, Instant};

use actix::{Actor, Addr, Context, Handler, Recipient};

use crate::actors::lifecycle::{Crash, Stop};
use crate::actors::supervisor::{ActorCell, ActorStatus};

#[derive(Clone)]
struct Entry {
    cell: Arc<ActorCell>,
    crash: Recipient<Crash>,
    stop: Recipient<Stop>,
}

/// Clones share one map: actors started later (front-ends added at runtime) appear everywhere.
#[derive(Clone, Default)]
pub struct Registry {
    actors: Arc<RwLock<BTreeMap<String, Entry>>>,
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("unknown actor `{0}`")]
pub struct UnknownActor(pub String);

impl Registry {
    pub fn add<A>(&self, cell: Arc<ActorCell>, addr: Addr<A>)
    where
        A: Actor<Context = Context<A>> + Handler<Crash> + Handler<Stop>,
    {
        let entry = Entry {
            cell,
            crash: addr.clone().recipient(),
            stop: addr.recipient(),
        };
        self.map_mut().insert(entry.cell.name().to_owned(), entry);
    }

    /// Stops every actor (after the shutdown signal is set, so none is restarted) and waits up
    /// to `within` for them to be gone.
    pub async fn stop_all(&self, within: Duration) {
        for entry in self.map().values() {
            entry.stop.do_send(Stop);
        }
        let deadline = Instant::now() + within;
        while self.map().values().any(|e| e.cell.is_alive()) && Instant::now() < deadline {
            actix_rt::time::sleep(Duration::from_millis(5)).await;
        }
    }

    /// Delivers `crash` to the named actor. The crash happens when the actor handles it.
    pub fn crash(&self, name: &str, crash: Crash) -> Result<(), UnknownActor> {
        let map = self.map();
        let entry = map.get(name).ok_or_else(|| UnknownActor(name.to_owned()))?;
        entry.crash.do_send(crash);
        Ok(())
    }

    pub fn statuses(&self) -> Vec<ActorStatus> {
        self.map().values().map(|e| e.cell.status()).collect()
    }

    pub fn all_alive(&self) -> bool {
        // A killed actor is gone on purpose: it does not make the tree unready.
        self.map()
            .values()
            .all(|e| e.cell.is_alive() || e.cell.is_killed())
    }

    fn map(&self) -> std::sync::RwLockReadGuard<'_, BTreeMap<String, Entry>> {
        self.actors
            .read()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    fn map_mut(&self) -> std::sync::RwLockWriteGuard<'_, BTreeMap<String, Entry>> {
        self.actors
            .write()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}
