//! A group of store writes worked out in memory, as applying them one by one would: the stock
//! each buy checks is what the writes before it in the group left, so exactly the buys that
//! fit succeed, in order, and each write's result carries the book as that write left it. The
//! write log's transaction then stores the books' final states and the group's orders in a
//! few statements (see `writes::apply_batch`), instead of two statements per write.

use std::collections::HashMap;

use crate::bookstore::{Book, StoreChange, StoreRefusal};

/// What one write did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Planned {
    /// The book after the write; for a buy, also the index of its order in [`GroupPlan::orders`].
    Done {
        book: Book,
        order: Option<usize>,
    },
    Refused(StoreRefusal),
}

/// An order to record: the book bought, at the price it had then, by whom.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PlannedOrder {
    pub book_id: i64,
    pub title: String,
    pub price_cents: i64,
    pub order_server: String,
}

/// A whole group's outcome.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct GroupPlan {
    /// One per write, in order.
    pub results: Vec<Planned>,
    /// Every changed book's final state, by id (ascending).
    pub changed: Vec<Book>,
    /// The orders, in the order of the buys that made them.
    pub orders: Vec<PlannedOrder>,
}

/// Works out `writes` (book, change, server it entered through) against `stock` (the books the
/// writes name that exist, as the transaction read them).
pub fn plan<'a>(
    stock: impl IntoIterator<Item = Book>,
    writes: impl IntoIterator<Item = (i64, &'a StoreChange, &'a str)>,
) -> GroupPlan {
    let mut books: HashMap<i64, Book> = stock.into_iter().map(|b| (b.id, b)).collect();
    let mut touched: Vec<i64> = Vec::new();
    let mut plan = GroupPlan::default();
    for (id, change, via) in writes {
        let Some(book) = books.get_mut(&id) else {
            plan.results
                .push(Planned::Refused(StoreRefusal::UnknownBook(id)));
            continue;
        };
        let mut order = None;
        match change {
            StoreChange::Buy if book.quantity <= 0 => {
                plan.results
                    .push(Planned::Refused(StoreRefusal::OutOfStock(id)));
                continue;
            }
            StoreChange::Buy => {
                book.quantity -= 1;
                order = Some(plan.orders.len());
                plan.orders.push(PlannedOrder {
                    book_id: id,
                    title: book.title.clone(),
                    price_cents: book.cost_cents,
                    order_server: via.to_owned(),
                });
            }
            StoreChange::Restock { copies } => book.quantity += copies,
            StoreChange::SetCost { cents } => book.cost_cents = *cents,
        }
        if !touched.contains(&id) {
            touched.push(id);
        }
        plan.results.push(Planned::Done {
            book: book.clone(),
            order,
        });
    }
    touched.sort_unstable();
    plan.changed = touched
        .into_iter()
        .filter_map(|id| books.remove(&id))
        .collect();
    plan
}

#[cfg(test)]
mod tests {
    use super::*;

    fn book(id: i64, quantity: i64) -> Book {
        Book {
            id,
            title: format!("book {id}"),
            topic: "t".into(),
            cost_cents: 100 * id,
            quantity,
            version: 0,
        }
    }

    fn quantities(plan: &GroupPlan) -> Vec<Option<i64>> {
        plan.results
            .iter()
            .map(|r| match r {
                Planned::Done { book, .. } => Some(book.quantity),
                Planned::Refused(_) => None,
            })
            .collect()
    }

    #[test]
    fn exactly_the_buys_that_fit_succeed_in_order() {
        let buy = StoreChange::Buy;
        let writes = (0..5).map(|_| (1, &buy, "order-1"));
        let plan = plan([book(1, 3)], writes);
        assert_eq!(quantities(&plan), [Some(2), Some(1), Some(0), None, None]);
        assert_eq!(
            plan.results[3],
            Planned::Refused(StoreRefusal::OutOfStock(1))
        );
        assert_eq!(plan.orders.len(), 3);
        assert_eq!(plan.changed, vec![book(1, 0)]);
    }

    #[test]
    fn a_restock_in_the_group_lets_the_buys_after_it_succeed() {
        let (buy, restock) = (StoreChange::Buy, StoreChange::Restock { copies: 1 });
        let writes = [
            (1, &buy, "a"),
            (1, &buy, "b"),
            (1, &restock, "m"),
            (1, &buy, "c"),
        ];
        let plan = plan([book(1, 1)], writes);
        assert_eq!(quantities(&plan), [Some(0), None, Some(1), Some(0)]);
        let servers: Vec<&str> = plan
            .orders
            .iter()
            .map(|o| o.order_server.as_str())
            .collect();
        assert_eq!(servers, ["a", "c"]);
        assert_eq!(
            plan.results[3],
            Planned::Done {
                book: book(1, 0),
                order: Some(1)
            }
        );
    }

    #[test]
    fn a_buy_pays_the_cost_set_before_it_in_the_group() {
        let (buy, cost) = (StoreChange::Buy, StoreChange::SetCost { cents: 999 });
        let plan = plan(
            [book(2, 5)],
            [(2, &buy, "a"), (2, &cost, "m"), (2, &buy, "b")],
        );
        let prices: Vec<i64> = plan.orders.iter().map(|o| o.price_cents).collect();
        assert_eq!(prices, [200, 999]);
        assert_eq!(plan.changed[0].cost_cents, 999);
        assert_eq!(plan.changed[0].quantity, 3);
    }

    #[test]
    fn unknown_books_are_refused_and_untouched_books_are_not_written() {
        let buy = StoreChange::Buy;
        let plan = plan([book(1, 0), book(2, 1)], [(9, &buy, "a"), (1, &buy, "a")]);
        assert_eq!(
            plan.results,
            [
                Planned::Refused(StoreRefusal::UnknownBook(9)),
                Planned::Refused(StoreRefusal::OutOfStock(1))
            ]
        );
        assert!(plan.changed.is_empty() && plan.orders.is_empty());
    }
}
