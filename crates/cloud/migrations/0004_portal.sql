-- The administration portal: its sign-ins in progress and its sessions (only SHA-256 hashes
-- of the browser-held secrets are stored).
CREATE TABLE IF NOT EXISTS portal_logins (
    state_hash TEXT PRIMARY KEY,
    tenant_id TEXT NOT NULL,
    verifier TEXT NOT NULL,
    nonce TEXT NOT NULL,
    expires_at INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS portal_sessions (
    id_hash TEXT PRIMARY KEY,
    tenant_id TEXT NOT NULL,
    user_id TEXT NOT NULL,
    csrf TEXT NOT NULL,
    auth_time INTEGER NOT NULL,
    expires_at INTEGER NOT NULL
);
CREATE INDEX IF NOT EXISTS portal_sessions_by_user ON portal_sessions (tenant_id, user_id);
