-- Rows that unauthenticated requests create (sign-ins in progress) are counted per tenant
-- before each insert (a cap per tenant) and purged by expiry every minute: both need an
-- index.
CREATE INDEX IF NOT EXISTS authz_requests_tenant ON authz_requests (tenant_id);
CREATE INDEX IF NOT EXISTS authz_requests_expiry ON authz_requests (expires_at);
CREATE INDEX IF NOT EXISTS device_codes_tenant ON device_codes (tenant_id);
CREATE INDEX IF NOT EXISTS device_codes_expiry ON device_codes (expires_at);
CREATE INDEX IF NOT EXISTS password_reset_flows_tenant ON password_reset_flows (tenant_id);
CREATE INDEX IF NOT EXISTS federation_states_tenant ON federation_states (tenant_id);
CREATE INDEX IF NOT EXISTS federation_states_expiry ON federation_states (expires_at);
CREATE INDEX IF NOT EXISTS portal_logins_tenant ON portal_logins (tenant_id);
CREATE INDEX IF NOT EXISTS portal_logins_expiry ON portal_logins (expires_at);
CREATE INDEX IF NOT EXISTS portal_sessions_expiry ON portal_sessions (expires_at);
CREATE INDEX IF NOT EXISTS mfa_challenges_expiry ON mfa_challenges (expires_at);
