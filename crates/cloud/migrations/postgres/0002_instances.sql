-- Several instances of one deployment: directory-sync leases with an expiry, and smart
-- lockout's password checks in flight per account, shared by every instance (a row per
-- check, lapsing at its expiry if its instance dies).
CREATE TABLE IF NOT EXISTS sync_leases (
    tenant_id TEXT NOT NULL,
    forest CITEXT COLLATE "C" NOT NULL,
    holder TEXT NOT NULL,
    until_ms BIGINT NOT NULL,
    PRIMARY KEY (tenant_id, forest)
);
CREATE TABLE IF NOT EXISTS lockout_places (
    id TEXT PRIMARY KEY,
    tenant_id TEXT NOT NULL,
    account TEXT NOT NULL,
    expires_ms BIGINT NOT NULL
);
CREATE INDEX IF NOT EXISTS lockout_places_by_account ON lockout_places (tenant_id, account);
-- Takes a smart lockout place in one round trip: the account's advisory lock first, then the
-- conditional insert. In a VOLATILE function each statement takes a new snapshot (READ
-- COMMITTED), so the insert sees every failure and every place committed before the lock was
-- granted. Returns whether the place was taken.
CREATE OR REPLACE FUNCTION passthru_take_check_place(
    p_id TEXT, p_tenant TEXT, p_account TEXT, p_expires_ms BIGINT, p_now BIGINT,
    p_now_ms BIGINT, p_window_start BIGINT, p_threshold BIGINT
) RETURNS BOOLEAN LANGUAGE plpgsql VOLATILE AS $$
DECLARE
    taken INTEGER;
BEGIN
    PERFORM pg_advisory_xact_lock(hashtextextended(p_tenant || '/' || p_account, 7));
    INSERT INTO lockout_places (id, tenant_id, account, expires_ms)
    SELECT p_id, p_tenant, p_account, p_expires_ms
    WHERE NOT EXISTS (SELECT 1 FROM sign_in_lockouts
                      WHERE tenant_id = p_tenant AND username = p_account::citext
                        AND locked_until > p_now)
      AND (SELECT COUNT(*) FROM lockout_places
           WHERE tenant_id = p_tenant AND account = p_account AND expires_ms > p_now_ms)
        + COALESCE((SELECT CASE WHEN last_failure_at >= p_window_start THEN failures ELSE 0 END
                    FROM sign_in_lockouts
                    WHERE tenant_id = p_tenant AND username = p_account::citext), 0)
        < p_threshold;
    GET DIAGNOSTICS taken = ROW_COUNT;
    RETURN taken = 1;
END;
$$;
