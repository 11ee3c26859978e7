-- One score update over six games, no global order: update the game's row, log the update.
\set game random(1, 6)
\set points random(0, 1000)
BEGIN;
UPDATE raw_games SET points = :points, version = version + 1 WHERE id = :game;
INSERT INTO raw_log (game, points) VALUES (:game, :points);
END;
