-- Smart lockout: wrong-password counters per tenant and user name, kept in the store so that
-- every cloud instance sees the same count.
CREATE TABLE IF NOT EXISTS sign_in_lockouts (
    tenant_id TEXT NOT NULL REFERENCES tenants(id),
    username TEXT NOT NULL COLLATE NOCASE,
    failures INTEGER NOT NULL,
    last_failure_at INTEGER NOT NULL,
    locked_until INTEGER,
    lockouts INTEGER NOT NULL DEFAULT 0,
    PRIMARY KEY (tenant_id, username)
);
