-- The one global order of reporter updates (totally ordered multicast through a sequencer).
-- Each update's transaction takes the next number from update_sequence (its row lock makes
-- writers commit one at a time, so commit order is number order) and logs the update under
-- it. Front-ends apply updates in this order and fetch from here any number they missed.
CREATE TABLE update_sequence (
    only_row    boolean PRIMARY KEY DEFAULT true CHECK (only_row),
    last_seq    bigint NOT NULL DEFAULT 0
);
INSERT INTO update_sequence DEFAULT VALUES;

CREATE TABLE update_log (
    seq          bigint PRIMARY KEY,
    kind         text NOT NULL CHECK (kind IN ('score', 'medal')),
    -- The game (kind 'score') or team (kind 'medal') the update changed.
    subject      text NOT NULL,
    -- The front-end server the reporter's request entered through.
    entered_via  text NOT NULL,
    -- The new scoreboard or medal tally, as the reporter was answered.
    detail       jsonb NOT NULL,
    committed_at timestamptz NOT NULL DEFAULT now()
);

-- The raffle (seed 000): every Nth tablet request, counted across all front-ends, wins.
-- Front-ends report the tablets they served in batches; each batch takes the next run of
-- positions from raffle_counter (row lock: one global order), in the same transaction as its
-- winners are recorded.
CREATE TABLE raffle_counter (
    only_row    boolean PRIMARY KEY DEFAULT true CHECK (only_row),
    requests    bigint NOT NULL DEFAULT 0
);
INSERT INTO raffle_counter DEFAULT VALUES;

CREATE TABLE raffle_winners (
    position    bigint PRIMARY KEY,
    tablet_id   uuid NOT NULL,
    -- The front-end server that served the winning request.
    frontend    text NOT NULL,
    -- N at the time: every N-th request won.
    every       bigint NOT NULL CHECK (every > 0),
    won_at      timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX raffle_winners_by_tablet ON raffle_winners (tablet_id);

-- The last batch counted from each reporting front-end (named anew each time one starts), so
-- that a batch retried after an unknown outcome is counted once.
CREATE TABLE raffle_reports (
    reporter    text PRIMARY KEY,
    last_batch  bigint NOT NULL,
    reported_at timestamptz NOT NULL DEFAULT now()
);
