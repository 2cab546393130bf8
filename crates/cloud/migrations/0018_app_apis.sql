-- Application platforms and APIs (issue 21): single-page apps (their redirect URIs get CORS
-- and 24-hour refresh tokens), the ID-token signing algorithm chosen per app, and the API an
-- app exposes (an identifier URI unique in its tenant, delegated scope names and app role
-- names, JSON arrays), with the app roles assigned to users, groups and apps.
ALTER TABLE apps ADD COLUMN spa INTEGER NOT NULL DEFAULT 0;
ALTER TABLE apps ADD COLUMN id_token_alg TEXT NOT NULL DEFAULT 'ES256';
ALTER TABLE apps ADD COLUMN identifier_uri TEXT;
ALTER TABLE apps ADD COLUMN api_scopes TEXT NOT NULL DEFAULT '[]';
ALTER TABLE apps ADD COLUMN app_roles TEXT NOT NULL DEFAULT '[]';
CREATE UNIQUE INDEX IF NOT EXISTS apps_identifier_uri ON apps (tenant_id, identifier_uri)
    WHERE identifier_uri IS NOT NULL;
CREATE TABLE IF NOT EXISTS app_role_assignments (
    tenant_id TEXT NOT NULL REFERENCES tenants(id),
    resource_client_id TEXT NOT NULL,
    role TEXT NOT NULL,
    principal_kind TEXT NOT NULL,
    principal_id TEXT NOT NULL,
    created_at INTEGER NOT NULL,
    PRIMARY KEY (tenant_id, resource_client_id, role, principal_kind, principal_id)
);
CREATE INDEX IF NOT EXISTS app_role_assignments_principal
    ON app_role_assignments (tenant_id, principal_kind, principal_id);
