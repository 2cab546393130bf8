-- Attempt limits that hold under concurrency. `attempt_counters`: fixed-window counters
-- (self-service password reset starts per user and per client address), each bumped by one
-- conditional statement, purged once their window is over. `sign_in_names`: every name a
-- user is known to sign in with (UPN, implicit UPN sAMAccountName@dns-domain, mail, a name
-- that an agent resolved to them), Unicode case-folded, so that smart lockout counts wrong
-- passwords per account whatever name was typed.
CREATE TABLE IF NOT EXISTS attempt_counters (
    scope TEXT NOT NULL,
    key TEXT NOT NULL,
    window_start INTEGER NOT NULL,
    count INTEGER NOT NULL,
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
