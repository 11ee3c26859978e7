//! An order server (`bookstore-order-<n>`): sells books. A buy goes through the store's write
//! log, whose transaction checks and decrements the stock in one conditional statement and
//! records the order (book, price paid, time, this server), so no two buyers get the last
//! copy; the buyer is answered once every live catalog replica applied it (see
//! [`WritePath`]). Order servers also read recorded orders. They hold no state of their own,
//! so a restarted one simply goes on; the front end retries a buy that a crash interrupted on
//! the other one, with the same idempotency key, so it counts once.

use std::sync::{Arc, OnceLock};
use std::time::Duration;

use actix::prelude::*;
use sqlx::PgPool;

use crate::actors::bookstore::messages::{BackEnd, Heartbeat, PlaceOrder, ReadOrder, Sold};
use crate::actors::bookstore::write_path::WritePath;
use crate::actors::supervisor::ActorCell;
use crate::bookstore::writes::{StoreChange, StoreEntry, StoreWrite, read_order};
use crate::bookstore::{BookstoreError, Order};

pub struct OrderServer {
    index: usize,
    cell: Arc<ActorCell>,
    path: WritePath,
    pool: PgPool,
    heartbeats: Arc<OnceLock<Recipient<Heartbeat>>>,
    heartbeat_interval: Duration,
}

impl OrderServer {
    pub fn new(
        index: usize,
        cell: Arc<ActorCell>,
        path: WritePath,
        pool: PgPool,
        heartbeats: Arc<OnceLock<Recipient<Heartbeat>>>,
        heartbeat_interval: Duration,
    ) -> Self {
        Self {
            index,
            cell,
            path,
            pool,
            heartbeats,
            heartbeat_interval,
        }
    }
}

impl Actor for OrderServer {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Self::Context) {
        tracing::info!(server = self.cell.name(), "{} started", self.cell.name());
        let index = self.index;
        ctx.run_interval(self.heartbeat_interval, move |act, _| {
            if let Some(front_end) = act.heartbeats.get() {
                front_end.do_send(Heartbeat(BackEnd::OrderServer(index)));
            }
        });
    }
}

impl actix::Supervised for OrderServer {}

crate::supervised_actor_handlers!(OrderServer);

crate::traced_handler!(OrderServer, PlaceOrder);
crate::traced_handler!(OrderServer, ReadOrder);

impl Handler<PlaceOrder> for OrderServer {
    type Result = ResponseFuture<Result<Sold, BookstoreError>>;

    fn handle(&mut self, msg: PlaceOrder, _ctx: &mut Self::Context) -> Self::Result {
        let write = StoreWrite {
            book: msg.book,
            change: StoreChange::Buy,
            via: self.cell.name().to_owned(),
            key: Some(msg.key),
        };
        let (path, name) = (self.path.clone(), self.cell.name().to_owned());
        Box::pin(async move {
            let outcome = path.commit(write).await;
            match &outcome {
                Ok(sequenced) => {
                    if let StoreEntry::Bought { order, book } = &sequenced.applied {
                        tracing::info!(server = %name, book = book.id, order = order.id, seq = sequenced.seq, replayed = sequenced.replayed, left = book.quantity, "{name} sold book {} (order {}, write #{}, {} left)", book.id, order.id, sequenced.seq, book.quantity);
                    }
                }
                Err(error) => {
                    tracing::info!(server = %name, book = msg.book, error = %error, "{name} did not sell book {}: {error}", msg.book)
                }
            }
            let sequenced = outcome?;
            match sequenced.applied {
                StoreEntry::Bought { order, .. } => Ok(Sold {
                    order,
                    seq: sequenced.seq,
                    replayed: sequenced.replayed,
                }),
                // The key named another kind of write.
                _ => Err(BookstoreError::IdempotencyConflict(String::new())),
            }
        })
    }
}

impl Handler<ReadOrder> for OrderServer {
    type Result = ResponseFuture<Result<Order, BookstoreError>>;

    fn handle(&mut self, ReadOrder(id): ReadOrder, _ctx: &mut Self::Context) -> Self::Result {
        let (pool, name) = (self.pool.clone(), self.cell.name().to_owned());
        Box::pin(async move {
            let order = read_order(&pool, id).await.map_err(|error| {
                tracing::error!(server = %name, order = id, error = %error, "{name} could not read order {id}");
                BookstoreError::Storage
            })?;
            tracing::info!(server = %name, order = id, found = order.is_some(), "{name} read order {id}");
            order.ok_or_else(|| BookstoreError::UnknownOrder(id.to_string()))
        })
    }
}
