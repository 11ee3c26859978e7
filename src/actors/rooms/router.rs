//! What the ingress uses to reach the room servers.
//!
//! - Writes (reserve, cancel) get a request id (the client's `Idempotency-Key` or a new UUID),
//!   wait on the reply board, and go through the request log, which numbers them, lets
//!   PostgreSQL decide, and multicasts them to every server; the leader's answer comes back
//!   through the board. A retry the log answers from its first time is answered again by the
//!   leader. While the group has no leader a request waits (up to `rooms.request_timeout_ms`):
//!   the new leader answers it.
//! - Reads go to the server that leads, once it has applied every write acknowledged so far;
//!   if it dies they go to the next leader. A client sees a delay, never an error, unless no
//!   server is up at all (503 with Retry-After).

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use serde::Serialize;
use tokio::time::Instant;

use super::replies::Answered;
use super::server::{
    DescribeServer, NotServing, Query, Read, ReadAnswer, Reanswer, Served, ServerView,
};
use super::{RoomsShared, ServerSlot};
use crate::actors::lifecycle::{Crash, CrashMode};
use crate::actors::write_log::{Submit, WriteError};
use crate::rooms::store::RoomWrite;
use crate::rooms::{Catalog, Outcome, Request, RoomsError};

/// How long the ingress waits before asking again while the group elects or catches up.
const RETRY_PAUSE: Duration = Duration::from_millis(5);
/// How long one server may take to answer a read or a description.
const SERVER_DEADLINE: Duration = Duration::from_millis(1_000);

/// `GET /rooms/servers`.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct ServersView {
    pub servers: Vec<ServerView>,
    /// Requests that received a second reply (a bug if ever above 0).
    pub duplicate_replies: u64,
}

#[derive(Clone)]
pub struct RoomsRouter {
    shared: Arc<RoomsShared>,
}

impl RoomsRouter {
    pub fn new(shared: Arc<RoomsShared>) -> Self {
        Self { shared }
    }

    pub fn catalog(&self) -> &Catalog {
        &self.shared.catalog
    }

    fn any_alive(&self) -> bool {
        self.shared.servers().iter().any(|s| s.is_alive())
    }

    /// The live servers, and the one that leads and is caught up (ready to reply), for
    /// `/readyz`.
    pub fn serving(&self) -> (usize, Option<String>) {
        let alive = self
            .shared
            .servers()
            .iter()
            .filter(|s| s.is_alive())
            .count();
        (alive, self.leader().map(|s| s.cell.name().to_owned()))
    }

    /// The live server that says it leads, if any (the highest if two do).
    fn leader(&self) -> Option<Arc<ServerSlot>> {
        self.shared
            .servers()
            .into_iter()
            .filter(|s| s.is_alive() && s.leads.load(Ordering::Acquire))
            .max_by_key(|s| s.id)
    }

    /// A read, from the leader's replica.
    pub async fn read(&self, query: Query) -> Result<Served<ReadAnswer>, RoomsError> {
        if let Query::Check(room) = &query {
            self.shared.catalog.room(room)?;
        }
        let deadline = Instant::now() + self.shared.settings.request_timeout();
        loop {
            if !self.any_alive() {
                return Err(RoomsError::NoServer);
            }
            if let Some(leader) = self.leader() {
                let read = Read {
                    query: query.clone(),
                    min_seq: self.shared.committed(),
                };
                let read = crate::actors::traced::Traced::new(read);
                match leader.addr.send(read).timeout(SERVER_DEADLINE).await {
                    Ok(Ok(served)) => return Ok(served),
                    Ok(Err(NotServing::NotLeader | NotServing::Behind)) | Err(_) => {}
                }
            }
            if Instant::now() >= deadline {
                return Err(RoomsError::Unavailable(
                    "no room server leads yet; retry shortly".into(),
                ));
            }
            actix_rt::time::sleep(RETRY_PAUSE).await;
        }
    }

    /// A reservation of `room` (checked against the catalogue).
    pub async fn reserve(
        &self,
        room: &str,
        body: crate::rooms::ReservationRequest,
        key: Option<String>,
    ) -> Result<Served<crate::rooms::Reservation>, RoomsError> {
        let request = self.shared.catalog.reserve(room, body)?;
        self.write(request, key).await
    }

    pub async fn cancel(
        &self,
        id: i64,
        key: Option<String>,
    ) -> Result<Served<crate::rooms::Reservation>, RoomsError> {
        self.write(Request::Cancel { id }, key).await
    }

    /// A write through the log, answered by the leader.
    async fn write(
        &self,
        request: Request,
        key: Option<String>,
    ) -> Result<Served<crate::rooms::Reservation>, RoomsError> {
        if !self.any_alive() {
            return Err(RoomsError::NoServer);
        }
        let request_id = key.unwrap_or_else(|| uuid::Uuid::new_v4().to_string());
        let board = &self.shared.board;
        let waiter = board.register(&request_id)?;
        let write = RoomWrite {
            request_id: request_id.clone(),
            request,
            entered_via: "rooms-ingress".into(),
        };
        let deadline = Instant::now() + self.shared.settings.request_timeout();
        let submit = crate::actors::traced::Traced::new(Submit(write));
        let logged = match self.shared.log.send(submit).await {
            Ok(Ok(sequenced)) => sequenced,
            Ok(Err(e)) => {
                drop(waiter);
                board.forget(&request_id);
                return Err(match e {
                    WriteError::IdempotencyConflict(key) => RoomsError::IdempotencyConflict(key),
                    WriteError::Overloaded(n) => {
                        RoomsError::Unavailable(format!("{n} requests wait for the log"))
                    }
                    WriteError::Storage | WriteError::Rejected(_) => RoomsError::Storage,
                });
            }
            Err(_) => {
                drop(waiter);
                board.forget(&request_id);
                return Err(RoomsError::Storage);
            }
        };
        self.shared
            .committed
            .fetch_max(logged.seq, Ordering::AcqRel);
        if logged.replayed {
            // Not multicast again: the leader answers it from what the log kept.
            self.reanswer(&request_id, logged.applied.outcome.clone(), deadline)
                .await;
        }
        let answered = tokio::time::timeout_at(deadline, waiter).await;
        match answered {
            Ok(Ok(Answered { by, outcome })) => {
                outcome.into_result().map(|value| Served { by, value })
            }
            _ => {
                board.forget(&request_id);
                Err(if self.any_alive() {
                    RoomsError::Unavailable(format!(
                        "request {request_id} (#{}) got no reply in time; retry with the same Idempotency-Key",
                        logged.seq
                    ))
                } else {
                    RoomsError::NoServer
                })
            }
        }
    }

    /// Asks the leader (the next one if it dies) to answer a replayed request.
    async fn reanswer(&self, request_id: &str, outcome: Outcome, deadline: Instant) {
        while Instant::now() < deadline {
            if let Some(leader) = self.leader() {
                let ask = Reanswer {
                    request_id: request_id.to_owned(),
                    outcome: outcome.clone(),
                };
                if let Ok(true) = leader.addr.send(ask).timeout(SERVER_DEADLINE).await {
                    return;
                }
            }
            if !self.any_alive() {
                return;
            }
            actix_rt::time::sleep(RETRY_PAUSE).await;
        }
    }

    /// Every server's view, and the duplicate replies counted.
    pub async fn servers(&self) -> ServersView {
        let mut servers = Vec::new();
        for slot in self.shared.servers() {
            let described = if slot.is_alive() {
                slot.addr
                    .send(DescribeServer)
                    .timeout(SERVER_DEADLINE)
                    .await
                    .ok()
            } else {
                None
            };
            servers.push(described.unwrap_or_else(|| ServerView {
                id: slot.id,
                name: slot.cell.name().to_owned(),
                alive: false,
                ready: false,
                leader: None,
                electing: false,
                applied: 0,
                reservations: 0,
                digest: String::new(),
            }));
        }
        servers.sort_by_key(|s| s.id);
        ServersView {
            servers,
            duplicate_replies: self.shared.board.duplicates(),
        }
    }

    /// Starts one more server with id `id`.
    pub async fn add_server(&self, id: u64) -> Result<String, RoomsError> {
        if id == 0 {
            return Err(RoomsError::Invalid {
                field: "id",
                message: "a server id is at least 1 (0 means the initial election)".into(),
            });
        }
        self.shared.spawn_server(id).await
    }

    /// Kills server `id`: it crashes and is not restarted (seed 003's killed leader).
    pub fn kill_server(&self, id: u64) -> Result<(), RoomsError> {
        let slot = self
            .shared
            .servers()
            .into_iter()
            .find(|s| s.id == id && s.is_alive())
            .ok_or(RoomsError::UnknownServer(id))?;
        slot.leads.store(false, Ordering::Release);
        slot.cell.kill();
        slot.addr.do_send(Crash {
            mode: CrashMode::Panic,
            stay_down: Duration::ZERO,
        });
        tracing::warn!(
            server = slot.cell.name(),
            "room server {} killed on request",
            slot.cell.name()
        );
        Ok(())
    }
}
