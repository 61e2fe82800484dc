-- Aggregates of probe results for long-term history: raw results older than
-- a few days are folded into per-minute buckets, and minute buckets older
-- than a month into per-hour buckets. runs counts the runs (up, down, error)
-- and missed the misses; the durations are over the runs.
CREATE TABLE probe_rollups (
    service         TEXT NOT NULL,
    probe           TEXT NOT NULL,
    location        TEXT NOT NULL,
    resolution      TEXT NOT NULL CHECK (resolution IN ('minute', 'hour')),
    bucket_start    TEXT NOT NULL,
    runs            INTEGER NOT NULL DEFAULT 0,
    up              INTEGER NOT NULL DEFAULT 0,
    down            INTEGER NOT NULL DEFAULT 0,
    errors          INTEGER NOT NULL DEFAULT 0,
    missed          INTEGER NOT NULL DEFAULT 0,
    duration_sum_ms INTEGER NOT NULL DEFAULT 0,
    duration_max_ms INTEGER NOT NULL DEFAULT 0,
    PRIMARY KEY (service, probe, location, resolution, bucket_start)
);
CREATE INDEX probe_rollups_bucket ON probe_rollups(resolution, bucket_start);
