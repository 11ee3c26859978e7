-- The Pygmy.com bookstore (seed 002, issue 12).
--
-- bookstore_stock is the one authority for stock and cost: every write (buy, restock, cost
-- change) changes it inside the transaction of its group in the write log, so a buy's stock
-- check and decrement are one conditional UPDATE and nothing is ever oversold. The catalog
-- replicas (bookstore_catalog_1, _2, ... created by the replicas themselves, possibly in another
-- PostgreSQL server) are copies fed from the log.
CREATE TABLE bookstore_stock (
    id          bigint PRIMARY KEY,
    title       text NOT NULL,
    topic       text NOT NULL,
    cost_cents  bigint NOT NULL CHECK (cost_cents > 0),
    quantity    bigint NOT NULL CHECK (quantity >= 0)
);

-- Every order: the book, the price paid, when, and which order server sold it.
CREATE TABLE bookstore_orders (
    id            bigserial PRIMARY KEY,
    book_id       bigint NOT NULL REFERENCES bookstore_stock (id),
    title         text NOT NULL,
    price_cents   bigint NOT NULL,
    order_server  text NOT NULL,
    ordered_at    timestamptz NOT NULL DEFAULT now()
);

-- The store's sequenced write log (src/actors/write_log): one numbered entry per write, with
-- the book's state after it (replicas replay it to catch up).
CREATE TABLE bookstore_write_log (
    seq              bigint PRIMARY KEY,
    kind             text NOT NULL,
    subject          text NOT NULL,
    entered_via      text NOT NULL,
    detail           jsonb NOT NULL,
    idempotency_key  text UNIQUE,
    fingerprint      text,
    committed_at     timestamptz NOT NULL DEFAULT now()
);

INSERT INTO bookstore_stock (id, title, topic, cost_cents, quantity) VALUES
    (1, 'How to get a good grade in 677 in 20 minutes a day', 'distributed systems', 1999, 100),
    (2, 'RPCs for Dummies', 'distributed systems', 2450, 100),
    (3, 'Xen and the Art of Surviving Graduate School', 'graduate school', 1500, 100),
    (4, 'Cooking for the Impatient Graduate Student', 'graduate school', 1250, 100),
    (5, 'How to finish Project 3 on time', 'graduate school', 3000, 50),
    (6, 'Why theory classes are so hard', 'graduate school', 1799, 50),
    (7, 'Spring in the Pioneer Valley', 'graduate school', 900, 50);
