-- Olympic results (seeds 000 and 001): games, teams, scores by game, medal tallies by team.
-- Every table is meant to be read with psql as it is: slugs as keys, plain counts, timestamps.

CREATE TABLE teams (
    slug        text PRIMARY KEY CHECK (slug ~ '^[a-z0-9-]+$'),
    name        text NOT NULL
);

CREATE TABLE games (
    slug        text PRIMARY KEY CHECK (slug ~ '^[a-z0-9-]+$'),
    name        text NOT NULL
);

-- The current score of each team in each game; one row per (game, team).
CREATE TABLE scores (
    game        text NOT NULL REFERENCES games (slug),
    team        text NOT NULL REFERENCES teams (slug),
    points      bigint NOT NULL DEFAULT 0 CHECK (points >= 0),
    updated_at  timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (game, team)
);

-- The medal tally of each team.
CREATE TABLE medal_tallies (
    team        text PRIMARY KEY REFERENCES teams (slug),
    gold        integer NOT NULL DEFAULT 0 CHECK (gold >= 0),
    silver      integer NOT NULL DEFAULT 0 CHECK (silver >= 0),
    bronze      integer NOT NULL DEFAULT 0 CHECK (bronze >= 0),
    updated_at  timestamptz NOT NULL DEFAULT now()
);

-- Every medal ever awarded, in order. A retried award carries the same idempotency key and is
-- found here instead of counted twice.
CREATE TABLE medal_awards (
    id              bigserial PRIMARY KEY,
    team            text NOT NULL REFERENCES teams (slug),
    medal           text NOT NULL CHECK (medal IN ('gold', 'silver', 'bronze')),
    idempotency_key text UNIQUE,
    awarded_at      timestamptz NOT NULL DEFAULT now()
);

-- Tablets registered with the dispatcher, and the front-end each was assigned to.
CREATE TABLE tablets (
    id              uuid PRIMARY KEY,
    frontend        text NOT NULL,
    registered_at   timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX tablets_by_frontend ON tablets (frontend);

INSERT INTO teams (slug, name) VALUES
    ('gauls', 'Gauls'),
    ('romans', 'Romans');

INSERT INTO games (slug, name) VALUES
    ('curling', 'Curling'),
    ('skating', 'Skating'),
    ('skiing', 'Skiing'),
    ('biathlon', 'Biathlon'),
    ('bobsleigh', 'Bobsleigh'),
    ('boar-hunting', 'Boar hunting');

INSERT INTO scores (game, team, updated_at)
    SELECT g.slug, t.slug, now() FROM games g CROSS JOIN teams t;

INSERT INTO medal_tallies (team) SELECT slug FROM teams;
