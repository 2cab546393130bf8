-- Password writeback: whether each user may change and reset their on-premises password
-- here (self-service; Azure ties it to a licence), and the self-service reset flows under
-- way (no password is ever stored: a flow holds who is resetting and how far they got).
ALTER TABLE users ADD COLUMN writeback_allowed INTEGER NOT NULL DEFAULT 0;

CREATE TABLE IF NOT EXISTS password_reset_flows (
    id_hash TEXT PRIMARY KEY,
    tenant_id TEXT NOT NULL REFERENCES tenants(id),
    user_id TEXT NOT NULL,
    csrf TEXT NOT NULL,
    verified INTEGER NOT NULL DEFAULT 0,
    wrong_codes INTEGER NOT NULL DEFAULT 0,
    expires_at INTEGER NOT NULL
);
CREATE INDEX IF NOT EXISTS password_reset_flows_expiry ON password_reset_flows (expires_at);
