//! The schema of the PostgreSQL store, as migration 1 creates it (later migrations in
//! `migrate.rs` build on it). It is SQLite's schema after all its migrations, in PostgreSQL's
//! types: ids and UUIDs as TEXT, integers and 0/1 flags as BIGINT, blobs as BYTEA, and
//! `citext COLLATE "C"` where SQLite has `COLLATE NOCASE` (ASCII case folded, like NOCASE).
//! `tenant_signing_keys.seq` stands for SQLite's `rowid` (the order keys were added).

pub(super) const BASELINE: &str = r#"
CREATE EXTENSION IF NOT EXISTS citext;
CREATE TABLE IF NOT EXISTS meta (
    key TEXT PRIMARY KEY,
    value TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS tenants (
    id TEXT PRIMARY KEY,
    name citext COLLATE "C" NOT NULL UNIQUE,
    pta_enabled BIGINT NOT NULL DEFAULT 0,
    created_at BIGINT NOT NULL
);
CREATE TABLE IF NOT EXISTS tenant_settings (
    tenant_id TEXT NOT NULL REFERENCES tenants(id),
    key TEXT NOT NULL,
    value TEXT NOT NULL,
    PRIMARY KEY (tenant_id, key)
);
CREATE TABLE IF NOT EXISTS domains (
    name citext COLLATE "C" PRIMARY KEY,
    tenant_id TEXT NOT NULL REFERENCES tenants(id),
    kind TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    verified BIGINT NOT NULL DEFAULT 1,
    verification_code TEXT
);
CREATE TABLE IF NOT EXISTS users (
    id TEXT PRIMARY KEY,
    tenant_id TEXT NOT NULL REFERENCES tenants(id),
    upn citext COLLATE "C" NOT NULL,
    display_name TEXT,
    mail citext COLLATE "C",
    password_hash TEXT,
    source TEXT NOT NULL,
    immutable_id TEXT,
    role TEXT NOT NULL DEFAULT 'none',
    created_at BIGINT NOT NULL,
    last_sign_in BIGINT,
    enabled BIGINT NOT NULL DEFAULT 1,
    updated_at BIGINT,
    object_guid TEXT,
    sync_forest TEXT,
    synced_at BIGINT,
    sync_run TEXT,
    ad_enabled BIGINT,
    account_expires BIGINT,
    sync_attrs TEXT,
    writeback_allowed BIGINT NOT NULL DEFAULT 0,
    UNIQUE (tenant_id, upn)
);
CREATE UNIQUE INDEX IF NOT EXISTS users_anchor ON users (tenant_id, immutable_id) WHERE immutable_id IS NOT NULL;
CREATE INDEX IF NOT EXISTS users_by_object_guid ON users (tenant_id, object_guid) WHERE object_guid IS NOT NULL;
CREATE INDEX IF NOT EXISTS users_by_forest_run ON users (tenant_id, sync_forest, sync_run) WHERE sync_forest IS NOT NULL;
CREATE INDEX IF NOT EXISTS users_by_mail ON users (tenant_id, mail);
CREATE TABLE IF NOT EXISTS apps (
    client_id TEXT PRIMARY KEY,
    tenant_id TEXT NOT NULL REFERENCES tenants(id),
    name TEXT NOT NULL,
    public BIGINT NOT NULL,
    redirect_uris TEXT NOT NULL DEFAULT '[]',
    secret_hash TEXT,
    created_at BIGINT NOT NULL,
    groups_claim BIGINT NOT NULL DEFAULT 0
);
CREATE TABLE IF NOT EXISTS agents (
    id TEXT PRIMARY KEY,
    tenant_id TEXT NOT NULL REFERENCES tenants(id),
    cert_fingerprint TEXT NOT NULL UNIQUE,
    cert_expires_at BIGINT NOT NULL,
    hpke_public_key BYTEA NOT NULL,
    host TEXT NOT NULL,
    version TEXT NOT NULL,
    registered_at BIGINT NOT NULL,
    last_seen BIGINT,
    source_ip TEXT,
    revoked BIGINT NOT NULL DEFAULT 0,
    upn_suffixes TEXT
);
CREATE INDEX IF NOT EXISTS agents_by_tenant ON agents (tenant_id);
CREATE TABLE IF NOT EXISTS agent_stats (
    agent_id TEXT PRIMARY KEY REFERENCES agents(id),
    stats TEXT NOT NULL,
    updated_at BIGINT NOT NULL
);
CREATE TABLE IF NOT EXISTS tenant_signing_keys (
    seq BIGINT GENERATED ALWAYS AS IDENTITY,
    tenant_id TEXT NOT NULL REFERENCES tenants(id) ON DELETE CASCADE,
    kid TEXT NOT NULL,
    private_key BYTEA NOT NULL,
    sealed BIGINT NOT NULL DEFAULT 0,
    public_raw BYTEA NOT NULL,
    created_at BIGINT NOT NULL,
    retired_at BIGINT,
    PRIMARY KEY (tenant_id, kid)
);
CREATE TABLE IF NOT EXISTS refresh_tokens (
    token_hash TEXT PRIMARY KEY,
    tenant_id TEXT NOT NULL,
    user_id TEXT NOT NULL,
    client_id TEXT NOT NULL,
    scope TEXT NOT NULL,
    expires_at BIGINT NOT NULL,
    family TEXT NOT NULL DEFAULT '',
    used BIGINT NOT NULL DEFAULT 0,
    auth_time BIGINT NOT NULL DEFAULT 0
);
CREATE INDEX IF NOT EXISTS refresh_by_family ON refresh_tokens (family);
CREATE INDEX IF NOT EXISTS refresh_by_user ON refresh_tokens (tenant_id, user_id);
CREATE INDEX IF NOT EXISTS refresh_expiry ON refresh_tokens (expires_at);
CREATE TABLE IF NOT EXISTS auth_codes (
    code_hash TEXT PRIMARY KEY,
    tenant_id TEXT NOT NULL,
    client_id TEXT NOT NULL,
    redirect_uri TEXT NOT NULL,
    user_id TEXT NOT NULL,
    scope TEXT NOT NULL,
    nonce TEXT,
    code_challenge TEXT,
    auth_time BIGINT NOT NULL,
    expires_at BIGINT NOT NULL
);
CREATE TABLE IF NOT EXISTS sessions (
    id_hash TEXT PRIMARY KEY,
    tenant_id TEXT NOT NULL,
    user_id TEXT NOT NULL,
    auth_time BIGINT NOT NULL,
    expires_at BIGINT NOT NULL
);
CREATE INDEX IF NOT EXISTS sessions_by_user ON sessions (tenant_id, user_id);
CREATE TABLE IF NOT EXISTS authz_requests (
    id TEXT PRIMARY KEY,
    tenant_id TEXT NOT NULL,
    data TEXT NOT NULL,
    expires_at BIGINT NOT NULL
);
CREATE INDEX IF NOT EXISTS authz_requests_tenant ON authz_requests (tenant_id);
CREATE INDEX IF NOT EXISTS authz_requests_expiry ON authz_requests (expires_at);
CREATE TABLE IF NOT EXISTS signins (
    id BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    tenant_id TEXT NOT NULL,
    time_ms BIGINT NOT NULL,
    username TEXT NOT NULL,
    client_id TEXT,
    result TEXT NOT NULL,
    aadsts BIGINT,
    win32 BIGINT,
    agent_id TEXT,
    other_agents TEXT,
    latency_ms BIGINT,
    correlation_id TEXT NOT NULL,
    client_ip TEXT
);
CREATE INDEX IF NOT EXISTS signins_by_time ON signins (tenant_id, time_ms);
CREATE INDEX IF NOT EXISTS signins_by_user ON signins (tenant_id, lower(username), time_ms);
CREATE TABLE IF NOT EXISTS device_codes (
    device_hash TEXT PRIMARY KEY,
    user_code TEXT NOT NULL UNIQUE,
    tenant_id TEXT NOT NULL,
    client_id TEXT NOT NULL,
    scope TEXT NOT NULL,
    expires_at BIGINT NOT NULL,
    interval_secs BIGINT NOT NULL,
    last_poll BIGINT NOT NULL DEFAULT 0,
    user_id TEXT,
    auth_time BIGINT
);
CREATE INDEX IF NOT EXISTS device_codes_tenant ON device_codes (tenant_id);
CREATE INDEX IF NOT EXISTS device_codes_expiry ON device_codes (expires_at);
CREATE TABLE IF NOT EXISTS federation (
    domain citext COLLATE "C" PRIMARY KEY,
    tenant_id TEXT NOT NULL REFERENCES tenants(id),
    issuer TEXT NOT NULL,
    client_id TEXT NOT NULL,
    client_secret TEXT NOT NULL,
    client_secret_sealed BYTEA,
    created_at BIGINT NOT NULL
);
CREATE TABLE IF NOT EXISTS federation_states (
    state_hash TEXT PRIMARY KEY,
    tenant_id TEXT NOT NULL,
    domain citext COLLATE "C" NOT NULL,
    data TEXT NOT NULL,
    expires_at BIGINT NOT NULL
);
CREATE INDEX IF NOT EXISTS federation_states_tenant ON federation_states (tenant_id);
CREATE INDEX IF NOT EXISTS federation_states_expiry ON federation_states (expires_at);
CREATE TABLE IF NOT EXISTS portal_logins (
    state_hash TEXT PRIMARY KEY,
    tenant_id TEXT NOT NULL,
    verifier TEXT NOT NULL,
    nonce TEXT NOT NULL,
    expires_at BIGINT NOT NULL
);
CREATE INDEX IF NOT EXISTS portal_logins_tenant ON portal_logins (tenant_id);
CREATE INDEX IF NOT EXISTS portal_logins_expiry ON portal_logins (expires_at);
CREATE TABLE IF NOT EXISTS portal_sessions (
    id_hash TEXT PRIMARY KEY,
    tenant_id TEXT NOT NULL,
    user_id TEXT NOT NULL,
    csrf TEXT NOT NULL,
    auth_time BIGINT NOT NULL,
    expires_at BIGINT NOT NULL
);
CREATE INDEX IF NOT EXISTS portal_sessions_by_user ON portal_sessions (tenant_id, user_id);
CREATE INDEX IF NOT EXISTS portal_sessions_expiry ON portal_sessions (expires_at);
CREATE TABLE IF NOT EXISTS ad_groups (
    id TEXT PRIMARY KEY,
    tenant_id TEXT NOT NULL REFERENCES tenants(id),
    immutable_id TEXT NOT NULL,
    object_guid TEXT NOT NULL,
    forest TEXT NOT NULL,
    name TEXT,
    display_name TEXT,
    mail TEXT,
    dn TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    synced_at BIGINT NOT NULL,
    sync_run TEXT,
    UNIQUE (tenant_id, object_guid)
);
CREATE INDEX IF NOT EXISTS ad_groups_by_forest_run ON ad_groups (tenant_id, forest, sync_run);
CREATE TABLE IF NOT EXISTS group_members (
    tenant_id TEXT NOT NULL,
    group_guid TEXT NOT NULL,
    member_guid TEXT NOT NULL,
    PRIMARY KEY (tenant_id, group_guid, member_guid)
);
CREATE INDEX IF NOT EXISTS group_members_by_member ON group_members (tenant_id, member_guid);
CREATE TABLE IF NOT EXISTS sync_forests (
    tenant_id TEXT NOT NULL REFERENCES tenants(id),
    forest citext COLLATE "C" NOT NULL,
    holder_agent_id TEXT,
    lease_since BIGINT,
    watermark TEXT,
    interval_seconds BIGINT NOT NULL DEFAULT 60,
    last_full_at BIGINT,
    last_success_at BIGINT,
    last_run_at BIGINT,
    last_error TEXT,
    last_objects BIGINT,
    full_total BIGINT,
    conflicts TEXT NOT NULL DEFAULT '[]',
    PRIMARY KEY (tenant_id, forest)
);
CREATE TABLE IF NOT EXISTS sign_in_lockouts (
    tenant_id TEXT NOT NULL REFERENCES tenants(id),
    username citext COLLATE "C" NOT NULL,
    failures BIGINT NOT NULL,
    last_failure_at BIGINT NOT NULL,
    locked_until BIGINT,
    lockouts BIGINT NOT NULL DEFAULT 0,
    PRIMARY KEY (tenant_id, username)
);
CREATE TABLE IF NOT EXISTS password_reset_flows (
    id_hash TEXT PRIMARY KEY,
    tenant_id TEXT NOT NULL REFERENCES tenants(id),
    user_id TEXT NOT NULL,
    csrf TEXT NOT NULL,
    verified BIGINT NOT NULL DEFAULT 0,
    wrong_codes BIGINT NOT NULL DEFAULT 0,
    expires_at BIGINT NOT NULL
);
CREATE INDEX IF NOT EXISTS password_reset_flows_expiry ON password_reset_flows (expires_at);
CREATE INDEX IF NOT EXISTS password_reset_flows_tenant ON password_reset_flows (tenant_id);
CREATE TABLE IF NOT EXISTS user_mfa (
    user_id TEXT PRIMARY KEY REFERENCES users(id) ON DELETE CASCADE,
    tenant_id TEXT NOT NULL,
    policy TEXT NOT NULL DEFAULT 'default',
    secret BYTEA,
    enrolled_at BIGINT,
    last_step BIGINT,
    failures BIGINT NOT NULL DEFAULT 0,
    locked_until BIGINT,
    lockouts BIGINT NOT NULL DEFAULT 0
);
CREATE TABLE IF NOT EXISTS mfa_recovery_codes (
    user_id TEXT NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    code_hash TEXT NOT NULL,
    used_at BIGINT,
    PRIMARY KEY (user_id, code_hash)
);
CREATE TABLE IF NOT EXISTS mfa_challenges (
    id TEXT PRIMARY KEY,
    tenant_id TEXT NOT NULL,
    user_id TEXT NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    stage TEXT NOT NULL,
    expires_at BIGINT NOT NULL
);
CREATE INDEX IF NOT EXISTS mfa_challenges_by_user ON mfa_challenges (user_id);
CREATE INDEX IF NOT EXISTS mfa_challenges_expiry ON mfa_challenges (expires_at);
CREATE TABLE IF NOT EXISTS attempt_counters (
    scope TEXT NOT NULL,
    key TEXT NOT NULL,
    window_start BIGINT NOT NULL,
    count BIGINT NOT NULL,
    PRIMARY KEY (scope, key)
);
CREATE INDEX IF NOT EXISTS attempt_counters_by_window ON attempt_counters (window_start);
CREATE TABLE IF NOT EXISTS sign_in_names (
    tenant_id TEXT NOT NULL REFERENCES tenants(id),
    name TEXT NOT NULL,
    user_id TEXT NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    PRIMARY KEY (tenant_id, name)
);
CREATE INDEX IF NOT EXISTS sign_in_names_by_user ON sign_in_names (user_id);
"#;
