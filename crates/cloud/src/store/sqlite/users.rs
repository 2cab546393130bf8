//! SQLite: users.

use async_trait::async_trait;
use uuid::Uuid;

use super::*;
use crate::store::users::*;
use crate::store::*;

#[async_trait]
impl UserStore for SqliteStore {
    async fn add_cloud_user(
        &self,
        tenant_id: Uuid,
        upn: &str,
        password_hash: &str,
        role: &str,
        now: i64,
    ) -> Result<Uuid> {
        let id = Uuid::new_v4();
        sqlx::query(
            "INSERT INTO users (id, tenant_id, upn, display_name, password_hash, source, role, created_at)
             VALUES (?, ?, ?, ?, ?, 'cloud', ?, ?)",
        )
        .bind(id.to_string())
        .bind(tenant_id.to_string())
        .bind(upn)
        .bind(upn.split('@').next().unwrap_or(upn))
        .bind(password_hash)
        .bind(role)
        .bind(now)
        .execute(&self.pool)
        .await
        .map_err(|e| conflict(e, format!("user {upn}")))?;
        Ok(id)
    }

    async fn user_by_upn(&self, tenant_id: Uuid, upn: &str) -> Result<Option<User>> {
        self.user_where(
            "SELECT * FROM users WHERE tenant_id = ? AND upn = ?",
            tenant_id,
            upn,
        )
        .await
    }

    async fn user_by_id(&self, tenant_id: Uuid, id: Uuid) -> Result<Option<User>> {
        self.user_where(
            "SELECT * FROM users WHERE tenant_id = ? AND id = ?",
            tenant_id,
            &id.to_string(),
        )
        .await
    }

    async fn upsert_onprem_user(&self, u: &OnpremUser<'_>, now: i64) -> Result<User> {
        let OnpremUser {
            tenant_id,
            id,
            immutable_id,
            upn,
            display_name,
            mail,
        } = *u;
        const UPSERT: &str = "INSERT INTO users (id, tenant_id, upn, display_name, mail, source, immutable_id, created_at, last_sign_in)
             VALUES (?, ?, ?, ?, ?, 'onprem', ?, ?, ?)
             ON CONFLICT (id) DO UPDATE SET upn = excluded.upn, display_name = excluded.display_name,
                 mail = excluded.mail, last_sign_in = excluded.last_sign_in
             RETURNING *";
        let bind = |q: sqlx::query::Query<
            'static,
            sqlx::Sqlite,
            sqlx::sqlite::SqliteArguments<'static>,
        >| {
            q.bind(id.to_string())
                .bind(tenant_id.to_string())
                .bind(upn.to_string())
                .bind(display_name.map(str::to_string))
                .bind(mail.map(str::to_string))
                .bind(immutable_id.to_string())
                .bind(now)
                .bind(now)
        };
        // The common case, one statement: the user signs in again under the same name.
        match bind(sqlx::query(UPSERT)).fetch_one(&self.pool).await {
            Ok(row) => return Self::user_row(&row),
            Err(sqlx::Error::Database(d)) if d.is_unique_violation() => {}
            Err(e) => return Err(e.into()),
        }
        // Another object holds this UPN (renamed or recreated in AD, or a user of the domain
        // when it was federated): release it, then record this one.
        let mut tx = self.write_tx().await?;
        sqlx::query(
            "UPDATE users SET upn = upn || '#released-' || id
             WHERE tenant_id = ? AND upn = ?
               AND ((source = 'onprem' AND immutable_id <> ?) OR source = 'federated')",
        )
        .bind(tenant_id.to_string())
        .bind(upn)
        .bind(immutable_id)
        .execute(&mut *tx)
        .await?;
        let row = bind(sqlx::query(UPSERT))
            .fetch_one(&mut *tx)
            .await
            .map_err(|e| conflict(e, format!("user {upn}")))?;
        tx.commit().await?;
        Self::user_row(&row)
    }

    async fn touch_sign_in(&self, user_id: Uuid, now: i64) -> Result<()> {
        sqlx::query("UPDATE users SET last_sign_in = ? WHERE id = ?")
            .bind(now)
            .bind(user_id.to_string())
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    async fn users(&self, tenant_id: Uuid) -> Result<Vec<User>> {
        let rows = sqlx::query("SELECT * FROM users WHERE tenant_id = ? ORDER BY upn")
            .bind(tenant_id.to_string())
            .fetch_all(&self.pool)
            .await?;
        rows.iter().map(Self::user_row).collect()
    }

    async fn users_page(
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
            .map(SqliteStore::user_row)
            .collect::<Result<Vec<_>>>()?;
        let next = if users.len() as i64 > top {
            users.truncate(top.max(0) as usize);
            users.last().map(|u| u.upn.clone())
        } else {
            None
        };
        Ok(UserPage { users, next })
    }

    async fn set_display_name(&self, tenant_id: Uuid, id: Uuid, name: &str) -> Result<()> {
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

    async fn set_password_hash(
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

    async fn set_user_enabled(
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

    async fn set_user_role(&self, tenant_id: Uuid, id: Uuid, role: &str, now: i64) -> Result<()> {
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

    async fn count_role(&self, tenant_id: Uuid, role: &str) -> Result<i64> {
        Ok(sqlx::query_scalar(
            "SELECT COUNT(*) FROM users WHERE tenant_id = ? AND role = ? AND enabled = 1",
        )
        .bind(tenant_id.to_string())
        .bind(role)
        .fetch_one(&self.pool)
        .await?)
    }

    async fn delete_user(&self, tenant_id: Uuid, id: Uuid) -> Result<()> {
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
}

/// Enabled Global Administrators of the tenant, read inside a write transaction (which holds
/// SQLite's write lock, so no other change runs meanwhile).
pub(super) async fn global_admins(
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
pub(super) async fn keeps_a_global_admin(
    tx: &mut sqlx::Transaction<'static, sqlx::Sqlite>,
    tenant_id: Uuid,
    before: i64,
) -> Result<()> {
    if before >= 1 && global_admins(tx, tenant_id).await? < 1 {
        return Err(StoreError::LastGlobalAdmin);
    }
    Ok(())
}

impl SqliteStore {
    /// The tenant's user that `sql` (two parameters: the tenant id, then `key`) finds, read
    /// on the request's thread (`inline`).
    async fn user_where(
        &self,
        sql: &'static str,
        tenant_id: Uuid,
        key: &str,
    ) -> Result<Option<User>> {
        let (tenant_id, key) = (tenant_id.to_string(), key.to_string());
        self.inline
            .read(move |c| {
                use rusqlite::OptionalExtension;
                c.prepare_cached(sql)?
                    .query_row([&tenant_id, &key], super::inline::user)
                    .optional()
            })
            .await
    }
}
