-- The log queue (seed 004, issue 5): topics split into partitions, each partition owned by one
-- broker; messages with dense offsets per partition; producers, consumers, consumer groups and
-- the offsets they have read up to. Every table reads as it is in psql.

CREATE TABLE queue_topics (
    id                  serial PRIMARY KEY,
    name                text NOT NULL UNIQUE,
    partitions          integer NOT NULL CHECK (partitions BETWEEN 1 AND 1024),
    -- Retention: messages older than this (ms) or beyond this count per partition are deleted.
    -- NULL keeps them.
    retention_ms        bigint CHECK (retention_ms > 0),
    retention_messages  bigint CHECK (retention_messages > 0),
    created_at          timestamptz NOT NULL DEFAULT now()
);

-- Which broker owns each partition. start_offset is the first offset still kept (retention
-- moves it forward), so a partition emptied by retention never reuses an offset.
CREATE TABLE queue_partitions (
    topic_id        integer NOT NULL REFERENCES queue_topics (id),
    partition       integer NOT NULL CHECK (partition >= 0),
    broker_id       integer NOT NULL,
    start_offset    bigint NOT NULL DEFAULT 0,
    PRIMARY KEY (topic_id, partition)
);

-- The log. Lean on purpose: only the primary key is indexed, rows are only ever inserted (by the
-- owning broker, in offset order) and deleted in bulk by retention.
CREATE TABLE queue_messages (
    topic_id        integer NOT NULL,
    partition       integer NOT NULL,
    "offset"        bigint NOT NULL,
    payload         text NOT NULL,
    produced_at     timestamptz NOT NULL,
    PRIMARY KEY (topic_id, partition, "offset")
);

CREATE TABLE queue_producers (
    id              bigserial PRIMARY KEY,
    created_at      timestamptz NOT NULL DEFAULT now()
);

-- The topics (partition NULL) or single partitions a producer may write to.
CREATE TABLE queue_producer_topics (
    producer_id     bigint NOT NULL REFERENCES queue_producers (id) ON DELETE CASCADE,
    topic_id        integer NOT NULL REFERENCES queue_topics (id),
    partition       integer,
    UNIQUE (producer_id, topic_id)
);

-- group_name NULL: the consumer reads on its own, with its own offsets. Otherwise it shares the
-- work and the offsets of its group. left_at is set when it leaves (DELETE).
CREATE TABLE queue_consumers (
    id              bigserial PRIMARY KEY,
    group_name      text CHECK (group_name <> ''),
    created_at      timestamptz NOT NULL DEFAULT now(),
    left_at         timestamptz
);

CREATE TABLE queue_consumer_topics (
    consumer_id     bigint NOT NULL REFERENCES queue_consumers (id) ON DELETE CASCADE,
    topic_id        integer NOT NULL REFERENCES queue_topics (id),
    partition       integer,
    UNIQUE (consumer_id, topic_id)
);

-- How far each reader has read each partition: the next offset it will get. A reader is
-- 'consumer:<id>' for a consumer on its own, 'group:<name>' for a consumer group.
CREATE TABLE queue_offsets (
    reader          text NOT NULL,
    topic_id        integer NOT NULL,
    partition       integer NOT NULL,
    next_offset     bigint NOT NULL CHECK (next_offset >= 0),
    updated_at      timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (reader, topic_id, partition)
);
