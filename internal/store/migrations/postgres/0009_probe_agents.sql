-- Locations probes run from other than the server itself, one per
-- `steward agent --location NAME`, as their heartbeats last described
-- them. healthy is the agent's own self-check (1 healthy, 0 not); the
-- server also treats a location whose last heartbeat is older than three
-- poll intervals as unhealthy ("stale").
CREATE TABLE probe_locations (
    name             TEXT PRIMARY KEY,
    agent_user       TEXT NOT NULL DEFAULT '',
    version          TEXT NOT NULL DEFAULT '',
    first_seen       TEXT NOT NULL,
    last_seen        TEXT NOT NULL,
    healthy          INTEGER NOT NULL DEFAULT 1 CHECK (healthy IN (0, 1)),
    reason           TEXT NOT NULL DEFAULT '',
    buffered         BIGINT NOT NULL DEFAULT 0,
    dropped          BIGINT NOT NULL DEFAULT 0,
    poll_interval_ms BIGINT NOT NULL DEFAULT 30000
);
-- An agent names each result with a unique id, so that a batch uploaded
-- again (its answer was lost) is stored once. Results of the server's own
-- scheduler have none.
ALTER TABLE probe_results ADD COLUMN uid TEXT;
CREATE UNIQUE INDEX probe_results_uid ON probe_results(uid);
