-- One buy of one of the seven books: the conditional decrement, then the order row, in one
-- transaction (what a buy's write does in Obelix, without the log and the replicas).
\set book random(1, 7)
BEGIN;
UPDATE raw_books SET quantity = quantity - 1 WHERE id = :book AND quantity > 0 RETURNING cost_cents AS price \gset
INSERT INTO raw_book_orders (book_id, title, price_cents, order_server)
    SELECT id, title, :price, 'pgbench' FROM raw_books WHERE id = :book;
END;
