-- Several instances of one deployment: its settings (the deployment's id, the marker left by
-- `migrate`) and directory-sync leases with an expiry.
CREATE TABLE IF NOT EXISTS meta (
    key TEXT PRIMARY KEY,
    value TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS sync_leases (
    tenant_id TEXT NOT NULL,
    forest TEXT NOT NULL COLLATE NOCASE,
    holder TEXT NOT NULL,
    until_ms INTEGER NOT NULL,
    PRIMARY KEY (tenant_id, forest)
);
-- Smart lockout's password checks in flight per account, shared by every instance: a row
-- per check, lapsing at its expiry if its instance dies.
CREATE TABLE IF NOT EXISTS lockout_places (
    id TEXT PRIMARY KEY,
    tenant_id TEXT NOT NULL,
    account TEXT NOT NULL,
    expires_ms INTEGER NOT NULL
);
CREATE INDEX IF NOT EXISTS lockout_places_by_account ON lockout_places (tenant_id, account);
