CREATE TABLE backup_runs (
    id          BIGSERIAL PRIMARY KEY,
    service     TEXT NOT NULL,
    backup      TEXT NOT NULL,
    backup_id   TEXT NOT NULL DEFAULT '',
    method      TEXT NOT NULL,
    state       TEXT NOT NULL,
    actor       TEXT NOT NULL,
    started_at  TEXT NOT NULL,
    finished_at TEXT,
    size_bytes  BIGINT NOT NULL DEFAULT 0,
    error       TEXT NOT NULL DEFAULT '',
    manifest    TEXT NOT NULL DEFAULT '{}'
);
CREATE INDEX backup_runs_service ON backup_runs(service, backup, started_at);

CREATE TABLE drill_runs (
    id            BIGSERIAL PRIMARY KEY,
    service       TEXT NOT NULL,
    drill         TEXT NOT NULL,
    backup_id     TEXT NOT NULL DEFAULT '',
    state         TEXT NOT NULL,
    actor         TEXT NOT NULL,
    started_at    TEXT NOT NULL,
    finished_at   TEXT,
    rto_seconds   DOUBLE PRECISION,
    rpo_seconds   DOUBLE PRECISION,
    rpo_source    TEXT NOT NULL DEFAULT '',
    scratch_label TEXT NOT NULL DEFAULT '',
    error         TEXT NOT NULL DEFAULT '',
    report        TEXT NOT NULL DEFAULT '{}'
);
CREATE INDEX drill_runs_service ON drill_runs(service, drill, started_at);

CREATE TABLE scratch_resources (
    label        TEXT PRIMARY KEY,
    engine       TEXT NOT NULL,
    kind         TEXT NOT NULL,
    location     TEXT NOT NULL,
    created_at   TEXT NOT NULL,
    destroyed_at TEXT
);
