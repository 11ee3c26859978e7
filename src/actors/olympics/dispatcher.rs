//! The Dispatcher (seed 000): registers tablets, assigns each to the front-end with the fewest
//! tablets, and publishes the routing table that the [`Router`](crate::actors::olympics::router::Router)
//! reads on every request.
//!
//! Tablet assignments live in PostgreSQL (`tablets`); a restarted dispatcher reloads them before
//! it handles its next message. While it restarts, requests keep flowing on the last published
//! table: only registrations wait.

use std::collections::HashMap;
use std::sync::Arc;

use actix::{
    Actor, ActorContext, ActorFutureExt, Addr, AsyncContext, AtomicResponse, Context, Handler,
    Message, WrapFuture,
};
use arc_swap::ArcSwap;
use uuid::Uuid;

use crate::actors::lifecycle::{Crash, CrashMode};
use crate::actors::olympics::database::{Database, DeleteTablet, LoadTablets, SaveTablet};
use crate::actors::olympics::frontend::FrontendFactory;
use crate::actors::olympics::frontend_clocks::FrontendClocks;
use crate::actors::olympics::routing_table::{FrontendSlot, RoutingTable, tablet_counts};
use crate::actors::supervisor::ActorCell;
use crate::coordination::balance::{ServerLoad, least_loaded};
use crate::coordination::berkeley::SimulatedClock;
use crate::olympics::{OlympicsError, TabletAssignment};

pub struct Dispatcher {
    frontends: Vec<Arc<FrontendSlot>>,
    /// Starts front-ends added at runtime (`POST /admin/frontends`).
    factory: FrontendFactory,
    /// Tablet id → index into `frontends`.
    tablets: HashMap<Uuid, usize>,
    db: Addr<Database>,
    published: Arc<ArcSwap<RoutingTable>>,
    cell: Arc<ActorCell>,
}

impl Dispatcher {
    pub fn new(
        frontends: Vec<Arc<FrontendSlot>>,
        factory: FrontendFactory,
        db: Addr<Database>,
        published: Arc<ArcSwap<RoutingTable>>,
        cell: Arc<ActorCell>,
    ) -> Self {
        Self {
            frontends,
            factory,
            tablets: HashMap::new(),
            db,
            published,
            cell,
        }
    }

    fn tablet_loads(&self) -> Vec<ServerLoad> {
        self.frontends
            .iter()
            .zip(tablet_counts(self.frontends.len(), &self.tablets))
            .map(|(slot, load)| ServerLoad {
                alive: slot.cell.is_alive(),
                load,
            })
            .collect()
    }

    fn publish(&self) {
        self.published.store(Arc::new(RoutingTable::new(
            self.frontends.clone(),
            self.tablets.clone(),
        )));
    }

    fn index_of(&self, frontend: &str) -> Option<usize> {
        self.frontends
            .iter()
            .position(|s| s.cell.name() == frontend)
    }
}

impl Actor for Dispatcher {
    type Context = Context<Self>;

    /// Reloads every tablet assignment before handling anything else (`ctx.wait`).
    fn started(&mut self, ctx: &mut Self::Context) {
        let db = self.db.clone();
        ctx.wait(
            async move { db.send(LoadTablets).await }
                .into_actor(self)
                .map(|loaded, act, ctx| match loaded {
                    Ok(Ok(rows)) => {
                        act.tablets.clear();
                        let mut moved = Vec::new();
                        for (id, frontend) in rows {
                            let index = match act.index_of(&frontend) {
                                Some(i) => i,
                                None => {
                                    // Its front-end is gone (killed, or fewer configured): re-home
                                    // it. With no front-end at all it stays in PostgreSQL, to be
                                    // re-homed by a later reload.
                                    let fallback = (!act.frontends.is_empty()).then_some(0);
                                    let Some(i) = least_loaded(&act.tablet_loads()).or(fallback)
                                    else {
                                        continue;
                                    };
                                    moved.push((id, i));
                                    i
                                }
                            };
                            act.tablets.insert(id, index);
                        }
                        for (id, i) in moved {
                            act.db.do_send(SaveTablet {
                                id,
                                frontend: act.frontends[i].cell.name().to_owned(),
                            });
                        }
                        act.publish();
                        tracing::info!(
                            actor = act.cell.name(),
                            tablets = act.tablets.len(),
                            "dispatcher loaded tablet assignments from PostgreSQL"
                        );
                    }
                    failed => {
                        tracing::error!(
                            actor = act.cell.name(),
                            ?failed,
                            "dispatcher could not load tablets; stopping to be restarted"
                        );
                        ctx.stop();
                    }
                }),
        );
    }
}

impl actix::Supervised for Dispatcher {
    fn restarting(&mut self, _ctx: &mut Self::Context) {
        tracing::info!(
            actor = self.cell.name(),
            "dispatcher restarting; will reload tablets"
        );
        self.tablets.clear();
    }
}

crate::supervised_actor_handlers!(Dispatcher);

/// Register a new tablet: it is assigned to the live front-end with the fewest tablets.
#[derive(Debug, Message)]
#[rtype(result = "Result<TabletAssignment, OlympicsError>")]
pub struct RegisterTablet;

impl Handler<RegisterTablet> for Dispatcher {
    // Atomic: one registration at a time, so two never both see the same least-loaded server.
    type Result = AtomicResponse<Self, Result<TabletAssignment, OlympicsError>>;

    fn handle(&mut self, _: RegisterTablet, _ctx: &mut Self::Context) -> Self::Result {
        let Some(index) = least_loaded(&self.tablet_loads()) else {
            return AtomicResponse::new(Box::pin(actix::fut::ready(Err(
                OlympicsError::Unavailable("no front-end server is alive".into()),
            ))));
        };
        let id = Uuid::new_v4();
        let frontend = self.frontends[index].cell.name().to_owned();
        let save = self.db.send(SaveTablet {
            id,
            frontend: frontend.clone(),
        });
        AtomicResponse::new(Box::pin(save.into_actor(self).map(
            move |saved, act, _ctx| {
                saved.map_err(|e| OlympicsError::Unavailable(format!("database actor: {e}")))??;
                act.tablets.insert(id, index);
                act.publish();
                tracing::info!(actor = act.cell.name(), tablet = %id, frontend = %frontend, "dispatcher assigned tablet {id} to {frontend}");
                Ok(TabletAssignment { id, frontend })
            },
        )))
    }
}

/// Unregister a tablet.
#[derive(Debug, Message)]
#[rtype(result = "Result<(), OlympicsError>")]
pub struct UnregisterTablet {
    pub id: Uuid,
}

impl Handler<UnregisterTablet> for Dispatcher {
    type Result = AtomicResponse<Self, Result<(), OlympicsError>>;

    fn handle(&mut self, msg: UnregisterTablet, _ctx: &mut Self::Context) -> Self::Result {
        let id = msg.id;
        let delete = self.db.send(DeleteTablet { id });
        AtomicResponse::new(Box::pin(delete.into_actor(self).map(
            move |deleted, act, _ctx| {
                let existed = deleted
                    .map_err(|e| OlympicsError::Unavailable(format!("database actor: {e}")))??;
                if !existed {
                    return Err(OlympicsError::UnknownTablet(id));
                }
                act.tablets.remove(&id);
                act.publish();
                tracing::info!(actor = act.cell.name(), tablet = %id, "dispatcher unregistered tablet {id}");
                Ok(())
            },
        )))
    }
}

/// Start a new front-end with group id `id` (seed 003's "a new server starts up").
#[derive(Debug, Message)]
#[rtype(result = "Result<String, OlympicsError>")]
pub struct AddFrontend {
    pub id: u64,
    /// Its clock's skew in ms; default: derived from the id.
    pub clock_skew_ms: Option<i64>,
}

impl Handler<AddFrontend> for Dispatcher {
    type Result = Result<String, OlympicsError>;

    fn handle(&mut self, msg: AddFrontend, _ctx: &mut Self::Context) -> Self::Result {
        if self.frontends.iter().any(|s| s.id == msg.id) {
            return Err(OlympicsError::Conflict(format!(
                "front-end {} exists",
                msg.id
            )));
        }
        let clock = msg.clock_skew_ms.map(|skew| {
            let derived = FrontendClocks::default_clock(msg.id, &self.factory.group);
            SimulatedClock::new(skew, derived.drift_ppm)
        });
        let (addr, cell) = self.factory.spawn(msg.id, clock);
        let slot = FrontendSlot::new(msg.id, addr, cell);
        let name = slot.cell.name().to_owned();
        self.frontends.push(slot);
        self.publish();
        tracing::info!(actor = self.cell.name(), frontend = %name, "dispatcher added front-end {name}");
        Ok(name)
    }
}

/// Kill front-end `id`: a crash it is not restarted from. Its tablets move to the others.
#[derive(Debug, Message)]
#[rtype(result = "Result<(), OlympicsError>")]
pub struct KillFrontend {
    pub id: u64,
}

impl Handler<KillFrontend> for Dispatcher {
    type Result = Result<(), OlympicsError>;

    fn handle(&mut self, msg: KillFrontend, _ctx: &mut Self::Context) -> Self::Result {
        let index = self
            .frontends
            .iter()
            .position(|s| s.id == msg.id)
            .ok_or(OlympicsError::UnknownFrontend(msg.id))?;
        let victim = self.frontends.remove(index);
        victim.cell.kill();
        victim.addr.do_send(Crash {
            mode: CrashMode::Panic,
            stay_down: std::time::Duration::ZERO,
        });
        // Indices above the victim's shift down; its own tablets go to the least loaded.
        let orphans: Vec<Uuid> = self
            .tablets
            .iter()
            .filter(|&(_, &i)| i == index)
            .map(|(&id, _)| id)
            .collect();
        for i in self.tablets.values_mut() {
            if *i > index {
                *i -= 1;
            }
        }
        for id in &orphans {
            self.tablets.remove(id);
        }
        for id in orphans {
            if let Some(home) = least_loaded(&self.tablet_loads()) {
                self.tablets.insert(id, home);
                self.db.do_send(SaveTablet {
                    id,
                    frontend: self.frontends[home].cell.name().to_owned(),
                });
            }
        }
        self.publish();
        tracing::warn!(
            actor = self.cell.name(),
            frontend = victim.cell.name(),
            "dispatcher killed front-end {}; its tablets moved",
            victim.cell.name()
        );
        Ok(())
    }
}
