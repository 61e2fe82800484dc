-- One row per evaluation of the readiness scorecard per service; service ''
-- holds the overall score of that evaluation.
CREATE TABLE scorecards (
    id           BIGSERIAL PRIMARY KEY,
    service      TEXT NOT NULL,
    evaluated_at TEXT NOT NULL,
    tier         INTEGER NOT NULL DEFAULT 0,
    score        DOUBLE PRECISION NOT NULL,
    statuses     TEXT NOT NULL DEFAULT '{}',
    reasons      TEXT NOT NULL DEFAULT '{}'
);
CREATE INDEX scorecards_service_time ON scorecards(service, evaluated_at);
