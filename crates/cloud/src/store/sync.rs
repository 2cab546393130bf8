//! Directory sync in the store: applying an agent's batches (users, groups, membership,
//! deletions), ending a run (reconciliation, watermark), and each forest's sync state.
//!
//! Synced objects are keyed by objectGUID within the tenant; a user's cloud object id derives
//! from its source anchor (ms-DS-ConsistencyGuid, else objectGUID), the same id a pass-through
//! sign-in gives, so a user who signed in before the first sync keeps its id.
//!
//! About 600 lines: applying a batch is one transaction over users, groups, membership and
//! deletions, whose rules read best side by side; the group queries are in `groups.rs`.

use passthru_proto::sync::{SyncBatch, SyncDone, SyncGroup, SyncObject, SyncUser, Watermark};
use serde::Serialize;

pub use crate::model::records::SyncedAttributes;
use sha2::{Digest, Sha256};
use sqlx::Row;
use uuid::Uuid;

use super::{uuid_col, Result, Store};

type Tx = sqlx::Transaction<'static, sqlx::Sqlite>;

/// A user's record as sync finds it: id, ad_enabled, sync_attrs, upn, display_name, mail.
type Existing = (
    String,
    Option<i64>,
    Option<String>,
    String,
    Option<String>,
    Option<String>,
);

/// The stable object id of an on-premises user or group: derived from the tenant and the
/// source anchor.
pub fn onprem_object_id(tenant_id: Uuid, anchor: Uuid) -> Uuid {
    let mut h = Sha256::new();
    h.update(b"passthru/oid");
    h.update(tenant_id.as_bytes());
    h.update(anchor.as_bytes());
    let d = h.finalize();
    let mut b = [0u8; 16];
    b.copy_from_slice(&d[..16]);
    Uuid::new_v8(b)
}

/// A forest's sync state.
#[derive(Debug, Clone, Serialize)]
pub struct SyncForestState {
    pub forest: String,
    /// The agent holding the lease (the one that syncs), if any.
    pub holder_agent_id: Option<Uuid>,
    pub lease_since: Option<i64>,
    #[serde(skip)]
    pub watermark: Option<Watermark>,
    pub interval_seconds: u64,
    pub last_full_at: Option<i64>,
    pub last_success_at: Option<i64>,
    pub last_run_at: Option<i64>,
    pub last_error: Option<String>,
    /// Objects read by the last successful run.
    pub last_objects: Option<i64>,
    /// Objects in the forest at the last full import.
    pub full_total: Option<i64>,
    /// Objects the last runs could not apply, and why (a UPN taken by a cloud user, ...).
    pub conflicts: Vec<String>,
}

/// What applying a batch did.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Applied {
    pub users: u64,
    pub groups: u64,
    pub deleted: u64,
    /// Objects not applied, and why.
    pub conflicts: Vec<String>,
    /// UPNs of users whose password was changed in AD since the last run.
    pub password_changed: Vec<String>,
}

/// The UPN a synced user gets: its userPrincipalName, else the implicit one
/// (sAMAccountName@the domain's DNS name, from the DN's DC= parts).
pub fn effective_upn(u: &SyncUser) -> Option<String> {
    if let Some(upn) = u.user_principal_name.as_deref().map(str::trim) {
        if upn.contains('@') && !upn.starts_with('@') {
            return Some(upn.to_string());
        }
    }
    implicit_upn(u)
}

/// A synced user's implicit UPN: sAMAccountName@the domain's DNS name (from the DN's DC=
/// parts), which AD accepts in a bind whatever the userPrincipalName.
pub fn implicit_upn(u: &SyncUser) -> Option<String> {
    let sam = u.sam_account_name.as_deref()?.trim();
    let domain: Vec<String> =
        u.dn.split(',')
            .filter_map(|rdn| {
                let (k, v) = rdn.trim().split_once('=')?;
                k.trim()
                    .eq_ignore_ascii_case("dc")
                    .then(|| v.trim().to_lowercase())
            })
            .collect();
    (!sam.is_empty() && !domain.is_empty()).then(|| format!("{sam}@{}", domain.join(".")))
}

impl Store {
    /// Applies one batch of a run in one transaction.
    pub async fn apply_sync_batch(
        &self,
        tenant_id: Uuid,
        forest: &str,
        batch: &SyncBatch,
        now: i64,
    ) -> Result<Applied> {
        let mut tx = self.write_tx().await?;
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
                    "UPDATE {table} SET sync_run = ? WHERE tenant_id = ? AND object_guid = ?"
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

    /// Ends a run: when it mentioned every object, removes the forest's objects it did not
    /// mention; records the watermark. Returns how many objects were removed.
    pub async fn finish_sync_run(
        &self,
        tenant_id: Uuid,
        forest: &str,
        done: &SyncDone,
        conflicts: &[String],
        now: i64,
    ) -> Result<u64> {
        let mut tx = self.write_tx().await?;
        let mut removed = 0;
        if done.complete {
            let run = done.run_id.to_string();
            let gone: Vec<String> = sqlx::query_scalar(
                "SELECT object_guid FROM users WHERE tenant_id = ? AND sync_forest = ?
                   AND (sync_run IS NULL OR sync_run <> ?)
                 UNION ALL
                 SELECT object_guid FROM ad_groups WHERE tenant_id = ? AND forest = ?
                   AND (sync_run IS NULL OR sync_run <> ?)",
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
            "UPDATE sync_forests SET watermark = ?, last_success_at = ?, last_run_at = ?,
                 last_error = NULL, last_objects = ?, conflicts = ?,
                 last_full_at = CASE WHEN ? THEN ? ELSE last_full_at END,
                 full_total = CASE WHEN ? THEN ? ELSE full_total END
             WHERE tenant_id = ? AND forest = ?",
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

    /// Records a failed run (the watermark stays).
    pub async fn sync_run_failed(
        &self,
        tenant_id: Uuid,
        forest: &str,
        error: &str,
        now: i64,
    ) -> Result<()> {
        sqlx::query(
            "UPDATE sync_forests SET last_error = ?, last_run_at = ? WHERE tenant_id = ? AND forest = ?",
        )
        .bind(error.chars().take(2000).collect::<String>())
        .bind(now)
        .bind(tenant_id.to_string())
        .bind(forest)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// Creates the forest's sync state if new, and records its interval.
    pub async fn ensure_sync_forest(
        &self,
        tenant_id: Uuid,
        forest: &str,
        interval_seconds: u64,
    ) -> Result<()> {
        sqlx::query(
            "INSERT INTO sync_forests (tenant_id, forest, interval_seconds) VALUES (?, ?, ?)
             ON CONFLICT (tenant_id, forest) DO UPDATE SET interval_seconds = excluded.interval_seconds",
        )
        .bind(tenant_id.to_string())
        .bind(forest)
        .bind(i64::try_from(interval_seconds).unwrap_or(i64::MAX))
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// Gives the forest's lease to `agent` (or to nobody).
    pub async fn set_sync_holder(
        &self,
        tenant_id: Uuid,
        forest: &str,
        agent: Option<Uuid>,
        now: i64,
    ) -> Result<()> {
        sqlx::query(
            "UPDATE sync_forests SET holder_agent_id = ?, lease_since = ? WHERE tenant_id = ? AND forest = ?",
        )
        .bind(agent.map(|a| a.to_string()))
        .bind(agent.map(|_| now))
        .bind(tenant_id.to_string())
        .bind(forest)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// Every synced forest of a tenant.
    pub async fn sync_forests(&self, tenant_id: Uuid) -> Result<Vec<SyncForestState>> {
        let rows = sqlx::query("SELECT * FROM sync_forests WHERE tenant_id = ? ORDER BY forest")
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

    /// The synced users whose mail is `mail` (for sign-in with the mail address).
    pub async fn synced_users_by_mail(
        &self,
        tenant_id: Uuid,
        mail: &str,
    ) -> Result<Vec<super::User>> {
        let rows = sqlx::query(
            "SELECT * FROM users WHERE tenant_id = ? AND mail = ? COLLATE NOCASE
               AND synced_at IS NOT NULL LIMIT 2",
        )
        .bind(tenant_id.to_string())
        .bind(mail)
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(Store::user_row).collect()
    }

    /// The object ids of the groups a user belongs to, directly or through nested groups
    /// (at most `limit`).
    pub async fn user_group_ids(
        &self,
        tenant_id: Uuid,
        object_guid: &str,
        limit: i64,
    ) -> Result<Vec<Uuid>> {
        let rows = sqlx::query(
            "WITH RECURSIVE member_of(guid) AS (
                 SELECT group_guid FROM group_members WHERE tenant_id = ?1 AND member_guid = ?2
                 UNION
                 SELECT gm.group_guid FROM group_members gm JOIN member_of m ON gm.member_guid = m.guid
                 WHERE gm.tenant_id = ?1
             )
             SELECT g.id FROM ad_groups g JOIN member_of m ON g.object_guid = m.guid
             WHERE g.tenant_id = ?1 ORDER BY g.id LIMIT ?3",
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
async fn upsert_user(
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
           WHERE tenant_id = ?1 AND source = 'onprem' AND object_guid = ?2
         UNION ALL
         SELECT id, ad_enabled, sync_attrs, upn, display_name, mail FROM users
           WHERE tenant_id = ?1 AND source = 'onprem' AND object_guid IS NULL AND immutable_id = ?3
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
    let holder: Option<(String, String)> =
        sqlx::query_as("SELECT id, source FROM users WHERE tenant_id = ? AND upn = ? AND id <> ?")
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
        sqlx::query("UPDATE users SET upn = upn || '#released-' || id WHERE id = ?")
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
                "UPDATE users SET upn = ?, display_name = ?, mail = ?, immutable_id = ?,
                     object_guid = ?, sync_forest = ?, sync_run = ?, ad_enabled = ?,
                     account_expires = ?, sync_attrs = CASE WHEN ? THEN sync_attrs ELSE ? END,
                     synced_at = CASE WHEN ? AND synced_at IS NOT NULL THEN synced_at ELSE ? END,
                     updated_at = CASE WHEN ? THEN updated_at ELSE ? END
                 WHERE id = ?",
            )
            .bind(&upn)
            .bind(&u.display_name)
            .bind(&u.mail)
            .bind(&anchor)
            .bind(&guid)
            .bind(forest)
            .bind(run)
            .bind(u.enabled)
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
                 VALUES (?, ?, ?, ?, ?, 'onprem', ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
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
            .bind(u.enabled)
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
            sqlx::query("DELETE FROM sign_in_names WHERE user_id = ?")
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
            Store::end_sessions(tx, tenant_id, uid).await?;
        }
    }
    Ok(Ok(password_changed))
}

async fn upsert_group(
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
         VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
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
    sqlx::query("DELETE FROM group_members WHERE tenant_id = ? AND group_guid = ?")
        .bind(&tenant)
        .bind(&guid)
        .execute(&mut **tx)
        .await?;
    for member in &g.members {
        sqlx::query(
            "INSERT OR IGNORE INTO group_members (tenant_id, group_guid, member_guid) VALUES (?, ?, ?)",
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
async fn delete_object(tx: &mut Tx, tenant_id: Uuid, object_guid: Uuid) -> Result<u64> {
    let tenant = tenant_id.to_string();
    let guid = object_guid.to_string();
    let mut removed = 0;
    let users: Vec<String> = sqlx::query_scalar(
        "SELECT id FROM users WHERE tenant_id = ? AND object_guid = ? AND source = 'onprem'",
    )
    .bind(&tenant)
    .bind(&guid)
    .fetch_all(&mut **tx)
    .await?;
    for id in users {
        if let Ok(uid) = Uuid::parse_str(&id) {
            Store::end_sessions(tx, tenant_id, uid).await?;
        }
        for q in [
            "DELETE FROM device_codes WHERE tenant_id = ? AND user_id = ?",
            "DELETE FROM users WHERE tenant_id = ? AND id = ?",
        ] {
            sqlx::query(q)
                .bind(&tenant)
                .bind(&id)
                .execute(&mut **tx)
                .await?;
        }
        removed += 1;
    }
    let r = sqlx::query("DELETE FROM ad_groups WHERE tenant_id = ? AND object_guid = ?")
        .bind(&tenant)
        .bind(&guid)
        .execute(&mut **tx)
        .await?;
    removed += r.rows_affected();
    sqlx::query(
        "DELETE FROM group_members WHERE tenant_id = ? AND (group_guid = ? OR member_guid = ?)",
    )
    .bind(&tenant)
    .bind(&guid)
    .bind(&guid)
    .execute(&mut **tx)
    .await?;
    Ok(removed)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::{DomainKind, OnpremUser};
    use passthru_proto::sync::SyncBatch;

    async fn store() -> anyhow::Result<(Store, std::path::PathBuf, Uuid)> {
        let (s, dir, tid) =
            crate::store::test_store("sync", "corp.test", DomainKind::Managed).await?;
        s.ensure_sync_forest(tid, "corp.test", 30).await?;
        Ok((s, dir, tid))
    }

    fn user(name: &str, guid: Uuid) -> SyncUser {
        SyncUser {
            object_guid: guid,
            consistency_guid: None,
            dn: format!("CN={name},CN=Users,DC=corp,DC=test"),
            user_principal_name: Some(format!("{name}@corp.test")),
            sam_account_name: Some(name.to_string()),
            mail: Some(format!("{name}@mail.test")),
            display_name: Some(name.to_uppercase()),
            given_name: None,
            surname: None,
            enabled: true,
            account_expires: None,
            usn_changed: 1,
            when_changed: None,
            password_last_set: Some(1_000),
        }
    }

    fn group(name: &str, guid: Uuid, members: Vec<Uuid>) -> SyncGroup {
        SyncGroup {
            object_guid: guid,
            consistency_guid: None,
            dn: format!("CN={name},CN=Users,DC=corp,DC=test"),
            sam_account_name: Some(name.to_string()),
            display_name: None,
            mail: None,
            members,
            usn_changed: 1,
            when_changed: None,
        }
    }

    fn batch(run: Uuid, objects: Vec<SyncObject>, present: Vec<Uuid>) -> SyncBatch {
        SyncBatch {
            run_id: run,
            objects,
            present,
            done: 0,
            estimated_total: None,
        }
    }

    fn done(run: Uuid, complete: bool) -> SyncDone {
        SyncDone {
            run_id: run,
            watermark: Watermark {
                dc: "dc1".into(),
                usn: 42,
            },
            complete,
            full: complete,
            objects: 0,
            dc_url: "ldaps://dc1".into(),
            millis: 1,
        }
    }

    /// A synced user's UPN, implicit UPN and mail, in any case, count toward one smart
    /// lockout; a renamed user's old names no longer do.
    #[tokio::test]
    async fn a_synced_users_names_share_one_lockout_key() -> anyhow::Result<()> {
        let (s, dir, tid) = store().await?;
        let g = Uuid::new_v4();
        let mut u = user("carol", g);
        u.user_principal_name = Some("Carol.Long@corp.test".into());
        let run = Uuid::new_v4();
        let objects = vec![SyncObject::User(u.clone())];
        s.apply_sync_batch(tid, "corp.test", &batch(run, objects, vec![]), 10)
            .await?;
        let id = onprem_object_id(tid, g);
        for name in [
            "carol.long@corp.test",
            "CAROL@CORP.TEST",
            "carol@corp.test",
            "Carol@Mail.Test",
        ] {
            let key = s.sign_in_state(tid, name, 20).await?.lockout_key;
            assert_eq!(key, format!("user:{id}"), "{name}");
        }
        // Renamed in AD (new sAMAccountName and mail): the old implicit UPN is a name of
        // nobody again.
        u.sam_account_name = Some("cl".into());
        u.mail = None;
        let run = Uuid::new_v4();
        let objects = vec![SyncObject::User(u)];
        s.apply_sync_batch(tid, "corp.test", &batch(run, objects, vec![]), 30)
            .await?;
        let old = s
            .sign_in_state(tid, "carol@corp.test", 40)
            .await?
            .lockout_key;
        assert_eq!(old, "carol@corp.test");
        let new = s.sign_in_state(tid, "CL@corp.test", 40).await?.lockout_key;
        assert_eq!(new, format!("user:{id}"));
        std::fs::remove_dir_all(dir)?;
        Ok(())
    }

    #[tokio::test]
    async fn a_full_run_then_changes_renames_and_reconciliation() -> anyhow::Result<()> {
        let (s, dir, tid) = store().await?;
        let (a, b, g, outer) = (
            Uuid::new_v4(),
            Uuid::new_v4(),
            Uuid::new_v4(),
            Uuid::new_v4(),
        );
        // A pass-through sign-in before the first sync created alice's record: sync adopts it.
        let anchor = a.to_string();
        let jit = OnpremUser {
            tenant_id: tid,
            id: onprem_object_id(tid, a),
            immutable_id: &anchor,
            upn: "alice@corp.test",
            display_name: None,
            mail: None,
        };
        s.upsert_onprem_user(&jit, 5).await?;
        let run1 = Uuid::new_v4();
        let applied = s
            .apply_sync_batch(
                tid,
                "corp.test",
                &batch(
                    run1,
                    vec![
                        SyncObject::User(user("alice", a)),
                        SyncObject::User(user("bob", b)),
                        SyncObject::Group(group("team", g, vec![a])),
                        SyncObject::Group(group("dept", outer, vec![g])),
                    ],
                    vec![],
                ),
                10,
            )
            .await?;
        assert_eq!((applied.users, applied.groups), (2, 2));
        assert!(applied.conflicts.is_empty());
        s.finish_sync_run(tid, "corp.test", &done(run1, true), &[], 10)
            .await?;
        let alice = s
            .user_by_upn(tid, "alice@corp.test")
            .await?
            .ok_or_else(|| anyhow::anyhow!("alice"))?;
        assert_eq!(
            alice.id,
            onprem_object_id(tid, a),
            "the sign-in's id is kept"
        );
        assert_eq!(alice.display_name.as_deref(), Some("ALICE"));
        let synced = alice
            .sync
            .clone()
            .ok_or_else(|| anyhow::anyhow!("not synced"))?;
        assert_eq!(synced.last_change, 10);
        assert!(synced.enabled);
        // Nested membership: alice is in team, team in dept.
        let mut groups = s.user_group_ids(tid, &a.to_string(), 10).await?;
        groups.sort();
        let mut expected = vec![onprem_object_id(tid, g), onprem_object_id(tid, outer)];
        expected.sort();
        assert_eq!(groups, expected);
        assert_eq!(
            s.user_direct_groups(tid, a).await?,
            vec!["team".to_string()]
        );
        let state = s.sync_forests(tid).await?;
        assert_eq!(state[0].watermark.as_ref().map(|w| w.usn), Some(42));
        assert_eq!(state[0].last_full_at, Some(10));

        // An unchanged object keeps its time of last change; a rename changes it.
        let run2 = Uuid::new_v4();
        let mut renamed = user("bob", b);
        renamed.user_principal_name = Some("robert@corp.test".into());
        s.apply_sync_batch(
            tid,
            "corp.test",
            &batch(
                run2,
                vec![
                    SyncObject::User(user("alice", a)),
                    SyncObject::User(renamed),
                ],
                vec![g, outer],
            ),
            20,
        )
        .await?;
        s.finish_sync_run(tid, "corp.test", &done(run2, true), &[], 20)
            .await?;
        let alice = s.user_by_upn(tid, "alice@corp.test").await?;
        assert_eq!(alice.and_then(|u| u.sync).map(|s| s.last_change), Some(10));
        assert!(s.user_by_upn(tid, "bob@corp.test").await?.is_none());
        let robert = s.user_by_upn(tid, "robert@corp.test").await?;
        assert_eq!(robert.map(|u| u.id), Some(onprem_object_id(tid, b)));
        assert_eq!(s.groups_page(tid, None, None, 10).await?.0.len(), 2);

        // A complete run that does not mention bob and the team removes them (and the
        // team's memberships).
        let run3 = Uuid::new_v4();
        s.apply_sync_batch(tid, "corp.test", &batch(run3, vec![], vec![a, outer]), 30)
            .await?;
        let removed = s
            .finish_sync_run(tid, "corp.test", &done(run3, true), &[], 30)
            .await?;
        assert_eq!(removed, 2);
        assert!(s.user_by_upn(tid, "robert@corp.test").await?.is_none());
        assert!(s.user_group_ids(tid, &a.to_string(), 10).await?.is_empty());
        // An incomplete run removes nothing; a tombstone does.
        let run4 = Uuid::new_v4();
        s.finish_sync_run(tid, "corp.test", &done(run4, false), &[], 40)
            .await?;
        assert!(s.user_by_upn(tid, "alice@corp.test").await?.is_some());
        let run5 = Uuid::new_v4();
        let applied = s
            .apply_sync_batch(
                tid,
                "corp.test",
                &batch(run5, vec![SyncObject::Deleted { object_guid: a }], vec![]),
                50,
            )
            .await?;
        assert_eq!(applied.deleted, 1);
        assert!(s.user_by_upn(tid, "alice@corp.test").await?.is_none());
        let _ = std::fs::remove_dir_all(dir);
        Ok(())
    }

    #[tokio::test]
    async fn a_cloud_users_upn_is_never_taken_and_mail_finds_synced_users() -> anyhow::Result<()> {
        let (s, dir, tid) = store().await?;
        s.add_cloud_user(tid, "carol@corp.test", "hash", "none", 1)
            .await?;
        let run = Uuid::new_v4();
        let (c, d) = (Uuid::new_v4(), Uuid::new_v4());
        let mut disabled = user("dave", d);
        disabled.enabled = false;
        disabled.user_principal_name = None; // implicit UPN: sAMAccountName@DNS name
        let applied = s
            .apply_sync_batch(
                tid,
                "corp.test",
                &batch(
                    run,
                    vec![
                        SyncObject::User(user("carol", c)),
                        SyncObject::User(disabled),
                    ],
                    vec![],
                ),
                10,
            )
            .await?;
        assert_eq!(applied.users, 1);
        assert_eq!(applied.conflicts.len(), 1);
        assert!(
            applied.conflicts[0].contains("carol@corp.test"),
            "{:?}",
            applied.conflicts
        );
        let carol = s.user_by_upn(tid, "carol@corp.test").await?;
        assert_eq!(carol.map(|u| u.source), Some("cloud".to_string()));
        let dave = s
            .user_by_upn(tid, "dave@corp.test")
            .await?
            .ok_or_else(|| anyhow::anyhow!("dave"))?;
        assert_eq!(dave.sync.map(|s| s.enabled), Some(false));
        let by_mail = s.synced_users_by_mail(tid, "DAVE@mail.test").await?;
        assert_eq!(by_mail.len(), 1);
        assert!(s
            .synced_users_by_mail(tid, "carol@mail.test")
            .await?
            .is_empty());
        let _ = std::fs::remove_dir_all(dir);
        Ok(())
    }

    #[tokio::test]
    async fn a_password_changed_in_ad_is_reported_once() -> anyhow::Result<()> {
        let (s, dir, tid) = store().await?;
        let g = Uuid::new_v4();
        let apply = |u: SyncUser| {
            let s = &s;
            async move {
                s.apply_sync_batch(
                    tid,
                    "corp.test",
                    &batch(Uuid::new_v4(), vec![SyncObject::User(u)], vec![]),
                    10,
                )
                .await
            }
        };
        // The first import says nothing: there is nothing to forget yet.
        assert!(apply(user("fay", g)).await?.password_changed.is_empty());
        assert!(apply(user("fay", g)).await?.password_changed.is_empty());
        let mut changed = user("fay", g);
        changed.password_last_set = Some(2_000);
        assert_eq!(
            apply(changed.clone()).await?.password_changed,
            ["fay@corp.test"]
        );
        assert!(apply(changed).await?.password_changed.is_empty());
        let _ = std::fs::remove_dir_all(dir);
        Ok(())
    }

    #[test]
    fn effective_upn_falls_back_to_the_implicit_one() {
        let mut u = user("erin", Uuid::nil());
        assert_eq!(effective_upn(&u).as_deref(), Some("erin@corp.test"));
        u.user_principal_name = Some("@broken".into());
        assert_eq!(effective_upn(&u).as_deref(), Some("erin@corp.test"));
        u.sam_account_name = None;
        assert_eq!(effective_upn(&u), None);
    }
}
