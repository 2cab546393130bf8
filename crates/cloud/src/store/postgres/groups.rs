//! PostgreSQL: groups.

use async_trait::async_trait;
use sqlx::Row;
use uuid::Uuid;

use super::*;
use crate::store::groups::*;

#[async_trait]
impl GroupStore for PgStore {
    async fn groups_page(
        &self,
        tenant_id: Uuid,
        search: Option<&str>,
        after: Option<&str>,
        top: i64,
    ) -> Result<(Vec<Group>, Option<String>)> {
        let pattern = search.map(super::like_pattern);
        let rows = sqlx::query(
            "SELECT * FROM ad_groups WHERE tenant_id = $1
               AND ($2::text IS NULL OR (COALESCE(name, '') || '/' || id) COLLATE \"C\" > $3)
               AND ($4::text IS NULL OR name ILIKE $5 ESCAPE '\\' OR display_name ILIKE $6 ESCAPE '\\')
             ORDER BY (COALESCE(name, '') || '/' || id) COLLATE \"C\" LIMIT $7",
        )
        .bind(tenant_id.to_string())
        .bind(after)
        .bind(after)
        .bind(&pattern)
        .bind(&pattern)
        .bind(&pattern)
        .bind(top + 1)
        .fetch_all(&self.pool)
        .await?;
        let mut groups = rows.iter().map(group_row).collect::<Result<Vec<_>>>()?;
        let next = if groups.len() as i64 > top {
            groups.truncate(top.max(0) as usize);
            groups
                .last()
                .map(|g| format!("{}/{}", g.name.clone().unwrap_or_default(), g.id))
        } else {
            None
        };
        Ok((groups, next))
    }

    async fn group(
        &self,
        tenant_id: Uuid,
        id_or_name: &str,
    ) -> Result<Option<(Group, Vec<Member>)>> {
        let row = sqlx::query(
            "SELECT * FROM ad_groups WHERE tenant_id = $1 AND (id = $2 OR lower(name) = lower($3))
             ORDER BY id LIMIT 1",
        )
        .bind(tenant_id.to_string())
        .bind(id_or_name.to_ascii_lowercase())
        .bind(id_or_name)
        .fetch_optional(&self.pool)
        .await?;
        let Some(row) = row else { return Ok(None) };
        let group = group_row(&row)?;
        let rows: Vec<MemberRow> =
            sqlx::query_as(
                "SELECT m.member_guid, u.id, u.upn, g.id, g.name FROM group_members m
                 LEFT JOIN users u ON u.tenant_id = m.tenant_id AND u.object_guid = m.member_guid
                 LEFT JOIN ad_groups g ON g.tenant_id = m.tenant_id AND g.object_guid = m.member_guid
                 WHERE m.tenant_id = $1 AND m.group_guid = $2 ORDER BY COALESCE(u.upn::text, g.name, m.member_guid) COLLATE \"C\"",
            )
            .bind(tenant_id.to_string())
            .bind(group.object_guid.to_string())
            .fetch_all(&self.pool)
            .await?;
        let members = rows
            .into_iter()
            .filter_map(|(guid, uid, upn, gid, gname)| {
                let object_guid = Uuid::parse_str(&guid).ok()?;
                let parse = |s: Option<String>| s.and_then(|s| Uuid::parse_str(&s).ok());
                Some(match (uid, gid) {
                    (Some(uid), _) => Member {
                        kind: "user",
                        object_guid,
                        id: parse(Some(uid)),
                        name: upn,
                    },
                    (None, Some(gid)) => Member {
                        kind: "group",
                        object_guid,
                        id: parse(Some(gid)),
                        name: gname,
                    },
                    (None, None) => Member {
                        kind: "unknown",
                        object_guid,
                        id: None,
                        name: None,
                    },
                })
            })
            .collect();
        Ok(Some((group, members)))
    }

    async fn user_direct_groups(&self, tenant_id: Uuid, object_guid: Uuid) -> Result<Vec<String>> {
        let names: Vec<Option<String>> = sqlx::query_scalar(
            "SELECT g.name FROM group_members m JOIN ad_groups g
               ON g.tenant_id = m.tenant_id AND g.object_guid = m.group_guid
             WHERE m.tenant_id = $1 AND m.member_guid = $2 ORDER BY g.name",
        )
        .bind(tenant_id.to_string())
        .bind(object_guid.to_string())
        .fetch_all(&self.pool)
        .await?;
        Ok(names.into_iter().flatten().collect())
    }

    async fn sync_counts(&self, tenant_id: Uuid) -> Result<Vec<(String, i64, i64)>> {
        let rows: Vec<(String, i64, i64)> = sqlx::query_as(
            "SELECT f.forest,
                (SELECT COUNT(*) FROM users u WHERE u.tenant_id = f.tenant_id AND u.sync_forest = f.forest),
                (SELECT COUNT(*) FROM ad_groups g WHERE g.tenant_id = f.tenant_id AND g.forest = f.forest)
             FROM sync_forests f WHERE f.tenant_id = $1 ORDER BY f.forest",
        )
        .bind(tenant_id.to_string())
        .fetch_all(&self.pool)
        .await?;
        Ok(rows)
    }
}

pub(super) fn group_row(row: &sqlx::postgres::PgRow) -> Result<Group> {
    Ok(Group {
        id: uuid_col(row, "id")?,
        name: row.try_get("name")?,
        display_name: row.try_get("display_name")?,
        mail: row.try_get("mail")?,
        dn: row.try_get("dn")?,
        forest: row.try_get("forest")?,
        object_guid: uuid_col(row, "object_guid")?,
        immutable_id: row.try_get("immutable_id")?,
        synced_at: row.try_get("synced_at")?,
    })
}

/// A membership row: member objectGUID, and the user (id, UPN) or group (id, name) it is.
pub(super) type MemberRow = (
    String,
    Option<String>,
    Option<String>,
    Option<String>,
    Option<String>,
);
