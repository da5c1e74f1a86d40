-- Conditions per site and type (Ready, Drifted, Progressing, Degraded, Unreachable, Suspended,
-- Orphaned), each with the time its status last changed; and each site's state: where it
-- lives, what differs, its commits, its last result, whether it is held for manual applies.
CREATE TABLE site_conditions (
    site TEXT NOT NULL,
    type TEXT NOT NULL,
    status TEXT NOT NULL,
    reason TEXT NOT NULL,
    message TEXT NOT NULL,
    last_transition_unix BIGINT NOT NULL,
    spec_hash TEXT NOT NULL,
    git_revision TEXT NOT NULL,
    updated_unix BIGINT NOT NULL,
    PRIMARY KEY (site, type)
);

CREATE TABLE sites (
    site TEXT PRIMARY KEY,
    server TEXT NOT NULL,
    suspended BOOLEAN NOT NULL DEFAULT FALSE,
    suspend_reason TEXT NOT NULL DEFAULT '',
    drift_json TEXT NOT NULL DEFAULT '[]',
    deployed_commit TEXT NOT NULL DEFAULT '',
    desired_commit TEXT NOT NULL DEFAULT '',
    last_result TEXT NOT NULL DEFAULT '',
    last_reconcile_unix BIGINT NOT NULL DEFAULT 0,
    updated_unix BIGINT NOT NULL
);

-- Written by `siteward watch` to tell that the store takes writes (`/readyz`).
CREATE TABLE daemon_heartbeat (
    id INTEGER PRIMARY KEY,
    at_unix BIGINT NOT NULL
);

INSERT INTO sites (site, server, updated_unix) SELECT site, server, updated_unix FROM conditions;
DROP TABLE conditions;
