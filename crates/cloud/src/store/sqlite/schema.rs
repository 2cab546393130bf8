//! The base schema of the SQLite store (migrations in `migrate.rs` build on it).

pub(super) const SCHEMA: &str = r#"
CREATE TABLE IF NOT EXISTS tenants (
    id TEXT PRIMARY KEY,
    name TEXT NOT NULL UNIQUE COLLATE NOCASE,
    pta_enabled INTEGER NOT NULL DEFAULT 0,
    request_timeout_ms INTEGER NOT NULL DEFAULT 10000,
    created_at INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS domains (
    name TEXT PRIMARY KEY COLLATE NOCASE,
    tenant_id TEXT NOT NULL REFERENCES tenants(id),
    kind TEXT NOT NULL,
    created_at INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS users (
    id TEXT PRIMARY KEY,
    tenant_id TEXT NOT NULL REFERENCES tenants(id),
    upn TEXT NOT NULL COLLATE NOCASE,
    display_name TEXT,
    mail TEXT,
    password_hash TEXT,
    source TEXT NOT NULL,
    immutable_id TEXT,
    role TEXT NOT NULL DEFAULT 'none',
    created_at INTEGER NOT NULL,
    last_sign_in INTEGER,
    UNIQUE (tenant_id, upn)
);
CREATE UNIQUE INDEX IF NOT EXISTS users_anchor ON users (tenant_id, immutable_id) WHERE immutable_id IS NOT NULL;
CREATE TABLE IF NOT EXISTS apps (
    client_id TEXT PRIMARY KEY,
    tenant_id TEXT NOT NULL REFERENCES tenants(id),
    name TEXT NOT NULL,
    public INTEGER NOT NULL,
    redirect_uris TEXT NOT NULL DEFAULT '[]',
    secret_hash TEXT,
    created_at INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS agents (
    id TEXT PRIMARY KEY,
    tenant_id TEXT NOT NULL REFERENCES tenants(id),
    cert_fingerprint TEXT NOT NULL UNIQUE,
    cert_expires_at INTEGER NOT NULL,
    hpke_public_key BLOB NOT NULL,
    host TEXT NOT NULL,
    version TEXT NOT NULL,
    registered_at INTEGER NOT NULL,
    last_seen INTEGER,
    source_ip TEXT,
    revoked INTEGER NOT NULL DEFAULT 0
);
CREATE TABLE IF NOT EXISTS signing_keys (
    kid TEXT PRIMARY KEY,
    private_pem TEXT NOT NULL,
    public_raw BLOB NOT NULL,
    created_at INTEGER NOT NULL,
    retired_at INTEGER
);
CREATE TABLE IF NOT EXISTS refresh_tokens (
    token_hash TEXT PRIMARY KEY,
    tenant_id TEXT NOT NULL,
    user_id TEXT NOT NULL,
    client_id TEXT NOT NULL,
    scope TEXT NOT NULL,
    expires_at INTEGER NOT NULL,
    family TEXT NOT NULL DEFAULT '',
    used INTEGER NOT NULL DEFAULT 0,
    auth_time INTEGER NOT NULL DEFAULT 0
);
CREATE INDEX IF NOT EXISTS refresh_by_family ON refresh_tokens (family);
CREATE TABLE IF NOT EXISTS auth_codes (
    code_hash TEXT PRIMARY KEY,
    tenant_id TEXT NOT NULL,
    client_id TEXT NOT NULL,
    redirect_uri TEXT NOT NULL,
    user_id TEXT NOT NULL,
    scope TEXT NOT NULL,
    nonce TEXT,
    code_challenge TEXT,
    auth_time INTEGER NOT NULL,
    expires_at INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS sessions (
    id_hash TEXT PRIMARY KEY,
    tenant_id TEXT NOT NULL,
    user_id TEXT NOT NULL,
    auth_time INTEGER NOT NULL,
    expires_at INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS authz_requests (
    id TEXT PRIMARY KEY,
    tenant_id TEXT NOT NULL,
    data TEXT NOT NULL,
    expires_at INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS signins (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    tenant_id TEXT NOT NULL,
    time_ms INTEGER NOT NULL,
    username TEXT NOT NULL,
    client_id TEXT,
    result TEXT NOT NULL,
    aadsts INTEGER,
    win32 INTEGER,
    agent_id TEXT,
    latency_ms INTEGER,
    correlation_id TEXT NOT NULL,
    client_ip TEXT
);
CREATE INDEX IF NOT EXISTS signins_by_time ON signins (tenant_id, time_ms);
"#;

pub(super) const DEVICE_SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS device_codes (
    device_hash TEXT PRIMARY KEY,
    user_code TEXT NOT NULL UNIQUE,
    tenant_id TEXT NOT NULL,
    client_id TEXT NOT NULL,
    scope TEXT NOT NULL,
    expires_at INTEGER NOT NULL,
    interval_secs INTEGER NOT NULL,
    last_poll INTEGER NOT NULL DEFAULT 0,
    user_id TEXT,
    auth_time INTEGER
);";

/// Tables of this module, created at [`Store::open`].
pub(super) const FEDERATION_SCHEMA: &str = r#"
CREATE TABLE IF NOT EXISTS federation (
    domain TEXT PRIMARY KEY COLLATE NOCASE,
    tenant_id TEXT NOT NULL REFERENCES tenants(id),
    issuer TEXT NOT NULL,
    client_id TEXT NOT NULL,
    client_secret TEXT NOT NULL,
    created_at INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS federation_states (
    state_hash TEXT PRIMARY KEY,
    tenant_id TEXT NOT NULL,
    domain TEXT NOT NULL COLLATE NOCASE,
    data TEXT NOT NULL,
    expires_at INTEGER NOT NULL
);
"#;
