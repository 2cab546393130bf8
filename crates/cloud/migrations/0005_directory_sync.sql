-- Directory sync: what an agent last read from AD for each user and group, group membership
-- (by objectGUID, so renames and moves need no rewrite), and each forest's lease and
-- watermark. Never a password.
ALTER TABLE users ADD COLUMN object_guid TEXT;
ALTER TABLE users ADD COLUMN sync_forest TEXT;
ALTER TABLE users ADD COLUMN synced_at INTEGER;
ALTER TABLE users ADD COLUMN sync_run TEXT;
ALTER TABLE users ADD COLUMN ad_enabled INTEGER;
ALTER TABLE users ADD COLUMN account_expires INTEGER;
ALTER TABLE users ADD COLUMN sync_attrs TEXT;
CREATE INDEX IF NOT EXISTS users_by_object_guid ON users (tenant_id, object_guid) WHERE object_guid IS NOT NULL;
CREATE INDEX IF NOT EXISTS users_by_forest_run ON users (tenant_id, sync_forest, sync_run) WHERE sync_forest IS NOT NULL;
CREATE INDEX IF NOT EXISTS users_by_mail ON users (tenant_id, mail COLLATE NOCASE);
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
    created_at INTEGER NOT NULL,
    synced_at INTEGER NOT NULL,
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
    forest TEXT NOT NULL COLLATE NOCASE,
    holder_agent_id TEXT,
    lease_since INTEGER,
    watermark TEXT,
    interval_seconds INTEGER NOT NULL DEFAULT 60,
    last_full_at INTEGER,
    last_success_at INTEGER,
    last_run_at INTEGER,
    last_error TEXT,
    last_objects INTEGER,
    full_total INTEGER,
    conflicts TEXT NOT NULL DEFAULT '[]',
    PRIMARY KEY (tenant_id, forest)
);
ALTER TABLE apps ADD COLUMN groups_claim INTEGER NOT NULL DEFAULT 0;
