-- Several `siteward watch` daemons sharing one store: the live daemons (each renews its row)
-- and one lease per site, held by one daemon at a time. Expiry is the database's clock; the
-- fence (the database's clock in microseconds, above the site's last) increases with every new
-- holder and travels into the site's lock on its server.
CREATE TABLE daemons (
    id TEXT PRIMARY KEY,
    machine TEXT NOT NULL,
    pid BIGINT NOT NULL,
    listen TEXT NOT NULL,
    started_at TIMESTAMPTZ NOT NULL DEFAULT now(),
    expires_at TIMESTAMPTZ NOT NULL
);

CREATE TABLE site_leases (
    site TEXT PRIMARY KEY,
    holder TEXT NOT NULL,
    fence BIGINT NOT NULL,
    acquired_at TIMESTAMPTZ NOT NULL,
    expires_at TIMESTAMPTZ NOT NULL
);

CREATE INDEX site_leases_holder ON site_leases (holder);
