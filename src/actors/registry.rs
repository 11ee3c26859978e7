//! Every supervised actor by name, for the admin API (`POST /admin/actors/{name}/crash`) and
//! `/readyz`.

use std::collections::BTreeMap;
use std::sync::Arc;

use actix::Recipient;

use crate::actors::messages::Crash;
use crate::actors::supervisor::{ActorCell, ActorStatus};

#[derive(Clone, Default)]
pub struct Registry {
    actors: BTreeMap<String, (Arc<ActorCell>, Recipient<Crash>)>,
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("unknown actor `{0}`")]
pub struct UnknownActor(pub String);

impl Registry {
    pub fn add(&mut self, cell: Arc<ActorCell>, crash: Recipient<Crash>) {
        self.actors.insert(cell.name().to_owned(), (cell, crash));
    }

    /// Delivers `crash` to the named actor. The crash happens when the actor handles it.
    pub fn crash(&self, name: &str, crash: Crash) -> Result<(), UnknownActor> {
        let (_, recipient) = self
            .actors
            .get(name)
            .ok_or_else(|| UnknownActor(name.to_owned()))?;
        recipient.do_send(crash);
        Ok(())
    }

    pub fn statuses(&self) -> Vec<ActorStatus> {
        self.actors
            .values()
            .map(|(cell, _)| cell.status())
            .collect()
    }

    pub fn all_alive(&self) -> bool {
        self.actors.values().all(|(cell, _)| cell.is_alive())
    }
}
