-- The Olympic updates go through the shared sequenced write log (src/actors/write_log): it
-- numbers them in memory, commits them in groups and keeps their idempotency keys in the log
-- itself; the last number moves from update_sequence to write_log_heads ('update_log').
ALTER TABLE update_log
    ADD COLUMN idempotency_key text UNIQUE,
    -- What a retry with the same key must match (the update's content).
    ADD COLUMN fingerprint text;

INSERT INTO write_log_heads (log, last_seq)
    SELECT 'update_log', GREATEST(s.last_seq, COALESCE((SELECT max(seq) FROM update_log), 0))
    FROM update_sequence s;

DROP TABLE update_sequence;
