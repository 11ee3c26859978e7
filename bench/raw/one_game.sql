-- Every update on one game, no global order (the game's row lock orders them).
\set points random(0, 1000)
BEGIN;
UPDATE raw_games SET points = :points, version = version + 1 WHERE id = 1;
INSERT INTO raw_log (game, points) VALUES (1, :points);
END;
