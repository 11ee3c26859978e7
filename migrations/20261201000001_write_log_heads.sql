-- The head of every sequenced write log (src/actors/write_log): the last number committed.
-- Each group of writes moves it by compare-and-set in its own transaction, so two processes
-- writing one log cannot fork its order: the second one's group fails instead.
CREATE TABLE write_log_heads (
    log         text PRIMARY KEY,
    last_seq    bigint NOT NULL CHECK (last_seq >= 0)
);
