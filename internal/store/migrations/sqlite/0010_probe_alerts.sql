-- Alerts of probes and their SLOs (see internal/probe/slowatch). One row per
-- alert from open to resolve: name is "down" or "degraded" (state alerts)
-- or "OBJECTIVE/SEVERITY" (burn-rate alerts, e.g. "availability/page");
-- probe is '' for an objective of the whole service. dedup_key is the key
-- of its notifications, so the resolve closes what the open started. At
-- most one alert of a name is open at a time.
CREATE TABLE probe_alerts (
    id          INTEGER PRIMARY KEY AUTOINCREMENT,
    service     TEXT NOT NULL,
    probe       TEXT NOT NULL DEFAULT '',
    name        TEXT NOT NULL,
    severity    TEXT NOT NULL,
    dedup_key   TEXT NOT NULL DEFAULT '',
    title       TEXT NOT NULL DEFAULT '',
    details     TEXT NOT NULL DEFAULT '{}',
    opened_at   TEXT NOT NULL,
    resolved_at TEXT
);
CREATE UNIQUE INDEX probe_alerts_open ON probe_alerts(service, probe, name) WHERE resolved_at IS NULL;
CREATE INDEX probe_alerts_opened ON probe_alerts(service, opened_at);
-- The evaluator's state per probe (or service objective, probe ''): the
-- confirmed alert state, the streaks of its confirmations, the last check
-- it saw, as JSON. It survives restarts, so a restart neither pages again
-- nor forgets to resolve.
CREATE TABLE probe_slo_state (
    service    TEXT NOT NULL,
    probe      TEXT NOT NULL DEFAULT '',
    state      TEXT NOT NULL DEFAULT '{}',
    updated_at TEXT NOT NULL,
    PRIMARY KEY (service, probe)
);
