-- Multi-factor authentication (TOTP, RFC 6238). Secrets are stored only sealed with
-- ChaCha20-Poly1305 under the data dir's mfa.key (the user id as associated data); recovery
-- codes only as SHA-256. Every row goes with its user (ON DELETE CASCADE).
CREATE TABLE IF NOT EXISTS user_mfa (
    user_id TEXT PRIMARY KEY REFERENCES users(id) ON DELETE CASCADE,
    tenant_id TEXT NOT NULL,
    -- The user's own policy: default (the tenant's `mfa` setting), off, optional or required.
    policy TEXT NOT NULL DEFAULT 'default',
    -- 12-byte nonce followed by the sealed TOTP secret; NULL when not enrolled.
    secret BLOB,
    -- When the enrolment was confirmed with a code; NULL while it is only started.
    enrolled_at INTEGER,
    -- The last TOTP time step accepted: codes of that step or earlier are refused.
    last_step INTEGER,
    -- Wrong codes since the last lock or success, and the lock they lead to.
    failures INTEGER NOT NULL DEFAULT 0,
    locked_until INTEGER,
    lockouts INTEGER NOT NULL DEFAULT 0
);
CREATE TABLE IF NOT EXISTS mfa_recovery_codes (
    user_id TEXT NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    code_hash TEXT NOT NULL,
    used_at INTEGER,
    PRIMARY KEY (user_id, code_hash)
);
-- A sign-in whose password step succeeded, waiting for its second factor (keyed by the
-- pending authorization request's id), or a signed-in user's enrolment from /mfa/setup.
CREATE TABLE IF NOT EXISTS mfa_challenges (
    id TEXT PRIMARY KEY,
    tenant_id TEXT NOT NULL,
    user_id TEXT NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    stage TEXT NOT NULL,
    expires_at INTEGER NOT NULL
);
CREATE INDEX IF NOT EXISTS mfa_challenges_by_user ON mfa_challenges (user_id);
