-- The raw PostgreSQL baseline for reporter writes (scripts/bench.sh): the same work as one
-- score update, without Obelix: one row per game updated and one log row inserted per
-- transaction. In its own database (obelix_raw_bench) of the same server.
DROP TABLE IF EXISTS raw_games, raw_log, raw_sequence;
CREATE TABLE raw_games (id int PRIMARY KEY, points bigint NOT NULL DEFAULT 0, version bigint NOT NULL DEFAULT 0);
INSERT INTO raw_games (id) SELECT generate_series(1, 6);
CREATE TABLE raw_log (id bigserial PRIMARY KEY, game int NOT NULL, points bigint NOT NULL, logged_at timestamptz NOT NULL DEFAULT now());
CREATE TABLE raw_sequence (only_row boolean PRIMARY KEY DEFAULT true, last_seq bigint NOT NULL DEFAULT 0);
INSERT INTO raw_sequence DEFAULT VALUES;
