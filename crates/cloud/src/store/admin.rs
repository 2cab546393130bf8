//! Store rows the tenant administrator manages: users (paging, flags, roles, deletion),
//! domains (proof of control, removal), apps (redirect URIs, secrets, deletion) and the
//! sign-in log (filters, retention).

use sqlx::Row;
use uuid::Uuid;

use super::{conflict, App, Domain, Result, SignIn, Store, StoreError, User};

/// A page of users and the token of the next page, if any.
#[derive(Debug)]
pub struct UserPage {
    pub users: Vec<User>,
    /// Pass back as `after` for the next page (the last UPN of this one).
    pub next: Option<String>,
}

/// Filters of the sign-in log.
#[derive(Debug, Default, Clone)]
pub struct SignInFilter {
    /// Sign-in name, exact (case-insensitive).
    pub user: Option<String>,
    /// `success` or `failure`, or an AADSTS code.
    pub result: Option<String>,
    /// Only lines at or after this time (Unix ms).
    pub since_ms: Option<i64>,
    /// Only lines before this time (Unix ms).
    pub until_ms: Option<i64>,
    /// At most this many lines.
    pub limit: i64,
}

pub(crate) fn like_pattern(search: &str) -> String {
    let mut p = String::from("%");
    for c in search.chars() {
        if matches!(c, '%' | '_' | '\\') {
            p.push('\\');
        }
        p.push(c);
    }
    p.push('%');
    p
}

impl Store {
    // ---- users

    /// Users in UPN order after `after`, `top` at a time, optionally those whose UPN,
    /// display name or mail contains `search` (case-insensitive).
    pub async fn users_page(
        &self,
        tenant_id: Uuid,
        search: Option<&str>,
        after: Option<&str>,
        top: i64,
    ) -> Result<UserPage> {
        let pattern = search.map(like_pattern);
        let rows = sqlx::query(
            "SELECT * FROM users WHERE tenant_id = ?
               AND (? IS NULL OR upn > ?)
               AND (? IS NULL OR upn LIKE ? ESCAPE '\\' OR display_name LIKE ? ESCAPE '\\' OR mail LIKE ? ESCAPE '\\')
             ORDER BY upn LIMIT ?",
        )
        .bind(tenant_id.to_string())
        .bind(after)
        .bind(after)
        .bind(&pattern)
        .bind(&pattern)
        .bind(&pattern)
        .bind(&pattern)
        .bind(top + 1)
        .fetch_all(&self.pool)
        .await?;
        let mut users = rows
            .iter()
            .map(Store::user_row)
            .collect::<Result<Vec<_>>>()?;
        let next = if users.len() as i64 > top {
            users.truncate(top.max(0) as usize);
            users.last().map(|u| u.upn.clone())
        } else {
            None
        };
        Ok(UserPage { users, next })
    }

    /// Sets a cloud-only user's display name.
    pub async fn set_display_name(&self, tenant_id: Uuid, id: Uuid, name: &str) -> Result<()> {
        sqlx::query(
            "UPDATE users SET display_name = ? WHERE tenant_id = ? AND id = ? AND source = 'cloud'",
        )
        .bind(name)
        .bind(tenant_id.to_string())
        .bind(id.to_string())
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// Replaces a cloud-only user's password hash and, in the same transaction, ends their
    /// sessions, refresh tokens and unredeemed codes.
    pub async fn set_password_hash(
        &self,
        tenant_id: Uuid,
        id: Uuid,
        hash: &str,
        now: i64,
    ) -> Result<()> {
        let mut tx = self.write_tx().await?;
        sqlx::query(
            "UPDATE users SET password_hash = ?, updated_at = ? WHERE tenant_id = ? AND id = ? AND source = 'cloud'",
        )
        .bind(hash)
        .bind(now)
        .bind(tenant_id.to_string())
        .bind(id.to_string())
        .execute(&mut *tx)
        .await?;
        Self::end_sessions(&mut tx, tenant_id, id).await?;
        tx.commit().await?;
        Ok(())
    }

    /// Ends a user's sessions and refresh tokens (on a password change, a block, a delete).
    pub(crate) async fn end_sessions(
        tx: &mut sqlx::Transaction<'static, sqlx::Sqlite>,
        tenant_id: Uuid,
        user_id: Uuid,
    ) -> Result<()> {
        for table in ["sessions", "refresh_tokens", "auth_codes"] {
            sqlx::query(&format!(
                "DELETE FROM {table} WHERE tenant_id = ? AND user_id = ?"
            ))
            .bind(tenant_id.to_string())
            .bind(user_id.to_string())
            .execute(&mut **tx)
            .await?;
        }
        Ok(())
    }

    /// Blocks (and signs out everywhere) or unblocks a user.
    pub async fn set_user_enabled(
        &self,
        tenant_id: Uuid,
        id: Uuid,
        enabled: bool,
        now: i64,
    ) -> Result<()> {
        let mut tx = self.write_tx().await?;
        let before = global_admins(&mut tx, tenant_id).await?;
        sqlx::query("UPDATE users SET enabled = ?, updated_at = ? WHERE tenant_id = ? AND id = ?")
            .bind(enabled as i64)
            .bind(now)
            .bind(tenant_id.to_string())
            .bind(id.to_string())
            .execute(&mut *tx)
            .await?;
        if !enabled {
            keeps_a_global_admin(&mut tx, tenant_id, before).await?;
            Self::end_sessions(&mut tx, tenant_id, id).await?;
        }
        tx.commit().await?;
        Ok(())
    }

    /// Gives a user a role (`none` for no role). Refused ([`StoreError::LastGlobalAdmin`],
    /// nothing changed) when it would leave the tenant without an enabled Global
    /// Administrator, however many changes run at once.
    pub async fn set_user_role(
        &self,
        tenant_id: Uuid,
        id: Uuid,
        role: &str,
        now: i64,
    ) -> Result<()> {
        let mut tx = self.write_tx().await?;
        let before = global_admins(&mut tx, tenant_id).await?;
        sqlx::query("UPDATE users SET role = ?, updated_at = ? WHERE tenant_id = ? AND id = ?")
            .bind(role)
            .bind(now)
            .bind(tenant_id.to_string())
            .bind(id.to_string())
            .execute(&mut *tx)
            .await?;
        keeps_a_global_admin(&mut tx, tenant_id, before).await?;
        tx.commit().await?;
        Ok(())
    }

    /// How many enabled users hold `role` in the tenant.
    pub async fn count_role(&self, tenant_id: Uuid, role: &str) -> Result<i64> {
        Ok(sqlx::query_scalar(
            "SELECT COUNT(*) FROM users WHERE tenant_id = ? AND role = ? AND enabled = 1",
        )
        .bind(tenant_id.to_string())
        .bind(role)
        .fetch_one(&self.pool)
        .await?)
    }

    /// Deletes a user with their sessions, refresh tokens and codes (refused, nothing
    /// changed, when it would leave the tenant without an enabled Global Administrator).
    pub async fn delete_user(&self, tenant_id: Uuid, id: Uuid) -> Result<()> {
        let mut tx = self.write_tx().await?;
        let before = global_admins(&mut tx, tenant_id).await?;
        Self::end_sessions(&mut tx, tenant_id, id).await?;
        sqlx::query("DELETE FROM device_codes WHERE tenant_id = ? AND user_id = ?")
            .bind(tenant_id.to_string())
            .bind(id.to_string())
            .execute(&mut *tx)
            .await?;
        let r = sqlx::query("DELETE FROM users WHERE tenant_id = ? AND id = ?")
            .bind(tenant_id.to_string())
            .bind(id.to_string())
            .execute(&mut *tx)
            .await?;
        if r.rows_affected() != 1 {
            return Err(StoreError::NotFound(format!("user {id}")));
        }
        keeps_a_global_admin(&mut tx, tenant_id, before).await?;
        tx.commit().await?;
        Ok(())
    }

    // ---- domains

    /// A domain by name whether verified or not.
    pub async fn domain_any(&self, name: &str) -> Result<Option<Domain>> {
        let row = sqlx::query("SELECT * FROM domains WHERE name = ?")
            .bind(name.to_ascii_lowercase())
            .fetch_optional(&self.pool)
            .await?;
        row.as_ref().map(Store::domain_row).transpose()
    }

    /// Marks a domain verified.
    pub async fn set_domain_verified(&self, tenant_id: Uuid, name: &str) -> Result<()> {
        sqlx::query("UPDATE domains SET verified = 1 WHERE tenant_id = ? AND name = ?")
            .bind(tenant_id.to_string())
            .bind(name.to_ascii_lowercase())
            .execute(&self.pool)
            .await?;
        self.domains_cache.clear();
        Ok(())
    }

    /// How many users have a UPN in `name`.
    pub async fn domain_user_count(&self, tenant_id: Uuid, name: &str) -> Result<i64> {
        let pattern = format!("%@{}", name.replace(['%', '_', '\\'], ""));
        Ok(sqlx::query_scalar(
            "SELECT COUNT(*) FROM users WHERE tenant_id = ? AND upn LIKE ? AND upn NOT LIKE '%#released-%'",
        )
        .bind(tenant_id.to_string())
        .bind(pattern)
        .fetch_one(&self.pool)
        .await?)
    }

    /// Removes a domain (and its federation settings). The caller checks it is unused.
    pub async fn remove_domain(&self, tenant_id: Uuid, name: &str) -> Result<()> {
        let name = name.to_ascii_lowercase();
        let mut tx = self.write_tx().await?;
        sqlx::query("DELETE FROM federation WHERE domain = ? AND tenant_id = ?")
            .bind(&name)
            .bind(tenant_id.to_string())
            .execute(&mut *tx)
            .await?;
        let r = sqlx::query("DELETE FROM domains WHERE name = ? AND tenant_id = ?")
            .bind(&name)
            .bind(tenant_id.to_string())
            .execute(&mut *tx)
            .await?;
        if r.rows_affected() != 1 {
            return Err(StoreError::NotFound(format!("domain {name}")));
        }
        tx.commit().await?;
        self.domains_cache.clear();
        Ok(())
    }

    /// Removes claims on domains that were never verified within `max_age_secs`, so an
    /// abandoned claim does not keep the name from its real owner.
    pub async fn purge_unverified_domains(&self, now: i64, max_age_secs: i64) -> Result<u64> {
        let mut tx = self.write_tx().await?;
        sqlx::query(
            "DELETE FROM federation WHERE domain IN (SELECT name FROM domains WHERE verified = 0 AND created_at < ?)",
        )
        .bind(now - max_age_secs)
        .execute(&mut *tx)
        .await?;
        let r = sqlx::query("DELETE FROM domains WHERE verified = 0 AND created_at < ?")
            .bind(now - max_age_secs)
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(r.rows_affected())
    }

    // ---- apps

    /// The tenant's apps by name.
    pub async fn apps(&self, tenant_id: Uuid) -> Result<Vec<App>> {
        let rows = sqlx::query("SELECT * FROM apps WHERE tenant_id = ? ORDER BY name, client_id")
            .bind(tenant_id.to_string())
            .fetch_all(&self.pool)
            .await?;
        rows.into_iter()
            .filter_map(|r| self.app_row(Some(r)).transpose())
            .collect()
    }

    /// Replaces an app's redirect URIs.
    pub async fn set_app_redirect_uris(
        &self,
        tenant_id: Uuid,
        client_id: &str,
        uris: &[String],
    ) -> Result<()> {
        let json = serde_json::to_string(uris)
            .map_err(|e| StoreError::Db(sqlx::Error::Encode(Box::new(e))))?;
        sqlx::query("UPDATE apps SET redirect_uris = ? WHERE tenant_id = ? AND client_id = ?")
            .bind(json)
            .bind(tenant_id.to_string())
            .bind(client_id.to_ascii_lowercase())
            .execute(&self.pool)
            .await?;
        self.apps.clear();
        Ok(())
    }

    /// Turns the groups claim of an app's tokens on or off.
    pub async fn set_app_groups_claim(
        &self,
        tenant_id: Uuid,
        client_id: &str,
        on: bool,
    ) -> Result<()> {
        sqlx::query("UPDATE apps SET groups_claim = ? WHERE tenant_id = ? AND client_id = ?")
            .bind(on)
            .bind(tenant_id.to_string())
            .bind(client_id.to_ascii_lowercase())
            .execute(&self.pool)
            .await?;
        self.apps.clear();
        Ok(())
    }

    /// Replaces a confidential app's secret hash; the old secret stops working at once.
    pub async fn set_app_secret_hash(
        &self,
        tenant_id: Uuid,
        client_id: &str,
        hash: &str,
    ) -> Result<()> {
        sqlx::query(
            "UPDATE apps SET secret_hash = ? WHERE tenant_id = ? AND client_id = ? AND public = 0",
        )
        .bind(hash)
        .bind(tenant_id.to_string())
        .bind(client_id.to_ascii_lowercase())
        .execute(&self.pool)
        .await?;
        self.apps.clear();
        Ok(())
    }

    /// Deletes an app with its refresh tokens, codes and pending device codes.
    pub async fn delete_app(&self, tenant_id: Uuid, client_id: &str) -> Result<()> {
        let client_id = client_id.to_ascii_lowercase();
        let mut tx = self.write_tx().await?;
        for table in ["refresh_tokens", "auth_codes", "device_codes"] {
            sqlx::query(&format!(
                "DELETE FROM {table} WHERE tenant_id = ? AND client_id = ?"
            ))
            .bind(tenant_id.to_string())
            .bind(&client_id)
            .execute(&mut *tx)
            .await?;
        }
        let r = sqlx::query("DELETE FROM apps WHERE tenant_id = ? AND client_id = ?")
            .bind(tenant_id.to_string())
            .bind(&client_id)
            .execute(&mut *tx)
            .await
            .map_err(|e| conflict(e, format!("app {client_id}")))?;
        if r.rows_affected() != 1 {
            return Err(StoreError::NotFound(format!("app {client_id}")));
        }
        tx.commit().await?;
        self.apps.clear();
        Ok(())
    }

    // ---- sign-in log

    /// Sign-in log lines matching `f`, newest first.
    pub async fn sign_ins_filtered(
        &self,
        tenant_id: Uuid,
        f: &SignInFilter,
    ) -> Result<Vec<SignIn>> {
        self.flush_sign_ins().await;
        let (result, aadsts) = match f.result.as_deref() {
            Some(r) => match r.parse::<i64>() {
                Ok(code) => (None, Some(code)),
                Err(_) => (Some(r.to_ascii_lowercase()), None),
            },
            None => (None, None),
        };
        let rows = sqlx::query(
            "SELECT * FROM signins WHERE tenant_id = ?
               AND (? IS NULL OR username = ? COLLATE NOCASE)
               AND (? IS NULL OR result = ?)
               AND (? IS NULL OR aadsts = ?)
               AND (? IS NULL OR time_ms >= ?)
               AND (? IS NULL OR time_ms < ?)
             ORDER BY time_ms DESC, id DESC LIMIT ?",
        )
        .bind(tenant_id.to_string())
        .bind(&f.user)
        .bind(&f.user)
        .bind(&result)
        .bind(&result)
        .bind(aadsts)
        .bind(aadsts)
        .bind(f.since_ms)
        .bind(f.since_ms)
        .bind(f.until_ms)
        .bind(f.until_ms)
        .bind(f.limit)
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(Store::sign_in_row).collect()
    }

    /// Deletes each tenant's sign-in log lines older than its retention setting. Returns
    /// how many lines went.
    pub async fn purge_sign_ins(&self, now_ms: i64) -> Result<u64> {
        self.flush_sign_ins().await;
        let tenants: Vec<String> = sqlx::query("SELECT id FROM tenants")
            .fetch_all(&self.pool)
            .await?
            .iter()
            .map(|r| r.try_get::<String, _>("id"))
            .collect::<std::result::Result<_, _>>()?;
        let mut gone = 0;
        for id in tenants {
            let Some(t) = self.tenant(&id).await? else {
                continue;
            };
            let keep_ms = i64::from(t.settings.signin_retention_days) * 86_400_000;
            let r = sqlx::query("DELETE FROM signins WHERE tenant_id = ? AND time_ms < ?")
                .bind(&id)
                .bind(now_ms - keep_ms)
                .execute(&self.pool)
                .await?;
            gone += r.rows_affected();
        }
        Ok(gone)
    }
}

/// Enabled Global Administrators of the tenant, read inside a write transaction (which holds
/// SQLite's write lock, so no other change runs meanwhile).
async fn global_admins(
    tx: &mut sqlx::Transaction<'static, sqlx::Sqlite>,
    tenant_id: Uuid,
) -> Result<i64> {
    Ok(sqlx::query_scalar(
        "SELECT COUNT(*) FROM users WHERE tenant_id = ? AND role = ? AND enabled = 1",
    )
    .bind(tenant_id.to_string())
    .bind(crate::model::records::GLOBAL_ADMIN)
    .fetch_one(&mut **tx)
    .await?)
}

/// Refuses a change that took the tenant's last enabled Global Administrator away (`before`
/// counted at the start of the same transaction). The caller's transaction is then dropped,
/// so nothing is written.
async fn keeps_a_global_admin(
    tx: &mut sqlx::Transaction<'static, sqlx::Sqlite>,
    tenant_id: Uuid,
    before: i64,
) -> Result<()> {
    if before >= 1 && global_admins(tx, tenant_id).await? < 1 {
        return Err(StoreError::LastGlobalAdmin);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::DomainKind;

    async fn store() -> anyhow::Result<(Store, std::path::PathBuf, Uuid)> {
        crate::store::test_store("admin", "contoso.example", DomainKind::Cloud).await
    }

    /// The last enabled Global Administrator cannot be demoted, blocked or deleted; with a
    /// second one, each works, and nothing of a refused change is written.
    #[tokio::test]
    async fn the_last_global_administrator_stays() -> anyhow::Result<()> {
        use crate::model::records::GLOBAL_ADMIN;
        let (s, dir, tid) = store().await?;
        let a = s
            .add_cloud_user(tid, "a@contoso.example", "h", GLOBAL_ADMIN, 1)
            .await?;
        let last = |r: Result<()>| matches!(r, Err(StoreError::LastGlobalAdmin));
        assert!(last(s.set_user_role(tid, a, "none", 2).await));
        assert!(last(s.set_user_enabled(tid, a, false, 2).await));
        assert!(last(s.delete_user(tid, a).await));
        assert_eq!(s.count_role(tid, GLOBAL_ADMIN).await?, 1);
        let user = s.user_by_id(tid, a).await?;
        assert!(user.is_some_and(|u| u.enabled && u.role == GLOBAL_ADMIN));

        let b = s
            .add_cloud_user(tid, "b@contoso.example", "h", GLOBAL_ADMIN, 1)
            .await?;
        s.set_user_enabled(tid, b, false, 3).await?;
        // A blocked holder does not count: a is still the last.
        assert!(last(s.set_user_role(tid, a, "none", 3).await));
        s.set_user_enabled(tid, b, true, 4).await?;
        s.set_user_role(tid, a, "none", 5).await?;
        assert!(last(s.delete_user(tid, b).await));
        s.set_user_role(tid, a, GLOBAL_ADMIN, 6).await?;
        s.delete_user(tid, b).await?;
        assert_eq!(s.count_role(tid, GLOBAL_ADMIN).await?, 1);
        // A tenant with no Global Administrator to lose (a store made for tests, an
        // import) is not blocked by the rule.
        let other = Uuid::new_v4();
        s.create_tenant(other, "fabrikam", 1).await?;
        let u = s
            .add_cloud_user(other, "u@fabrikam.example", "h", "none", 1)
            .await?;
        s.set_user_enabled(other, u, false, 2).await?;
        s.delete_user(other, u).await?;
        s.close().await;
        std::fs::remove_dir_all(dir)?;
        Ok(())
    }

    #[tokio::test]
    async fn users_page_and_search() -> anyhow::Result<()> {
        let (s, dir, tid) = store().await?;
        for i in 0..7 {
            s.add_cloud_user(tid, &format!("u{i}@contoso.example"), "h", "none", 1)
                .await?;
        }
        s.add_cloud_user(tid, "50%_off@contoso.example", "h", "none", 1)
            .await?;
        let p1 = s.users_page(tid, None, None, 3).await?;
        assert_eq!(p1.users.len(), 3);
        let p2 = s.users_page(tid, None, p1.next.as_deref(), 3).await?;
        let p3 = s.users_page(tid, None, p2.next.as_deref(), 3).await?;
        assert_eq!(p3.users.len(), 2);
        assert!(p3.next.is_none());
        let mut all: Vec<String> = [p1, p2, p3]
            .into_iter()
            .flat_map(|p| p.users.into_iter().map(|u| u.upn))
            .collect();
        all.dedup();
        assert_eq!(all.len(), 8, "every user once");
        // LIKE wildcards in the search are literal.
        let hits = s.users_page(tid, Some("%_"), None, 50).await?;
        assert_eq!(hits.users.len(), 1);
        assert_eq!(hits.users[0].upn, "50%_off@contoso.example");
        assert_eq!(s.domain_user_count(tid, "contoso.example").await?, 8);
        s.close().await;
        std::fs::remove_dir_all(&dir)?;
        Ok(())
    }

    #[tokio::test]
    async fn sign_in_log_filters_and_retention() -> anyhow::Result<()> {
        let (s, dir, tid) = store().await?;
        let day = 86_400_000;
        let now = 100 * day;
        for (age_days, user, result, code) in [
            (40, "old@contoso.example", "failure", Some(50126)),
            (2, "a@contoso.example", "success", None),
            (1, "a@contoso.example", "failure", Some(50053)),
        ] {
            s.log_sign_in(
                tid,
                &SignIn {
                    time_ms: now - age_days * day,
                    username: user.into(),
                    client_id: None,
                    result: result.into(),
                    aadsts: code,
                    win32: None,
                    agent_id: None,
                    other_agents: Vec::new(),
                    latency_ms: None,
                    correlation_id: "c".into(),
                    client_ip: None,
                },
            )
            .await?;
        }
        let f = |user: Option<&str>, result: Option<&str>, since: Option<i64>| SignInFilter {
            user: user.map(str::to_string),
            result: result.map(str::to_string),
            since_ms: since,
            until_ms: None,
            limit: 100,
        };
        assert_eq!(
            s.sign_ins_filtered(tid, &f(None, None, None)).await?.len(),
            3
        );
        assert_eq!(
            s.sign_ins_filtered(tid, &f(Some("A@contoso.example"), None, None))
                .await?
                .len(),
            2
        );
        assert_eq!(
            s.sign_ins_filtered(tid, &f(None, Some("failure"), None))
                .await?
                .len(),
            2
        );
        assert_eq!(
            s.sign_ins_filtered(tid, &f(None, Some("50053"), None))
                .await?
                .len(),
            1
        );
        assert_eq!(
            s.sign_ins_filtered(tid, &f(None, None, Some(now - 3 * day)))
                .await?
                .len(),
            2
        );
        // Default retention is 30 days: the 40-day-old line goes.
        assert_eq!(s.purge_sign_ins(now).await?, 1);
        let settings = crate::model::settings::Settings {
            signin_retention_days: 1,
            ..Default::default()
        };
        s.save_settings(tid, &settings).await?;
        assert_eq!(s.purge_sign_ins(now).await?, 1);
        assert_eq!(
            s.sign_ins_filtered(tid, &f(None, None, None)).await?.len(),
            1
        );
        s.close().await;
        std::fs::remove_dir_all(&dir)?;
        Ok(())
    }

    #[tokio::test]
    async fn unverified_domains_do_not_sign_in_and_expire() -> anyhow::Result<()> {
        let (s, dir, tid) = store().await?;
        s.add_domain(tid, "corp.example", DomainKind::Managed, Some("code"), 100)
            .await?;
        assert!(s.domain("corp.example").await?.is_none());
        assert!(s.domain_any("corp.example").await?.is_some());
        assert_eq!(s.purge_unverified_domains(150, 100).await?, 0);
        s.set_domain_verified(tid, "corp.example").await?;
        assert!(s.domain("corp.example").await?.is_some());
        s.add_domain(tid, "stale.example", DomainKind::Managed, Some("c"), 100)
            .await?;
        assert_eq!(s.purge_unverified_domains(1000, 100).await?, 1);
        assert!(s.domain_any("stale.example").await?.is_none());
        s.close().await;
        std::fs::remove_dir_all(&dir)?;
        Ok(())
    }
}
