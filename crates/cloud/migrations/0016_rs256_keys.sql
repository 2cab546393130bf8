-- Token signing keys per algorithm: besides its ES256 key, each tenant gets an RS256 key
-- (RSA 2048) for the apps whose ID tokens are RS256. Current key, rotation, retirement and
-- the bounds on retired keys are per (tenant, alg). Every key until now is an ES256 one; a
-- tenant gets its first RS256 key when the server first loads its keys.
ALTER TABLE tenant_signing_keys ADD COLUMN alg TEXT NOT NULL DEFAULT 'ES256';
