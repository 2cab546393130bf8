-- Tenant administration: typed settings, user flags, domain proof of control, sign-in log filters.
CREATE TABLE IF NOT EXISTS tenant_settings (
    tenant_id TEXT NOT NULL REFERENCES tenants(id),
    key TEXT NOT NULL,
    value TEXT NOT NULL,
    PRIMARY KEY (tenant_id, key)
);
INSERT OR IGNORE INTO tenant_settings (tenant_id, key, value)
    SELECT id, 'request_deadline_ms', CAST(request_timeout_ms AS TEXT) FROM tenants WHERE request_timeout_ms <> 10000;
ALTER TABLE users ADD COLUMN enabled INTEGER NOT NULL DEFAULT 1;
ALTER TABLE users ADD COLUMN updated_at INTEGER;
ALTER TABLE domains ADD COLUMN verified INTEGER NOT NULL DEFAULT 1;
ALTER TABLE domains ADD COLUMN verification_code TEXT;
CREATE INDEX IF NOT EXISTS signins_by_user ON signins (tenant_id, username COLLATE NOCASE, time_ms);
