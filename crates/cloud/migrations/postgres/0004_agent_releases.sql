-- Signed auto-update: the agent releases an administrator uploaded (`admin agents release
-- add`), offered to the tenant's agents. Each is the package (the passthru-agent
-- executable) and the signed manifest it came with, as uploaded; the manifest's fields the
-- cloud reads (version, platform, digest, size, oldest cloud version) are copied beside it.
CREATE TABLE IF NOT EXISTS agent_releases (
    tenant_id TEXT NOT NULL REFERENCES tenants(id),
    version TEXT NOT NULL,
    target TEXT NOT NULL,
    sha256 TEXT NOT NULL,
    size BIGINT NOT NULL,
    min_cloud_version TEXT NOT NULL,
    signed_manifest TEXT NOT NULL,
    package BYTEA NOT NULL,
    added_at BIGINT NOT NULL,
    added_by TEXT NOT NULL,
    PRIMARY KEY (tenant_id, version)
);
