-- History of plans and applies, for people (`status`, `report`) and the daemon.
CREATE TABLE runs (
    id BIGSERIAL PRIMARY KEY,
    kind TEXT NOT NULL,
    started_unix BIGINT NOT NULL,
    spec_hash TEXT NOT NULL,
    observed_fingerprint TEXT NOT NULL,
    outcome TEXT NOT NULL,
    summary TEXT NOT NULL,
    plan_json TEXT NOT NULL
);

CREATE TABLE site_runs (
    id BIGSERIAL PRIMARY KEY,
    run_id BIGINT NOT NULL REFERENCES runs(id),
    site TEXT NOT NULL,
    server TEXT NOT NULL,
    ok BOOLEAN NOT NULL,
    millis BIGINT NOT NULL,
    error TEXT,
    steps_json TEXT NOT NULL
);
CREATE INDEX site_runs_site ON site_runs(site, id);

CREATE TABLE conditions (
    site TEXT PRIMARY KEY,
    server TEXT NOT NULL,
    ready BOOLEAN NOT NULL,
    drifted BOOLEAN NOT NULL,
    reason TEXT NOT NULL,
    message TEXT NOT NULL,
    spec_hash TEXT NOT NULL,
    updated_unix BIGINT NOT NULL
);
