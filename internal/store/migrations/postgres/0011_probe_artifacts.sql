-- Files kept with failed probe runs (a browser probe's screenshot and
-- console log), outside the result's details. An artifact belongs to the
-- result with the same (service, probe, location, started_at); the
-- result's details refer to it by id. data is at most a per-kind limit:
-- size is the size before truncation and truncated says whether data was
-- cut; sha256 is of data as stored. Artifacts go with their raw results
-- when the rollup folds those away, and only the newest failures of each
-- probe keep theirs.
CREATE TABLE probe_artifacts (
    id           BIGSERIAL PRIMARY KEY,
    service      TEXT NOT NULL,
    probe        TEXT NOT NULL,
    location     TEXT NOT NULL,
    started_at   TEXT NOT NULL,
    name         TEXT NOT NULL,
    kind         TEXT NOT NULL CHECK (kind IN ('screenshot', 'console', 'other')),
    content_type TEXT NOT NULL,
    data         BYTEA NOT NULL,
    size         BIGINT NOT NULL,
    truncated    INTEGER NOT NULL DEFAULT 0,
    sha256       TEXT NOT NULL,
    created_at   TEXT NOT NULL,
    UNIQUE (service, probe, location, started_at, name)
);
CREATE INDEX probe_artifacts_started ON probe_artifacts(started_at);
