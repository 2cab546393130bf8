-- Token signing keys per tenant: each tenant's tokens are signed with its own key, its JWKS
-- lists only its keys, and its administrators rotate only its keys. The deployment-wide keys
-- of earlier releases become every existing tenant's keys (same key id), so the tokens they
-- signed still verify; each tenant moves to a key of its own at its first rotation.
-- `private_key` is sealed (`sealed` = 1: nonce || ChaCha20-Poly1305 ciphertext under the data
-- dir's mfa.key, tenant and key id bound); rows copied here hold the PEM until the server's
-- next start seals them.
CREATE TABLE IF NOT EXISTS tenant_signing_keys (
    tenant_id TEXT NOT NULL REFERENCES tenants(id) ON DELETE CASCADE,
    kid TEXT NOT NULL,
    private_key BLOB NOT NULL,
    sealed INTEGER NOT NULL DEFAULT 0,
    public_raw BLOB NOT NULL,
    created_at INTEGER NOT NULL,
    retired_at INTEGER,
    PRIMARY KEY (tenant_id, kid)
);
INSERT INTO tenant_signing_keys (tenant_id, kid, private_key, sealed, public_raw, created_at, retired_at)
    SELECT t.id, k.kid, CAST(k.private_pem AS BLOB), 0, k.public_raw, k.created_at, k.retired_at
    FROM tenants t CROSS JOIN signing_keys k;
-- Overwritten before deletion, so no page of the file keeps the plaintext key.
UPDATE signing_keys SET private_pem = zeroblob(length(private_pem));
DELETE FROM signing_keys;
DROP TABLE signing_keys;
-- Federated domains' client secrets, sealed (tenant and domain bound); `client_secret` is
-- emptied once the sealed copy is written.
ALTER TABLE federation ADD COLUMN client_secret_sealed BLOB;
