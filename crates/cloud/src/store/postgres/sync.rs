//! PostgreSQL: sync.

use async_trait::async_trait;
use passthru_proto::sync::{SyncBatch, SyncDone, SyncGroup, SyncObject, SyncUser};
use sqlx::Row;
use uuid::Uuid;

use super::*;
use crate::store::sync::*;

#[async_trait]
impl SyncStore for PgStore {
    async fn apply_sync_batch(
        &self,
        tenant_id: Uuid,
        forest: &str,
        batch: &SyncBatch,
        now: i64,
    ) -> Result<Applied> {
        // The tenant's lock: a batch reads users (who holds a UPN) before it writes them.
        let mut tx = self.write_tx(Lock::Tenant(tenant_id)).await?;
        let mut applied = Applied::default();
        let run = batch.run_id.to_string();
        for object in &batch.objects {
            match object {
                SyncObject::User(u) => {
                    match upsert_user(&mut tx, tenant_id, forest, &run, u, now).await? {
                        Ok(password_changed) => {
                            applied.users += 1;
                            if password_changed {
                                applied.password_changed.extend(effective_upn(u));
                            }
                        }
                        Err(conflict) => applied.conflicts.push(conflict),
                    }
                }
                SyncObject::Group(g) => {
                    upsert_group(&mut tx, tenant_id, forest, &run, g, now).await?;
                    applied.groups += 1;
                }
                SyncObject::Deleted { object_guid } => {
                    applied.deleted += delete_object(&mut tx, tenant_id, *object_guid).await?;
                }
                _ => {}
            }
        }
        for guid in &batch.present {
            for table in ["users", "ad_groups"] {
                sqlx::query(&format!(
                    "UPDATE {table} SET sync_run = $1 WHERE tenant_id = $2 AND object_guid = $3"
                ))
                .bind(&run)
                .bind(tenant_id.to_string())
                .bind(guid.to_string())
                .execute(&mut *tx)
                .await?;
            }
        }
        tx.commit().await?;
        Ok(applied)
    }

    async fn finish_sync_run(
        &self,
        tenant_id: Uuid,
        forest: &str,
        done: &SyncDone,
        conflicts: &[String],
        now: i64,
    ) -> Result<u64> {
        let mut tx = self.write_tx(Lock::Tenant(tenant_id)).await?;
        let mut removed = 0;
        if done.complete {
            let run = done.run_id.to_string();
            let gone: Vec<String> = sqlx::query_scalar(
                "SELECT object_guid FROM users WHERE tenant_id = $1 AND sync_forest = $2
                   AND (sync_run IS NULL OR sync_run <> $3)
                 UNION ALL
                 SELECT object_guid FROM ad_groups WHERE tenant_id = $4 AND forest = $5
                   AND (sync_run IS NULL OR sync_run <> $6)",
            )
            .bind(tenant_id.to_string())
            .bind(forest)
            .bind(&run)
            .bind(tenant_id.to_string())
            .bind(forest)
            .bind(&run)
            .fetch_all(&mut *tx)
            .await?;
            for guid in gone {
                if let Ok(g) = Uuid::parse_str(&guid) {
                    removed += delete_object(&mut tx, tenant_id, g).await?;
                }
            }
        }
        let watermark = serde_json::to_string(&done.watermark).unwrap_or_default();
        let conflicts = serde_json::to_string(conflicts).unwrap_or_else(|_| "[]".into());
        sqlx::query(
            "UPDATE sync_forests SET watermark = $1, last_success_at = $2, last_run_at = $3,
                 last_error = NULL, last_objects = $4, conflicts = $5,
                 last_full_at = CASE WHEN $6 THEN $7 ELSE last_full_at END,
                 full_total = CASE WHEN $8 THEN $9 ELSE full_total END
             WHERE tenant_id = $10 AND forest = $11::citext",
        )
        .bind(watermark)
        .bind(now)
        .bind(now)
        .bind(i64::try_from(done.objects).unwrap_or(i64::MAX))
        .bind(conflicts)
        .bind(done.full)
        .bind(now)
        .bind(done.full)
        .bind(i64::try_from(done.objects).unwrap_or(i64::MAX))
        .bind(tenant_id.to_string())
        .bind(forest)
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(removed)
    }

    async fn sync_run_failed(
        &self,
        tenant_id: Uuid,
        forest: &str,
        error: &str,
        now: i64,
    ) -> Result<()> {
        sqlx::query(
            "UPDATE sync_forests SET last_error = $1, last_run_at = $2 WHERE tenant_id = $3 AND forest = $4::citext",
        )
        .bind(error.chars().take(2000).collect::<String>())
        .bind(now)
        .bind(tenant_id.to_string())
        .bind(forest)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    async fn ensure_sync_forest(
        &self,
        tenant_id: Uuid,
        forest: &str,
        interval_seconds: u64,
    ) -> Result<()> {
        sqlx::query(
            "INSERT INTO sync_forests (tenant_id, forest, interval_seconds) VALUES ($1, $2, $3)
             ON CONFLICT (tenant_id, forest) DO UPDATE SET interval_seconds = excluded.interval_seconds",
        )
        .bind(tenant_id.to_string())
        .bind(forest)
        .bind(i64::try_from(interval_seconds).unwrap_or(i64::MAX))
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    async fn set_sync_holder(
        &self,
        tenant_id: Uuid,
        forest: &str,
        agent: Option<Uuid>,
        now: i64,
    ) -> Result<()> {
        sqlx::query(
            "UPDATE sync_forests SET holder_agent_id = $1, lease_since = $2 WHERE tenant_id = $3 AND forest = $4::citext",
        )
        .bind(agent.map(|a| a.to_string()))
        .bind(agent.map(|_| now))
        .bind(tenant_id.to_string())
        .bind(forest)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    async fn sync_forests(&self, tenant_id: Uuid) -> Result<Vec<SyncForestState>> {
        let rows = sqlx::query("SELECT * FROM sync_forests WHERE tenant_id = $1 ORDER BY forest")
            .bind(tenant_id.to_string())
            .fetch_all(&self.pool)
            .await?;
        rows.iter()
            .map(|row| {
                let holder: Option<String> = row.try_get("holder_agent_id")?;
                let watermark: Option<String> = row.try_get("watermark")?;
                let conflicts: String = row.try_get("conflicts")?;
                Ok(SyncForestState {
                    forest: row.try_get("forest")?,
                    holder_agent_id: holder.and_then(|h| Uuid::parse_str(&h).ok()),
                    lease_since: row.try_get("lease_since")?,
                    watermark: watermark.and_then(|w| serde_json::from_str(&w).ok()),
                    interval_seconds: u64::try_from(row.try_get::<i64, _>("interval_seconds")?)
                        .unwrap_or(60),
                    last_full_at: row.try_get("last_full_at")?,
                    last_success_at: row.try_get("last_success_at")?,
                    last_run_at: row.try_get("last_run_at")?,
                    last_error: row.try_get("last_error")?,
                    last_objects: row.try_get("last_objects")?,
                    full_total: row.try_get("full_total")?,
                    conflicts: serde_json::from_str(&conflicts).unwrap_or_default(),
                })
            })
            .collect()
    }

    async fn synced_users_by_mail(
        &self,
        tenant_id: Uuid,
        mail: &str,
    ) -> Result<Vec<crate::store::User>> {
        let rows = sqlx::query(
            "SELECT * FROM users WHERE tenant_id = $1 AND mail = $2::citext
               AND synced_at IS NOT NULL LIMIT 2",
        )
        .bind(tenant_id.to_string())
        .bind(mail)
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(PgStore::user_row).collect()
    }

    async fn user_group_ids(
        &self,
        tenant_id: Uuid,
        object_guid: &str,
        limit: i64,
    ) -> Result<Vec<Uuid>> {
        let rows = sqlx::query(
            "WITH RECURSIVE member_of(guid) AS (
                 SELECT group_guid FROM group_members WHERE tenant_id = $1 AND member_guid = $2
                 UNION
                 SELECT gm.group_guid FROM group_members gm JOIN member_of m ON gm.member_guid = m.guid
                 WHERE gm.tenant_id = $1
             )
             SELECT g.id FROM ad_groups g JOIN member_of m ON g.object_guid = m.guid
             WHERE g.tenant_id = $1 ORDER BY g.id LIMIT $3",
        )
        .bind(tenant_id.to_string())
        .bind(object_guid)
        .bind(limit)
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(|r| uuid_col(r, "id")).collect()
    }
}

/// Inserts or updates a synced user; `Ok(Err(why))` when it cannot be applied.
pub(super) async fn upsert_user(
    tx: &mut Tx,
    tenant_id: Uuid,
    forest: &str,
    run: &str,
    u: &SyncUser,
    now: i64,
) -> Result<std::result::Result<bool, String>> {
    let tenant = tenant_id.to_string();
    let guid = u.object_guid.to_string();
    let anchor = u.anchor().to_string();
    let Some(upn) = effective_upn(u) else {
        return Ok(Err(format!(
            "{}: no userPrincipalName and no sAMAccountName",
            u.dn
        )));
    };
    // The record of this object: synced before (objectGUID), or created by a pass-through
    // sign-in (anchor). Two arms, each on its own index (users_by_object_guid,
    // users_anchor): one `a OR b` condition made SQLite scan every user of the tenant, which
    // made a full import quadratic in the number of users.
    let existing: Option<Existing> = sqlx::query_as(
        "SELECT id, ad_enabled, sync_attrs, upn, display_name, mail FROM users
           WHERE tenant_id = $1 AND source = 'onprem' AND object_guid = $2
         UNION ALL
         SELECT id, ad_enabled, sync_attrs, upn, display_name, mail FROM users
           WHERE tenant_id = $1 AND source = 'onprem' AND object_guid IS NULL AND immutable_id = $3
         LIMIT 1",
    )
    .bind(&tenant)
    .bind(&guid)
    .bind(&anchor)
    .fetch_optional(&mut **tx)
    .await?;
    let id = existing
        .as_ref()
        .map(|e| e.0.clone())
        .unwrap_or_else(|| onprem_object_id(tenant_id, u.anchor()).to_string());
    // Another record holding the UPN: a stale on-premises one is released; a cloud-only or
    // federated user keeps it, and this object is reported.
    let holder: Option<(String, String)> = sqlx::query_as(
        "SELECT id, source FROM users WHERE tenant_id = $1 AND upn = $2::citext AND id <> $3",
    )
    .bind(&tenant)
    .bind(&upn)
    .bind(&id)
    .fetch_optional(&mut **tx)
    .await?;
    if let Some((holder_id, source)) = holder {
        if source != "onprem" {
            return Ok(Err(format!(
                "{}: the UPN {upn} belongs to a {source} user of the tenant; rename one of them",
                u.dn
            )));
        }
        sqlx::query("UPDATE users SET upn = upn || '#released-' || id WHERE id = $1")
            .bind(&holder_id)
            .execute(&mut **tx)
            .await?;
    }
    let attrs = SyncedAttributes {
        forest: forest.to_string(),
        object_guid: u.object_guid,
        dn: u.dn.clone(),
        sam_account_name: u.sam_account_name.clone(),
        given_name: u.given_name.clone(),
        surname: u.surname.clone(),
        enabled: u.enabled,
        account_expires: u.account_expires,
        when_changed: u.when_changed,
        password_last_set: u.password_last_set,
        last_change: now,
    };
    // A password changed in AD (outside the cloud): the agents must forget the wrong
    // passwords they remember for the user.
    let password_changed = existing
        .as_ref()
        .and_then(|e| e.2.as_deref())
        .and_then(|o| serde_json::from_str::<SyncedAttributes>(o).ok())
        .is_some_and(|o| o.password_last_set != u.password_last_set);
    // Unchanged objects (a full import) keep their time of last change.
    let unchanged = existing.as_ref().is_some_and(|e| {
        e.3 == upn
            && e.4 == u.display_name
            && e.5 == u.mail
            && e.2
                .as_deref()
                .and_then(|o| serde_json::from_str::<SyncedAttributes>(o).ok())
                .is_some_and(|o| {
                    SyncedAttributes {
                        last_change: now,
                        ..o
                    } == attrs
                })
    });
    let attrs_json = serde_json::to_string(&attrs).unwrap_or_default();
    let newly_disabled = existing
        .as_ref()
        .is_some_and(|e| e.1 != Some(0) && !u.enabled);
    match existing {
        Some(_) => {
            sqlx::query(
                "UPDATE users SET upn = $1, display_name = $2, mail = $3, immutable_id = $4,
                     object_guid = $5, sync_forest = $6, sync_run = $7, ad_enabled = $8,
                     account_expires = $9, sync_attrs = CASE WHEN $10 THEN sync_attrs ELSE $11 END,
                     synced_at = CASE WHEN $12 AND synced_at IS NOT NULL THEN synced_at ELSE $13 END,
                     updated_at = CASE WHEN $14 THEN updated_at ELSE $15 END
                 WHERE id = $16",
            )
            .bind(&upn)
            .bind(&u.display_name)
            .bind(&u.mail)
            .bind(&anchor)
            .bind(&guid)
            .bind(forest)
            .bind(run)
            .bind(i64::from(u.enabled))
            .bind(u.account_expires)
            .bind(unchanged)
            .bind(&attrs_json)
            .bind(unchanged)
            .bind(now)
            .bind(unchanged)
            .bind(now)
            .bind(&id)
            .execute(&mut **tx)
            .await?;
        }
        None => {
            sqlx::query(
                "INSERT INTO users (id, tenant_id, upn, display_name, mail, source, immutable_id,
                     created_at, updated_at, object_guid, sync_forest, sync_run, ad_enabled,
                     account_expires, sync_attrs, synced_at)
                 VALUES ($1, $2, $3, $4, $5, 'onprem', $6, $7, $8, $9, $10, $11, $12, $13, $14, $15)",
            )
            .bind(&id)
            .bind(&tenant)
            .bind(&upn)
            .bind(&u.display_name)
            .bind(&u.mail)
            .bind(&anchor)
            .bind(now)
            .bind(now)
            .bind(&guid)
            .bind(forest)
            .bind(run)
            .bind(i64::from(u.enabled))
            .bind(u.account_expires)
            .bind(&attrs_json)
            .bind(now)
            .execute(&mut **tx)
            .await?;
        }
    }
    // The names the user signs in with (UPN, implicit UPN, mail) count toward one smart
    // lockout: a changed user's old names are forgotten first.
    if let Ok(uid) = Uuid::parse_str(&id) {
        if !unchanged {
            sqlx::query("DELETE FROM sign_in_names WHERE user_id = $1")
                .bind(&id)
                .execute(&mut **tx)
                .await?;
        }
        let implicit = implicit_upn(u);
        for name in [Some(upn.as_str()), implicit.as_deref(), u.mail.as_deref()]
            .into_iter()
            .flatten()
        {
            super::lockout::remember_name(&mut **tx, tenant_id, uid, name).await?;
        }
    }
    if newly_disabled {
        // Disabled in AD: its sessions and refresh tokens end, as when an administrator
        // blocks it in the cloud.
        if let Ok(uid) = Uuid::parse_str(&id) {
            PgStore::end_sessions(tx, tenant_id, uid).await?;
        }
    }
    Ok(Ok(password_changed))
}

pub(super) async fn upsert_group(
    tx: &mut Tx,
    tenant_id: Uuid,
    forest: &str,
    run: &str,
    g: &SyncGroup,
    now: i64,
) -> Result<()> {
    let tenant = tenant_id.to_string();
    let guid = g.object_guid.to_string();
    let id = onprem_object_id(tenant_id, g.anchor()).to_string();
    sqlx::query(
        "INSERT INTO ad_groups (id, tenant_id, immutable_id, object_guid, forest, name, display_name,
             mail, dn, created_at, synced_at, sync_run)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12)
         ON CONFLICT (tenant_id, object_guid) DO UPDATE SET immutable_id = excluded.immutable_id,
             forest = excluded.forest, name = excluded.name, display_name = excluded.display_name,
             mail = excluded.mail, dn = excluded.dn, synced_at = excluded.synced_at,
             sync_run = excluded.sync_run",
    )
    .bind(&id)
    .bind(&tenant)
    .bind(g.anchor().to_string())
    .bind(&guid)
    .bind(forest)
    .bind(&g.sam_account_name)
    .bind(&g.display_name)
    .bind(&g.mail)
    .bind(&g.dn)
    .bind(now)
    .bind(now)
    .bind(run)
    .execute(&mut **tx)
    .await?;
    sqlx::query("DELETE FROM group_members WHERE tenant_id = $1 AND group_guid = $2")
        .bind(&tenant)
        .bind(&guid)
        .execute(&mut **tx)
        .await?;
    for member in &g.members {
        sqlx::query(
            "INSERT INTO group_members (tenant_id, group_guid, member_guid) VALUES ($1, $2, $3)
             ON CONFLICT DO NOTHING",
        )
        .bind(&tenant)
        .bind(&guid)
        .bind(member.to_string())
        .execute(&mut **tx)
        .await?;
    }
    Ok(())
}

/// Removes a synced user (with its sessions) or group (with its memberships).
pub(super) async fn delete_object(tx: &mut Tx, tenant_id: Uuid, object_guid: Uuid) -> Result<u64> {
    let tenant = tenant_id.to_string();
    let guid = object_guid.to_string();
    let mut removed = 0;
    let users: Vec<String> = sqlx::query_scalar(
        "SELECT id FROM users WHERE tenant_id = $1 AND object_guid = $2 AND source = 'onprem'",
    )
    .bind(&tenant)
    .bind(&guid)
    .fetch_all(&mut **tx)
    .await?;
    for id in users {
        if let Ok(uid) = Uuid::parse_str(&id) {
            PgStore::end_sessions(tx, tenant_id, uid).await?;
        }
        for q in [
            "DELETE FROM device_codes WHERE tenant_id = $1 AND user_id = $2",
            "DELETE FROM users WHERE tenant_id = $1 AND id = $2",
        ] {
            sqlx::query(q)
                .bind(&tenant)
                .bind(&id)
                .execute(&mut **tx)
                .await?;
        }
        removed += 1;
    }
    let r = sqlx::query("DELETE FROM ad_groups WHERE tenant_id = $1 AND object_guid = $2")
        .bind(&tenant)
        .bind(&guid)
        .execute(&mut **tx)
        .await?;
    removed += r.rows_affected();
    sqlx::query(
        "DELETE FROM group_members WHERE tenant_id = $1 AND (group_guid = $2 OR member_guid = $3)",
    )
    .bind(&tenant)
    .bind(&guid)
    .bind(&guid)
    .execute(&mut **tx)
    .await?;
    Ok(removed)
}

/// A user's record as sync finds it: id, ad_enabled, sync_attrs, upn, display_name, mail.
pub(super) type Existing = (
    String,
    Option<i64>,
    Option<String>,
    String,
    Option<String>,
    Option<String>,
);
