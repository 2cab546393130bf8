-- Agent certificate renewal: the certificate and HPKE key issued at a renewal wait here until
-- the agent first connects with them; that connection makes them current (the old ones are
-- then refused).
ALTER TABLE agents ADD COLUMN IF NOT EXISTS next_cert_fingerprint TEXT;
ALTER TABLE agents ADD COLUMN IF NOT EXISTS next_cert_expires_at BIGINT;
ALTER TABLE agents ADD COLUMN IF NOT EXISTS next_hpke_public_key BYTEA;
CREATE UNIQUE INDEX IF NOT EXISTS agents_next_cert_fingerprint
    ON agents (next_cert_fingerprint) WHERE next_cert_fingerprint IS NOT NULL;
