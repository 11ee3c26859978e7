-- The raw PostgreSQL baseline for bookstore buys (scripts/bookstore_bench.sh): the same work as
-- one buy without Obelix: the stock check and decrement in one conditional UPDATE, and the
-- order recorded (book, title, price paid, who sold it, when). The same seven books as the
-- store's catalog, with stock that does not run out. In its own database (obelix_raw_bench) of
-- the same server.
DROP TABLE IF EXISTS raw_book_orders, raw_books;
CREATE TABLE raw_books (
    id bigint PRIMARY KEY, title text NOT NULL, cost_cents bigint NOT NULL,
    quantity bigint NOT NULL CHECK (quantity >= 0));
INSERT INTO raw_books (id, title, cost_cents, quantity)
    SELECT n, 'book ' || n, 1000 + n, 100000000 FROM generate_series(1, 7) AS n;
CREATE TABLE raw_book_orders (
    id bigserial PRIMARY KEY, book_id bigint NOT NULL REFERENCES raw_books (id),
    title text NOT NULL, price_cents bigint NOT NULL, order_server text NOT NULL,
    ordered_at timestamptz NOT NULL DEFAULT now());
