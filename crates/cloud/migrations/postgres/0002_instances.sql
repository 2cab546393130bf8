-- Several instances of one deployment: directory-sync leases with an expiry, and smart
-- lockout's password checks in flight per account, shared by every instance (a row per
-- check, lapsing at its expiry if its instance dies).
CREATE TABLE IF NOT EXISTS sync_leases (
    tenant_id TEXT NOT NULL,
    forest CITEXT COLLATE "C" NOT NULL,
    holder TEXT NOT NULL,
    until_ms BIGINT NOT NULL,
    PRIMARY KEY (tenant_id, forest)
);
CREATE TABLE IF NOT EXISTS lockout_places (
    id TEXT PRIMARY KEY,
    tenant_id TEXT NOT NULL,
    account TEXT NOT NULL,
    expires_ms BIGINT NOT NULL
);
CREATE INDEX IF NOT EXISTS lockout_places_by_account ON lockout_places (tenant_id, account);
