//! The Dispatcher (seed 000): registers tablets, assigns each to the front-end with the fewest
//! tablets, and publishes the routing table that the [`Router`](crate::actors::olympics::router::Router)
//! reads on every request: the front-ends (published anew when they change) and the tablets'
//! directory (changed in place, one insert per registration; each front-end's slot counts its
//! tablets, so placing one costs O(front-ends) at any number of tablets).
//!
//! Tablet assignments live in PostgreSQL (`tablets`, saved in groups: registrations that come
//! while a save is under way go in the next statement); a restarted dispatcher reloads them
//! before it handles its next message. While it restarts, requests keep flowing on the
//! directory as it was: only registrations wait.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use actix::{
    Actor, ActorContext, ActorFutureExt, Addr, AsyncContext, AtomicResponse, Context, Handler,
    Message, ResponseFuture, WrapFuture,
};
use arc_swap::ArcSwap;
use tokio::sync::oneshot;
use uuid::Uuid;

use crate::actors::lifecycle::{Crash, CrashMode};
use crate::actors::olympics::database::{
    Database, DeleteTablet, LoadTablets, SaveTablet, SaveTablets,
};
use crate::actors::olympics::frontend::FrontendFactory;
use crate::actors::olympics::frontend_clocks::FrontendClocks;
use crate::actors::olympics::routing_table::{
    FrontendSlot, Home, RoutingTable, TabletDirectory, now_ms,
};
use crate::actors::supervisor::ActorCell;
use crate::coordination::balance::{ServerLoad, least_loaded};
use crate::coordination::berkeley::SimulatedClock;
use crate::olympics::{OlympicsError, TabletAssignment};

pub struct Dispatcher {
    frontends: Vec<Arc<FrontendSlot>>,
    /// Starts front-ends added at runtime (`POST /admin/frontends`).
    factory: FrontendFactory,
    /// Tablet id → front-end id, shared with the ingress; kept across restarts (requests keep
    /// using it) and replaced whole by a reload.
    tablets: Arc<TabletDirectory>,
    db: Addr<Database>,
    published: Arc<ArcSwap<RoutingTable>>,
    cell: Arc<ActorCell>,
    /// The most front-ends the group may have.
    max_frontends: usize,
    /// Tablets silent this long are unregistered (`None`: never).
    idle_expiry: Option<Duration>,
    /// Registrations waiting for their save, and whether one is under way.
    unsaved: Vec<Unsaved>,
    saving: bool,
}

impl Dispatcher {
    pub fn new(
        frontends: Vec<Arc<FrontendSlot>>,
        factory: FrontendFactory,
        db: Addr<Database>,
        published: Arc<ArcSwap<RoutingTable>>,
        cell: Arc<ActorCell>,
        max_frontends: usize,
        idle_expiry: Option<Duration>,
    ) -> Self {
        let tablets = published.load().tablets.clone();
        Self {
            frontends,
            factory,
            tablets,
            db,
            published,
            cell,
            max_frontends,
            idle_expiry,
            unsaved: Vec::new(),
            saving: false,
        }
    }

    /// Unregisters the tablets not heard from for `expiry`, as if each had asked to leave.
    fn expire_silent(&mut self, expiry: Duration, ctx: &mut Context<Self>) {
        let cutoff = now_ms().saturating_sub(expiry.as_millis() as u64);
        let silent = self.tablets.silent_since(cutoff);
        if silent.is_empty() {
            return;
        }
        tracing::info!(
            actor = self.cell.name(),
            tablets = silent.len(),
            "dispatcher expires {} tablets silent for {} ms",
            silent.len(),
            expiry.as_millis()
        );
        for id in silent {
            ctx.address().do_send(UnregisterTablet { id });
        }
    }

    /// Each front-end's tablets: O(front-ends), whatever the number of tablets.
    fn tablet_loads(&self) -> Vec<ServerLoad> {
        self.frontends
            .iter()
            .map(|slot| ServerLoad {
                alive: slot.cell.is_alive(),
                load: slot.tablets.load(Ordering::Relaxed),
            })
            .collect()
    }

    /// The live front-end with the fewest tablets, its count taken for one more tablet.
    fn place_tablet(&self) -> Option<Arc<FrontendSlot>> {
        let slot = self.frontends[least_loaded(&self.tablet_loads())?].clone();
        slot.tablets.fetch_add(1, Ordering::Relaxed);
        Some(slot)
    }

    /// Publishes the front-ends (the tablets' directory changes in place).
    fn publish(&self) {
        self.published.store(Arc::new(RoutingTable::new(
            self.frontends.clone(),
            self.tablets.clone(),
        )));
    }

    fn is_member(&self, slot: &Arc<FrontendSlot>) -> bool {
        self.frontends.iter().any(|s| Arc::ptr_eq(s, slot))
    }

    /// Tablet `id`'s front-end is gone: it goes to the least-loaded one, in PostgreSQL too.
    fn rehome(&self, id: Uuid) -> Option<u64> {
        let home = self.place_tablet()?;
        self.db.do_send(SaveTablet {
            id,
            frontend: home.cell.name().to_owned(),
        });
        Some(home.id)
    }
}

impl Actor for Dispatcher {
    type Context = Context<Self>;

    /// Reloads every tablet assignment before handling anything else (`ctx.wait`).
    fn started(&mut self, ctx: &mut Self::Context) {
        if let Some(expiry) = self.idle_expiry {
            // Looked at four times per expiry period (at most once a minute): a silent tablet
            // goes between `expiry` and 1.25 x `expiry` after it was last heard from.
            let every = (expiry / 4).min(Duration::from_secs(60));
            ctx.run_interval(every, move |act, ctx| act.expire_silent(expiry, ctx));
        }
        let db = self.db.clone();
        ctx.wait(
            async move { db.send(LoadTablets).await }
                .into_actor(self)
                .map(|loaded, act, ctx| match loaded {
                    Ok(Ok(rows)) => {
                        for slot in &act.frontends {
                            slot.tablets.store(0, Ordering::Relaxed);
                        }
                        let mut homes = HashMap::with_capacity(rows.len());
                        for (id, frontend, label) in rows {
                            let slot = act.frontends.iter().find(|s| s.cell.name() == frontend);
                            let home = match slot {
                                Some(slot) => {
                                    slot.tablets.fetch_add(1, Ordering::Relaxed);
                                    slot.id
                                }
                                // Its front-end is gone (killed, or fewer configured): re-home
                                // it. With no front-end at all it stays in PostgreSQL, to be
                                // re-homed by a later reload.
                                None => match act.rehome(id) {
                                    Some(home) => home,
                                    None => continue,
                                },
                            };
                            homes.insert(id, Home::new(home, label.into()));
                        }
                        let count = homes.len();
                        act.tablets.replace(homes);
                        act.publish();
                        tracing::info!(
                            actor = act.cell.name(),
                            tablets = count,
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
        // The directory stays: requests keep finding their tablets until the reload replaces it.
        // Registrations not saved yet are refused (their save died with the old context).
        self.saving = false;
        for unsaved in self.unsaved.drain(..) {
            release(&unsaved.slot);
        }
        tracing::info!(
            actor = self.cell.name(),
            "dispatcher restarting; will reload tablets"
        );
    }
}

crate::supervised_actor_handlers!(Dispatcher);

/// Register a new tablet: it is assigned to the live front-end with the fewest tablets.
#[derive(Debug, Message)]
#[rtype(result = "Result<TabletAssignment, OlympicsError>")]
pub struct RegisterTablet;

impl Handler<RegisterTablet> for Dispatcher {
    /// The front-end is picked and its count taken at once; the save is grouped with those of
    /// the registrations that come while another save is under way. Each registration costs
    /// O(front-ends), and the saves one statement per group.
    type Result = ResponseFuture<Result<TabletAssignment, OlympicsError>>;

    fn handle(&mut self, _: RegisterTablet, ctx: &mut Self::Context) -> Self::Result {
        let Some(slot) = self.place_tablet() else {
            return Box::pin(std::future::ready(Err(OlympicsError::Unavailable(
                "no front-end server is alive".into(),
            ))));
        };
        let (reply, answer) = oneshot::channel();
        self.unsaved.push(Unsaved {
            id: Uuid::new_v4(),
            slot,
            reply,
        });
        if !self.saving {
            self.save_registrations(ctx);
        }
        Box::pin(async move {
            answer.await.unwrap_or_else(|_| {
                Err(OlympicsError::Unavailable(
                    "the dispatcher restarted during the registration".into(),
                ))
            })
        })
    }
}

/// One tablet fewer on `slot` (never below zero: a killed front-end's count was reset).
fn release(slot: &FrontendSlot) {
    let _ = slot
        .tablets
        .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |n| n.checked_sub(1));
}

/// A registration waiting for its save.
struct Unsaved {
    id: Uuid,
    slot: Arc<FrontendSlot>,
    reply: oneshot::Sender<Result<TabletAssignment, OlympicsError>>,
}

/// The most registrations saved in one statement.
const SAVE_BATCH: usize = 1000;

impl Dispatcher {
    /// Saves the waiting registrations (up to [`SAVE_BATCH`]) in one statement, then answers
    /// them and goes on with those that came meanwhile.
    fn save_registrations(&mut self, ctx: &mut Context<Self>) {
        if self.unsaved.is_empty() {
            return;
        }
        let take = self.unsaved.len().min(SAVE_BATCH);
        let batch: Vec<Unsaved> = self.unsaved.drain(..take).collect();
        let rows = batch
            .iter()
            .map(|u| (u.id, u.slot.cell.name().to_owned()))
            .collect();
        self.saving = true;
        let save = self.db.send(SaveTablets { rows });
        ctx.spawn(save.into_actor(self).map(move |saved, act, ctx| {
            act.saving = false;
            let labels = match saved {
                Ok(Ok(labels)) => Ok(labels),
                Ok(Err(e)) => Err(e),
                Err(e) => Err(OlympicsError::Unavailable(format!("database actor: {e}"))),
            };
            for unsaved in batch {
                let outcome = match &labels {
                    Ok(labels) => act.registered(&unsaved, labels),
                    Err(e) => Err(e.clone()),
                };
                if outcome.is_err() {
                    release(&unsaved.slot);
                }
                let _ = unsaved.reply.send(outcome);
            }
            act.save_registrations(ctx);
        }));
    }

    /// A saved registration: the tablet enters the directory.
    fn registered(
        &self,
        unsaved: &Unsaved,
        labels: &HashMap<Uuid, String>,
    ) -> Result<TabletAssignment, OlympicsError> {
        let label = labels
            .get(&unsaved.id)
            .cloned()
            .ok_or_else(|| OlympicsError::Storage("a saved tablet has no label".into()))?;
        let home = if self.is_member(&unsaved.slot) {
            unsaved.slot.id
        } else {
            // Killed while this tablet was saved: it moves like the victim's others.
            release(&unsaved.slot);
            self.rehome(unsaved.id)
                .ok_or_else(|| OlympicsError::Unavailable("no front-end server is alive".into()))?
        };
        self.tablets
            .insert(unsaved.id, Home::new(home, label.as_str().into()));
        let frontend = self.frontends.iter().find(|s| s.id == home).map_or_else(
            || unsaved.slot.cell.name().to_owned(),
            |s| s.cell.name().to_owned(),
        );
        tracing::debug!(actor = self.cell.name(), tablet = %label, frontend = %frontend, "dispatcher assigned tablet {label} to {frontend}");
        Ok(TabletAssignment {
            id: unsaved.id,
            frontend,
            label,
        })
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
                if let Some(home) = act.tablets.remove(&id)
                    && let Some(slot) = act.frontends.iter().find(|s| s.id == home)
                {
                    release(slot);
                }
                tracing::info!(actor = act.cell.name(), "dispatcher unregistered a tablet");
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
        if self.frontends.len() >= self.max_frontends {
            return Err(OlympicsError::Full {
                what: "front-ends",
                limit: self.max_frontends,
            });
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
        // Its tablets go to the least loaded of the others (one pass over the tablets: a kill
        // is rare, registrations are not).
        let moved = std::cell::Cell::new(0usize);
        self.tablets.rehome(victim.id, |id| {
            moved.set(moved.get() + 1);
            self.rehome(id)
        });
        victim.tablets.store(0, Ordering::Relaxed);
        tracing::info!(
            actor = self.cell.name(),
            tablets = moved.get(),
            "{} tablets of {} moved",
            moved.get(),
            victim.cell.name()
        );
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
