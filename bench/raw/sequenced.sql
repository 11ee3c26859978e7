-- The same with one global order: each transaction takes the next number of a sequence row
-- (held until its commit), as Obelix did before its write log.
\set game random(1, 6)
\set points random(0, 1000)
BEGIN;
UPDATE raw_games SET points = :points, version = version + 1 WHERE id = :game;
UPDATE raw_sequence SET last_seq = last_seq + 1;
INSERT INTO raw_log (game, points) VALUES (:game, :points);
END;
