-- Room reservation (seed 003): the catalogue, the reservations, and the log of every request.
-- The catalogue's order (position) is the order the seed lists it in, and the order replies use.
CREATE TABLE rooms (
    position    int PRIMARY KEY,
    name        text NOT NULL UNIQUE
);
CREATE TABLE timeslots (
    position    int PRIMARY KEY,
    label       text NOT NULL UNIQUE
);
CREATE TABLE days (
    position    int PRIMARY KEY,
    name        text NOT NULL UNIQUE
);
INSERT INTO rooms (position, name) VALUES
    (1, 'SA318'), (2, 'ME4494'), (3, 'SA314'), (4, 'MC5050'), (5, 'ME4326'), (6, 'SA412');
INSERT INTO timeslots (position, label) VALUES
    (1, '8:30-9:30'), (2, '9:30-10:30'), (3, '10:30-11:30'), (4, '11:30-12:30'),
    (5, '12:30-13:30'), (6, '13:30-14:30'), (7, '14:30-15:30'), (8, '15:30-16:30'),
    (9, '16:30-17:30'), (10, '17:30-19:00'), (11, '19:30-21:00');
INSERT INTO days (position, name) VALUES
    (1, 'Monday'), (2, 'Tuesday'), (3, 'Wednesday'), (4, 'Thursday'), (5, 'Friday');

-- The authoritative reservations: the UNIQUE constraint is what forbids double booking.
CREATE TABLE room_reservations (
    id          bigserial PRIMARY KEY,
    room        text NOT NULL REFERENCES rooms (name),
    timeslot    text NOT NULL REFERENCES timeslots (label),
    day         text NOT NULL REFERENCES days (name),
    -- The request that made it (its idempotency key in rooms_request_log).
    request_id  text NOT NULL,
    reserved_at timestamptz NOT NULL DEFAULT now(),
    UNIQUE (room, timeslot, day)
);

-- Every reserve and cancel, numbered by the sequenced write log (src/actors/write_log): the one
-- order in which every room server applies them. `detail` holds the request and its outcome.
CREATE TABLE rooms_request_log (
    seq             bigint PRIMARY KEY,
    kind            text NOT NULL,
    subject         text NOT NULL,
    entered_via     text NOT NULL,
    detail          jsonb NOT NULL,
    idempotency_key text UNIQUE,
    fingerprint     text,
    committed_at    timestamptz NOT NULL DEFAULT now()
);
