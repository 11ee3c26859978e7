//! The dispatcher's read side: a lock-free snapshot of its routing table, used by the ingress to
//! reach a front-end without a hop through the Dispatcher actor on every request.
//!
//! A request goes to its tablet's front-end, or for anonymous requests to the one the balancing
//! policy picks; when that front-end is down or its mailbox fails, the request moves on to the
//! next live one, so a client never sees a front-end's crash.

use crate::actors::traced::Traced;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use actix::{Addr, Handler, MailboxError, Message};
use arc_swap::ArcSwap;
use uuid::Uuid;

use crate::actors::olympics::dispatcher::{
    AddFrontend, Dispatcher, KillFrontend, RegisterTablet, UnregisterTablet,
};
use crate::actors::olympics::frontend::{Frontend, RecentUpdates};
use crate::actors::olympics::frontend_clocks::{DescribeMember, MemberState};
use crate::actors::olympics::messages::{
    Answer, Command, CommandReply, Query, Read, SequencedUpdate,
};
use crate::actors::olympics::routing_table::RoutingTable;
use crate::coordination::balance::{ServerLoad, candidate_order};
use crate::olympics::{OlympicsError, TabletAssignment};
use crate::settings::BalancingPolicy;

/// One member of the front-end group, for `GET /cluster`.
#[derive(Debug, Clone, serde::Serialize)]
pub struct MemberView {
    pub id: u64,
    pub name: String,
    pub alive: bool,
    pub restarts: u64,
    /// Its own view of the group; absent when it did not answer.
    #[serde(flatten)]
    pub state: Option<MemberState>,
    pub tablets: usize,
    pub in_flight: usize,
}

/// When a message goes on to the next front-end.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Redeliver {
    AfterAnyFailure,
    WhenGone,
}

/// A reply and the front-end that produced it (`X-Served-By`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Served<T> {
    pub by: String,
    pub value: T,
}

#[derive(Clone)]
pub struct Router {
    table: Arc<ArcSwap<RoutingTable>>,
    dispatcher: Addr<Dispatcher>,
    policy: BalancingPolicy,
    round_robin: Arc<AtomicUsize>,
    timeout: Duration,
}

/// Decrements a front-end's in-flight count however the request ends.
struct InFlight<'a>(&'a AtomicUsize);
impl<'a> InFlight<'a> {
    fn enter(counter: &'a AtomicUsize) -> Self {
        counter.fetch_add(1, Ordering::Relaxed);
        Self(counter)
    }
}
impl Drop for InFlight<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::Relaxed);
    }
}

impl Router {
    pub fn new(
        table: Arc<ArcSwap<RoutingTable>>,
        dispatcher: Addr<Dispatcher>,
        policy: BalancingPolicy,
        timeout: Duration,
    ) -> Self {
        Self {
            table,
            dispatcher,
            policy,
            round_robin: Arc::new(AtomicUsize::new(0)),
            timeout,
        }
    }

    /// A read, for `tablet` if it names a registered one. Tried at the next front-end after
    /// any failure: a read can be asked twice.
    pub async fn query(
        &self,
        tablet: Option<Uuid>,
        query: Query,
    ) -> Result<Served<Answer>, OlympicsError> {
        self.deliver(tablet, Read { query, tablet }, Redeliver::AfterAnyFailure)
            .await
    }

    /// A reporter's write. Sent again to the next front-end only when the first is gone (its
    /// mailbox closed): one that merely did not answer in time may still be applying it. Either
    /// way the write's idempotency key makes it count once.
    pub async fn command(&self, command: Command) -> Result<Served<CommandReply>, OlympicsError> {
        self.deliver(None, command, Redeliver::WhenGone).await
    }

    /// The label of tablet `id` (how logs and lists name it), if it is registered.
    pub fn tablet_label(&self, id: Uuid) -> Result<std::sync::Arc<str>, OlympicsError> {
        self.table
            .load()
            .tablets
            .label(&id)
            .ok_or(OlympicsError::UnknownTablet(id))
    }

    /// Every front-end of the group and what it thinks, asked concurrently.
    pub async fn cluster(&self) -> Vec<MemberView> {
        let table = self.table.load_full();
        let asks = table.frontends().iter().map(|slot| async move {
            let state = if slot.cell.is_alive() {
                slot.addr
                    .send(DescribeMember)
                    .timeout(Duration::from_millis(500))
                    .await
                    .ok()
            } else {
                None
            };
            MemberView {
                id: slot.id,
                name: slot.cell.name().to_owned(),
                alive: slot.cell.is_alive(),
                restarts: slot.cell.restarts(),
                state,
                tablets: slot.tablets.load(Ordering::Relaxed),
                in_flight: slot.in_flight.load(Ordering::Relaxed),
            }
        });
        futures_util::future::join_all(asks).await
    }

    /// The updates front-end `id` applied, in the global order.
    pub async fn recent_updates(&self, id: u64) -> Result<Vec<SequencedUpdate>, OlympicsError> {
        let table = self.table.load_full();
        let slot = table
            .frontend(id)
            .ok_or(OlympicsError::UnknownFrontend(id))?;
        slot.addr
            .send(RecentUpdates)
            .timeout(self.timeout)
            .await
            .map_err(|e| OlympicsError::Unavailable(format!("{}: {e}", slot.cell.name())))
    }

    pub async fn add_frontend(
        &self,
        id: u64,
        clock_skew_ms: Option<i64>,
    ) -> Result<String, OlympicsError> {
        self.ask_dispatcher(AddFrontend { id, clock_skew_ms }).await
    }

    pub async fn kill_frontend(&self, id: u64) -> Result<(), OlympicsError> {
        self.ask_dispatcher(KillFrontend { id }).await
    }

    pub async fn register_tablet(&self) -> Result<TabletAssignment, OlympicsError> {
        self.ask_dispatcher(RegisterTablet).await
    }

    pub async fn unregister_tablet(&self, id: Uuid) -> Result<(), OlympicsError> {
        self.ask_dispatcher(UnregisterTablet { id }).await
    }

    /// A request to the Dispatcher; its mailbox failing (a restart) is a 503, not an error 500.
    async fn ask_dispatcher<M, R>(&self, msg: M) -> Result<R, OlympicsError>
    where
        M: Message<Result = Result<R, OlympicsError>> + Send + 'static,
        R: Send + 'static,
        Dispatcher: Handler<M>,
    {
        self.dispatcher
            .send(msg)
            .timeout(self.timeout)
            .await
            .map_err(|e| OlympicsError::Unavailable(format!("dispatcher: {e}")))?
    }

    /// Tries the candidate front-ends in order until one answers. Messages must be safe to
    /// deliver twice (see `Command`): a front-end that crashed mid-request may have done it.
    async fn deliver<M, R>(
        &self,
        tablet: Option<Uuid>,
        msg: M,
        redeliver: Redeliver,
    ) -> Result<Served<R>, OlympicsError>
    where
        M: Message<Result = Result<R, OlympicsError>> + Clone + Send + 'static,
        R: Send + 'static,
        Frontend: Handler<Traced<M>>,
    {
        let table = self.table.load_full();
        // A tablet whose front-end is gone counts as one whose home is down.
        let home = match tablet {
            Some(id) => Some(table.home_of(id)?.unwrap_or(usize::MAX)),
            None => None,
        };
        let loads: Vec<ServerLoad> = table
            .frontends
            .iter()
            .map(|s| ServerLoad {
                alive: s.cell.is_alive(),
                load: s.in_flight.load(Ordering::Relaxed),
            })
            .collect();
        let ticket = match self.policy {
            BalancingPolicy::Random => rand::random::<u32>() as usize,
            _ => self.round_robin.fetch_add(1, Ordering::Relaxed),
        };
        let mut last_error = String::from("no front-end server is alive");
        for index in candidate_order(&loads, home, self.policy, ticket) {
            let slot = &table.frontends[index];
            let _in_flight = InFlight::enter(&slot.in_flight);
            match slot
                .addr
                .send(Traced::new(msg.clone()))
                .timeout(self.timeout)
                .await
            {
                Ok(reply) => {
                    return reply.map(|value| Served {
                        by: slot.cell.name().to_owned(),
                        value,
                    });
                }
                Err(MailboxError::Timeout) if redeliver == Redeliver::WhenGone => {
                    tracing::warn!(
                        frontend = slot.cell.name(),
                        "front-end {} did not answer a write in time; not sending it elsewhere",
                        slot.cell.name()
                    );
                    return Err(OlympicsError::Unavailable(format!(
                        "{}: no answer within {:?}; retry with the same Idempotency-Key",
                        slot.cell.name(),
                        self.timeout
                    )));
                }
                Err(e) => {
                    tracing::warn!(frontend = slot.cell.name(), error = %e, "front-end {} failed a request; trying the next", slot.cell.name());
                    last_error = format!("{}: {e}", slot.cell.name());
                }
            }
        }
        Err(OlympicsError::Unavailable(last_error))
    }
}

impl std::fmt::Debug for Router {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Router")
            .field("policy", &self.policy)
            .finish()
    }
}
