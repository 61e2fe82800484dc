CREATE TABLE check_runs (
    id          BIGSERIAL PRIMARY KEY,
    service     TEXT NOT NULL,
    check_name  TEXT NOT NULL,
    database    TEXT NOT NULL,
    status      TEXT NOT NULL,
    violations  BIGINT NOT NULL DEFAULT 0,
    row_count   BIGINT,
    duration_ms BIGINT NOT NULL DEFAULT 0,
    query       TEXT NOT NULL DEFAULT '',
    sample      TEXT NOT NULL DEFAULT '[]',
    error       TEXT NOT NULL DEFAULT '',
    actor       TEXT NOT NULL,
    started_at  TEXT NOT NULL,
    fix_action  BIGINT
);
CREATE INDEX check_runs_check ON check_runs(service, check_name, started_at);

CREATE TABLE check_violations (
    service     TEXT NOT NULL,
    check_name  TEXT NOT NULL,
    row_key     TEXT NOT NULL,
    first_seen  TEXT NOT NULL,
    last_seen   TEXT NOT NULL,
    resolved_at TEXT,
    PRIMARY KEY (service, check_name, row_key)
);

CREATE TABLE fix_images (
    id         BIGSERIAL PRIMARY KEY,
    action_id  BIGINT NOT NULL REFERENCES actions(id),
    row_key    TEXT NOT NULL,
    before     TEXT,
    after      TEXT,
    encrypted  INTEGER NOT NULL DEFAULT 0,
    created_at TEXT NOT NULL
);
CREATE INDEX fix_images_action ON fix_images(action_id);
