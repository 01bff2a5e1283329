-- Claims and immediate runs of deferred tasks hold a lease (seconds since the
-- epoch): once it has passed, another worker may take the task over, on this
-- machine or another one sharing the database. NULL on rows claimed before
-- this migration: they are judged by their claimed_at, as before.

ALTER TABLE tasks ADD COLUMN lease_until REAL;
