CREATE TABLE probe_results (
    id          INTEGER PRIMARY KEY AUTOINCREMENT,
    service     TEXT NOT NULL,
    probe       TEXT NOT NULL,
    location    TEXT NOT NULL DEFAULT 'local',
    status      TEXT NOT NULL,
    started_at  TEXT NOT NULL,
    duration_ms INTEGER NOT NULL DEFAULT 0,
    code        INTEGER NOT NULL DEFAULT 0,
    error       TEXT NOT NULL DEFAULT '',
    details     TEXT NOT NULL DEFAULT '{}'
);
CREATE INDEX probe_results_probe ON probe_results(service, probe, started_at);
