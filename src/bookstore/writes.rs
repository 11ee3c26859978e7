//! The store's writes as the write log applies them to the authority, `bookstore_stock`.
//!
//! Alone, each write checks and changes in one conditional statement (a buy is
//! `UPDATE … SET quantity = quantity - 1 WHERE id = $1 AND quantity > 0 RETURNING …`), so two
//! buyers can never both take the last copy, whichever order servers they came through. A
//! group of writes (the log's [`SequencedWrite::apply_batch`]) locks its books' rows, works the
//! group out in memory in order ([`group_plan`](crate::bookstore::group_plan): exactly the
//! buys that fit succeed), and writes the final stock and every order in four statements in
//! all, instead of two per write. A refused write (unknown book, out of stock) changes nothing
//! and takes no number. Each entry carries the book's whole state after the write, so replicas
//! apply entries by overwriting, which makes replaying an entry twice harmless.

use futures_util::future::BoxFuture;
use serde::{Deserialize, Serialize};
use sqlx::PgConnection;

use crate::actors::write_log::{BatchResult, LogTable, SequencedWrite};
use crate::bookstore::group_plan::{self, Planned};
use crate::bookstore::{Book, Order};
pub use crate::bookstore::{StoreChange, StoreRefusal};

/// The store's write log.
pub const STORE_LOG: LogTable = LogTable {
    name: "bookstore_write_log",
};

/// One write, as it enters the log.
#[derive(Debug, Clone)]
pub struct StoreWrite {
    pub book: i64,
    pub change: StoreChange,
    /// The server the write entered through (the order server for buys).
    pub via: String,
    pub key: Option<String>,
}

/// A committed write: the book after it (and the order, for a buy).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum StoreEntry {
    Bought { book: Book, order: Order },
    Restocked { book: Book, copies: i64 },
    CostChanged { book: Book },
}

impl StoreEntry {
    pub fn book(&self) -> &Book {
        match self {
            StoreEntry::Bought { book, .. }
            | StoreEntry::Restocked { book, .. }
            | StoreEntry::CostChanged { book } => book,
        }
    }
}

type BookRow = (i64, String, String, i64, i64);

fn book_of((id, title, topic, cost_cents, quantity): BookRow) -> Book {
    Book {
        id,
        title,
        topic,
        cost_cents,
        quantity,
        version: 0,
    }
}

const RETURNING: &str = "RETURNING id, title, topic, cost_cents, quantity";

impl StoreWrite {
    async fn apply_in(
        &self,
        tx: &mut PgConnection,
    ) -> Result<Result<StoreEntry, StoreRefusal>, sqlx::Error> {
        let statement = match &self.change {
            StoreChange::Buy => format!(
                "UPDATE bookstore_stock SET quantity = quantity - 1 WHERE id = $1 AND quantity > 0 {RETURNING}"
            ),
            StoreChange::Restock { .. } => format!(
                "UPDATE bookstore_stock SET quantity = quantity + $2 WHERE id = $1 {RETURNING}"
            ),
            StoreChange::SetCost { .. } => {
                format!("UPDATE bookstore_stock SET cost_cents = $2 WHERE id = $1 {RETURNING}")
            }
        };
        let argument = match self.change {
            StoreChange::Buy => 0,
            StoreChange::Restock { copies } => copies,
            StoreChange::SetCost { cents } => cents,
        };
        let row: Option<BookRow> = sqlx::query_as(sqlx::AssertSqlSafe(statement))
            .bind(self.book)
            .bind(argument)
            .fetch_optional(&mut *tx)
            .await?;
        let Some(row) = row else {
            let exists: Option<i64> =
                sqlx::query_scalar("SELECT id FROM bookstore_stock WHERE id = $1")
                    .bind(self.book)
                    .fetch_optional(&mut *tx)
                    .await?;
            return Ok(Err(match (exists, &self.change) {
                (Some(_), StoreChange::Buy) => StoreRefusal::OutOfStock(self.book),
                _ => StoreRefusal::UnknownBook(self.book),
            }));
        };
        let book = book_of(row);
        Ok(Ok(match self.change {
            StoreChange::Buy => {
                let (id, ordered_at) = sqlx::query_as(
                    "INSERT INTO bookstore_orders (book_id, title, price_cents, order_server) \
                     VALUES ($1, $2, $3, $4) RETURNING id, ordered_at",
                )
                .bind(book.id)
                .bind(&book.title)
                .bind(book.cost_cents)
                .bind(&self.via)
                .fetch_one(&mut *tx)
                .await?;
                let order = Order {
                    id,
                    book_id: book.id,
                    title: book.title.clone(),
                    price_cents: book.cost_cents,
                    order_server: self.via.clone(),
                    ordered_at,
                };
                StoreEntry::Bought { book, order }
            }
            StoreChange::Restock { copies } => StoreEntry::Restocked { book, copies },
            StoreChange::SetCost { .. } => StoreEntry::CostChanged { book },
        }))
    }
}

impl SequencedWrite for StoreWrite {
    type Applied = StoreEntry;
    type Rejected = StoreRefusal;

    fn apply<'c>(
        &'c self,
        tx: &'c mut PgConnection,
    ) -> BoxFuture<'c, Result<Result<StoreEntry, StoreRefusal>, sqlx::Error>> {
        Box::pin(self.apply_in(tx))
    }

    fn apply_batch<'c>(
        writes: &'c [&'c Self],
        tx: &'c mut PgConnection,
    ) -> BoxFuture<'c, BatchResult<Self>> {
        Box::pin(apply_group(writes, tx))
    }

    fn describe(applied: &StoreEntry) -> (&'static str, String) {
        let kind = match applied {
            StoreEntry::Bought { .. } => "buy",
            StoreEntry::Restocked { .. } => "restock",
            StoreEntry::CostChanged { .. } => "cost",
        };
        (kind, applied.book().id.to_string())
    }

    fn entered_via(&self) -> &str {
        &self.via
    }

    fn idempotency_key(&self) -> Option<&str> {
        self.key.as_deref()
    }

    fn fingerprint(&self) -> String {
        format!("{}:{:?}", self.book, self.change)
    }
}

/// A group of writes in at most four statements: lock and read the books it names, work it
/// out in memory ([`group_plan::plan`]), store every changed book's final state, number and
/// record the orders. One result per write, in order, as applying them one by one gives.
async fn apply_group(writes: &[&StoreWrite], tx: &mut PgConnection) -> BatchResult<StoreWrite> {
    let mut ids: Vec<i64> = writes.iter().map(|w| w.book).collect();
    ids.sort_unstable();
    ids.dedup();
    let stock: Vec<BookRow> = sqlx::query_as(
        "SELECT id, title, topic, cost_cents, quantity FROM bookstore_stock \
         WHERE id = ANY($1) ORDER BY id FOR UPDATE",
    )
    .bind(&ids)
    .fetch_all(&mut *tx)
    .await?;
    let plan = group_plan::plan(
        stock.into_iter().map(book_of),
        writes.iter().map(|w| (w.book, &w.change, w.via.as_str())),
    );
    if !plan.changed.is_empty() {
        let ids: Vec<i64> = plan.changed.iter().map(|b| b.id).collect();
        let costs: Vec<i64> = plan.changed.iter().map(|b| b.cost_cents).collect();
        let quantities: Vec<i64> = plan.changed.iter().map(|b| b.quantity).collect();
        sqlx::query(
            "UPDATE bookstore_stock s SET cost_cents = u.cost_cents, quantity = u.quantity \
             FROM unnest($1::bigint[], $2::bigint[], $3::bigint[]) AS u(id, cost_cents, quantity) \
             WHERE s.id = u.id",
        )
        .bind(&ids)
        .bind(&costs)
        .bind(&quantities)
        .execute(&mut *tx)
        .await?;
    }
    let mut numbered: Vec<(i64, chrono::DateTime<chrono::Utc>)> = Vec::new();
    if !plan.orders.is_empty() {
        // The orders' ids, taken in advance so each buy knows its own (in buy order).
        numbered = sqlx::query_as(
            "SELECT nextval(pg_get_serial_sequence('bookstore_orders', 'id')), now() \
             FROM generate_series(1, $1)",
        )
        .bind(plan.orders.len() as i64)
        .fetch_all(&mut *tx)
        .await?;
        numbered.sort_unstable();
        let orders = &plan.orders;
        let ids: Vec<i64> = numbered.iter().map(|(id, _)| *id).collect();
        let at: Vec<_> = numbered.iter().map(|(_, at)| *at).collect();
        let books: Vec<i64> = orders.iter().map(|o| o.book_id).collect();
        let titles: Vec<&str> = orders.iter().map(|o| o.title.as_str()).collect();
        let prices: Vec<i64> = orders.iter().map(|o| o.price_cents).collect();
        let servers: Vec<&str> = orders.iter().map(|o| o.order_server.as_str()).collect();
        sqlx::query(
            "INSERT INTO bookstore_orders (id, book_id, title, price_cents, order_server, ordered_at) \
             SELECT * FROM unnest($1::bigint[], $2::bigint[], $3::text[], $4::bigint[], $5::text[], $6::timestamptz[])",
        )
        .bind(&ids)
        .bind(&books)
        .bind(&titles)
        .bind(&prices)
        .bind(&servers)
        .bind(&at)
        .execute(&mut *tx)
        .await?;
    }
    Ok(plan
        .results
        .into_iter()
        .zip(writes)
        .map(|(planned, write)| match planned {
            Planned::Refused(refusal) => Err(refusal),
            // A buy that succeeded has an order; the other writes have none.
            Planned::Done { book, order } => Ok(match (order, &write.change) {
                (Some(i), _) => {
                    let (planned, (id, ordered_at)) = (&plan.orders[i], numbered[i]);
                    let order = Order {
                        id,
                        book_id: planned.book_id,
                        title: planned.title.clone(),
                        price_cents: planned.price_cents,
                        order_server: planned.order_server.clone(),
                        ordered_at,
                    };
                    StoreEntry::Bought { book, order }
                }
                (None, StoreChange::Restock { copies }) => StoreEntry::Restocked {
                    book,
                    copies: *copies,
                },
                (None, _) => StoreEntry::CostChanged { book },
            }),
        })
        .collect())
}

/// An order as recorded.
pub async fn read_order(pool: &sqlx::PgPool, id: i64) -> Result<Option<Order>, sqlx::Error> {
    let row: Option<(i64, i64, String, i64, String, chrono::DateTime<chrono::Utc>)> =
        sqlx::query_as(
            "SELECT id, book_id, title, price_cents, order_server, ordered_at \
             FROM bookstore_orders WHERE id = $1",
        )
        .bind(id)
        .fetch_optional(pool)
        .await?;
    Ok(row.map(
        |(id, book_id, title, price_cents, order_server, ordered_at)| Order {
            id,
            book_id,
            title,
            price_cents,
            order_server,
            ordered_at,
        },
    ))
}
