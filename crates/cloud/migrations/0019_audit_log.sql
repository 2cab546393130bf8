-- The audit log (issue 22): one row per administrative change made through the admin API,
-- the CLI or the portal, with who, when, from where, what, and the target's state before and
-- after (JSON, secrets removed). Purged per tenant after `audit_retention_days`.
CREATE TABLE IF NOT EXISTS audit_log (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    tenant_id TEXT NOT NULL,
    time_ms INTEGER NOT NULL,
    actor_id TEXT NOT NULL,
    actor TEXT NOT NULL,
    client_ip TEXT,
    via TEXT NOT NULL,
    operation TEXT NOT NULL,
    target TEXT NOT NULL,
    status INTEGER NOT NULL,
    correlation_id TEXT NOT NULL,
    request TEXT,
    before_state TEXT,
    after_state TEXT
);
CREATE INDEX IF NOT EXISTS audit_log_by_tenant ON audit_log (tenant_id, id);
CREATE INDEX IF NOT EXISTS audit_log_by_time ON audit_log (tenant_id, time_ms);
-- Sign-in log paging and filters by app, agent and correlation id.
CREATE INDEX IF NOT EXISTS signins_by_time_id ON signins (tenant_id, time_ms, id);
-- Per-tenant branding (issue 22): the sign-in pages' logo, checked and size-limited when
-- uploaded, served with the content type its bytes were recognised as.
CREATE TABLE IF NOT EXISTS tenant_logos (
    tenant_id TEXT PRIMARY KEY REFERENCES tenants(id),
    content_type TEXT NOT NULL,
    bytes BLOB NOT NULL,
    updated_at INTEGER NOT NULL
);
