-- A version per game (its scores) and per team (its medal tally), bumped by every write in the
-- same transaction. Writers of one game or team queue on its row, so versions are the commit
-- order: pushes to tablets are ordered by them and caches compare them.
ALTER TABLE games ADD COLUMN version bigint NOT NULL DEFAULT 0;
ALTER TABLE medal_tallies ADD COLUMN version bigint NOT NULL DEFAULT 0;
