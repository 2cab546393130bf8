-- App credentials: several secrets and certificates per confidential app, each with its
-- own expiry, so that one can be replaced without an outage. A secret is its SHA-256 (hex)
-- and a hint (its first characters); a certificate is its SHA-1 and SHA-256 thumbprints
-- (the x5t and x5t#S256 of a client assertion's header), its SubjectPublicKeyInfo (DER) and
-- its subject, valid from its notBefore (starts_at) until its notAfter (expires_at).
CREATE TABLE IF NOT EXISTS app_credentials (
    id TEXT PRIMARY KEY,
    tenant_id TEXT NOT NULL REFERENCES tenants(id),
    client_id TEXT NOT NULL REFERENCES apps(client_id),
    kind TEXT NOT NULL CHECK (kind IN ('secret', 'certificate')),
    secret_hash TEXT,
    x5t TEXT,
    x5t_s256 TEXT,
    public_key BLOB,
    subject TEXT,
    hint TEXT,
    created_at INTEGER NOT NULL,
    starts_at INTEGER,
    expires_at INTEGER,
    CHECK ((kind = 'secret') = (secret_hash IS NOT NULL)),
    CHECK ((kind = 'certificate') = (x5t IS NOT NULL AND x5t_s256 IS NOT NULL AND public_key IS NOT NULL))
);
CREATE INDEX IF NOT EXISTS app_credentials_app ON app_credentials (client_id);
-- A certificate once per app (NULLs, the secrets, are distinct).
CREATE UNIQUE INDEX IF NOT EXISTS app_credentials_certificate ON app_credentials (client_id, x5t_s256);

-- Each app's one secret of before becomes its first credential, without an expiry (it had
-- none: giving it one now would end it unannounced), with a random id (UUID v4 form).
INSERT INTO app_credentials (id, tenant_id, client_id, kind, secret_hash, created_at)
SELECT lower(hex(randomblob(4))) || '-' || lower(hex(randomblob(2))) || '-4'
       || substr(lower(hex(randomblob(2))), 2) || '-'
       || substr('89ab', 1 + (abs(random()) % 4), 1) || substr(lower(hex(randomblob(2))), 2)
       || '-' || lower(hex(randomblob(6))),
       tenant_id, client_id, 'secret', secret_hash, created_at
FROM apps
WHERE secret_hash IS NOT NULL AND public = 0;
-- The column stays (a migration never drops one) but is no longer read or written.
UPDATE apps SET secret_hash = NULL;
