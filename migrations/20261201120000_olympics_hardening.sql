-- Olympic service hardening (issue 10).

-- Every reporter update carries an identity that survives re-delivery: the client's
-- Idempotency-Key, or one the ingress gave it. The write log keeps it in update_log
-- (idempotency_key, and fingerprint: the update itself, to refuse a key reused for another
-- update; migration 20261201000004) and applies each key once.

-- Tablet ids are credentials (they unregister a tablet and read its pushes): the public lists
-- name a tablet by a label, given at registration and never reused.
CREATE SEQUENCE tablet_labels;
ALTER TABLE tablets ADD COLUMN label text NOT NULL DEFAULT 'tablet-' || nextval('tablet_labels');
ALTER TABLE raffle_winners ADD COLUMN tablet_label text;
UPDATE raffle_winners w SET tablet_label = t.label FROM tablets t WHERE t.id = w.tablet_id;

-- The positions the last counted batch of each reporter took, so that a retry of it (its reply
-- was lost) is answered its wins again.
ALTER TABLE raffle_reports ADD COLUMN first_position bigint;
ALTER TABLE raffle_reports ADD COLUMN last_position bigint;
