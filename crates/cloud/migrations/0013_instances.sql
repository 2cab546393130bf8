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
