-- The audit log (issue 22): one row per administrative change made through the admin API,
-- the CLI or the portal, with who, when, from where, what, and the target's state before and
-- after (JSON, secrets removed). Purged per tenant after `audit_retention_days`.
CREATE TABLE IF NOT EXISTS audit_log (
    id BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    tenant_id TEXT NOT NULL,
    time_ms BIGINT NOT NULL,
    actor_id TEXT NOT NULL,
    actor TEXT NOT NULL,
    client_ip TEXT,
    via TEXT NOT NULL,
    operation TEXT NOT NULL,
    target TEXT NOT NULL,
    status BIGINT NOT NULL,
    correlation_id TEXT NOT NULL,
    request TEXT,
    before_state TEXT,
    after_state TEXT
);
CREATE INDEX IF NOT EXISTS audit_log_by_tenant ON audit_log (tenant_id, id);
CREATE INDEX IF NOT EXISTS audit_log_by_time ON audit_log (tenant_id, time_ms);
-- Sign-in log paging and filters by app, agent and correlation id.
CREATE INDEX IF NOT EXISTS signins_by_time_id ON signins (tenant_id, time_ms, id);
