CREATE TABLE grants (
    id              BIGSERIAL PRIMARY KEY,
    action_id       BIGINT REFERENCES actions(id),
    service         TEXT NOT NULL,
    database        TEXT NOT NULL,
    profile         TEXT NOT NULL,
    engine          TEXT NOT NULL,
    requester       TEXT NOT NULL,
    reason          TEXT NOT NULL,
    role_name       TEXT NOT NULL UNIQUE,
    state           TEXT NOT NULL,
    break_glass     INTEGER NOT NULL DEFAULT 0,
    created_at      TEXT NOT NULL,
    issued_at       TEXT,
    expires_at      TEXT NOT NULL,
    revoke_after    TEXT,
    revoked_at      TEXT,
    revoke_attempts INTEGER NOT NULL DEFAULT 0,
    next_attempt_at TEXT,
    last_error      TEXT NOT NULL DEFAULT '',
    revocation      TEXT NOT NULL DEFAULT '{}',
    credential_hash TEXT NOT NULL DEFAULT ''
);
CREATE INDEX grants_state ON grants(state, expires_at);

CREATE TABLE access_scans (
    id         BIGSERIAL PRIMARY KEY,
    service    TEXT NOT NULL,
    database   TEXT NOT NULL,
    status     TEXT NOT NULL,
    findings   INTEGER NOT NULL DEFAULT 0,
    report     TEXT NOT NULL DEFAULT '{}',
    error      TEXT NOT NULL DEFAULT '',
    actor      TEXT NOT NULL,
    started_at TEXT NOT NULL
);
CREATE INDEX access_scans_db ON access_scans(service, database, started_at);
