CREATE TABLE actions (
    id           BIGSERIAL PRIMARY KEY,
    kind         TEXT NOT NULL,
    service      TEXT NOT NULL DEFAULT '',
    target       TEXT NOT NULL DEFAULT '',
    params       TEXT NOT NULL DEFAULT '{}',
    requester    TEXT NOT NULL,
    reason       TEXT NOT NULL,
    ticket       TEXT NOT NULL DEFAULT '',
    state        TEXT NOT NULL,
    risk         TEXT NOT NULL,
    plan_summary TEXT NOT NULL DEFAULT '',
    plan_details TEXT NOT NULL DEFAULT '{}',
    plan_hash    TEXT NOT NULL DEFAULT '',
    plan_version INTEGER NOT NULL DEFAULT 0,
    rule         TEXT NOT NULL DEFAULT '',
    requirement  TEXT NOT NULL DEFAULT '{}',
    break_glass  INTEGER NOT NULL DEFAULT 0,
    freeze_name  TEXT NOT NULL DEFAULT '',
    result       TEXT NOT NULL DEFAULT '{}',
    error        TEXT NOT NULL DEFAULT '',
    created_at   TEXT NOT NULL,
    updated_at   TEXT NOT NULL,
    approved_at  TEXT,
    expires_at   TEXT,
    executed_at  TEXT,
    finished_at  TEXT,
    version      INTEGER NOT NULL DEFAULT 1
);
CREATE INDEX actions_state ON actions(state);
CREATE INDEX actions_service ON actions(service);

CREATE TABLE approvals (
    id         BIGSERIAL PRIMARY KEY,
    action_id  BIGINT NOT NULL REFERENCES actions(id),
    user_name  TEXT NOT NULL,
    decision   TEXT NOT NULL,
    comment    TEXT NOT NULL DEFAULT '',
    plan_hash  TEXT NOT NULL,
    roles      TEXT NOT NULL DEFAULT '',
    via        TEXT NOT NULL DEFAULT '',
    created_at TEXT NOT NULL
);
CREATE INDEX approvals_action ON approvals(action_id);

CREATE TABLE reviews (
    id            BIGSERIAL PRIMARY KEY,
    action_id     BIGINT NOT NULL REFERENCES actions(id),
    breaker       TEXT NOT NULL,
    required      INTEGER NOT NULL,
    state         TEXT NOT NULL,
    deadline      TEXT NOT NULL,
    created_at    TEXT NOT NULL,
    completed_at  TEXT,
    last_alert_at TEXT
);
CREATE INDEX reviews_state ON reviews(state);

CREATE TABLE review_signoffs (
    review_id  BIGINT NOT NULL REFERENCES reviews(id),
    user_name  TEXT NOT NULL,
    notes      TEXT NOT NULL,
    created_at TEXT NOT NULL,
    PRIMARY KEY (review_id, user_name)
);

CREATE TABLE notify_outbox (
    id              BIGSERIAL PRIMARY KEY,
    channel         TEXT NOT NULL,
    event           TEXT NOT NULL,
    severity        TEXT NOT NULL,
    service         TEXT NOT NULL DEFAULT '',
    dedup_key       TEXT NOT NULL,
    payload         TEXT NOT NULL,
    state           TEXT NOT NULL,
    attempts        INTEGER NOT NULL DEFAULT 0,
    last_error      TEXT NOT NULL DEFAULT '',
    created_at      TEXT NOT NULL,
    next_attempt_at TEXT NOT NULL,
    delivered_at    TEXT,
    UNIQUE (channel, dedup_key)
);
CREATE INDEX notify_outbox_due ON notify_outbox(state, next_attempt_at);
