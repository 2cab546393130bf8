//! PostgreSQL: sign ins.

use async_trait::async_trait;
use sqlx::Postgres;
use sqlx::Row;
use uuid::Uuid;

use super::*;
use crate::store::portal::{FailureCount, MinuteCount};
use crate::store::sign_ins::*;
use crate::store::*;

#[async_trait]
impl SignInLogStore for PgStore {
    /// Writes lines: one statement per [`ROWS_PER_INSERT`] lines, in one transaction when
    /// there are more.
    async fn write_sign_ins(&self, lines: &[(Uuid, Box<SignIn>)]) -> Result<()> {
        if lines.len() <= ROWS_PER_INSERT {
            insert_sign_ins(lines).build().execute(&self.pool).await?;
            return Ok(());
        }
        let mut tx = self.pool.begin().await?;
        for chunk in lines.chunks(ROWS_PER_INSERT) {
            insert_sign_ins(chunk).build().execute(&mut *tx).await?;
        }
        tx.commit().await?;
        Ok(())
    }

    async fn sign_ins(&self, tenant_id: Uuid, limit: i64) -> Result<Vec<SignIn>> {
        let rows =
            sqlx::query("SELECT * FROM signins WHERE tenant_id = $1 ORDER BY id DESC LIMIT $2")
                .bind(tenant_id.to_string())
                .bind(limit)
                .fetch_all(&self.pool)
                .await?;
        rows.iter().map(Self::sign_in_row).collect()
    }

    async fn sign_ins_filtered(&self, tenant_id: Uuid, f: &SignInFilter) -> Result<Vec<SignIn>> {
        let (result, aadsts) = match f.result.as_deref() {
            Some(r) => match r.parse::<i64>() {
                Ok(code) => (None, Some(code)),
                Err(_) => (Some(r.to_ascii_lowercase()), None),
            },
            None => (None, None),
        };
        let aadsts = aadsts.or(f.aadsts);
        let agent = f.agent_id.map(|a| a.to_string());
        let (after_t, after_id) = match f.after {
            Some((t, id)) => (Some(t), Some(id)),
            None => (None, None),
        };
        let rows = sqlx::query(
            "SELECT * FROM signins WHERE tenant_id = $1
               AND ($2::TEXT IS NULL OR lower(username) = lower($2))
               AND ($3::TEXT IS NULL OR result = $3)
               AND ($4::BIGINT IS NULL OR aadsts = $4)
               AND ($5::BIGINT IS NULL OR time_ms >= $5)
               AND ($6::BIGINT IS NULL OR time_ms < $6)
               AND ($7::TEXT IS NULL OR client_id = $7)
               AND ($8::TEXT IS NULL OR agent_id = $8)
               AND ($9::TEXT IS NULL OR client_ip = $9)
               AND ($10::TEXT IS NULL OR lower(correlation_id) = lower($10))
               AND ($11::BIGINT IS NULL OR time_ms < $11 OR (time_ms = $11 AND id < $12))
             ORDER BY time_ms DESC, id DESC LIMIT $13",
        )
        .bind(tenant_id.to_string())
        .bind(&f.user)
        .bind(&result)
        .bind(aadsts)
        .bind(f.since_ms)
        .bind(f.until_ms)
        .bind(&f.client_id)
        .bind(&agent)
        .bind(&f.client_ip)
        .bind(&f.correlation_id)
        .bind(after_t)
        .bind(after_id)
        .bind(f.limit)
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(Self::sign_in_row).collect()
    }

    async fn sign_in(&self, tenant_id: Uuid, id: i64) -> Result<Option<SignIn>> {
        let row = sqlx::query("SELECT * FROM signins WHERE tenant_id = $1 AND id = $2")
            .bind(tenant_id.to_string())
            .bind(id)
            .fetch_optional(&self.pool)
            .await?;
        row.as_ref().map(Self::sign_in_row).transpose()
    }

    async fn purge_sign_ins(&self, now_ms: i64) -> Result<u64> {
        self.purge_past_retention("signins", |s| s.signin_retention_days, now_ms)
            .await
    }

    async fn sign_ins_per_minute(
        &self,
        tenant_id: Uuid,
        since_ms: i64,
    ) -> Result<Vec<MinuteCount>> {
        let rows = sqlx::query(
            "SELECT time_ms / 60000 AS minute, result, COUNT(*) AS n FROM signins
             WHERE tenant_id = $1 AND time_ms >= $2
             GROUP BY minute, result ORDER BY minute, result",
        )
        .bind(tenant_id.to_string())
        .bind(since_ms)
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|r| {
                Ok(MinuteCount {
                    minute: r.try_get("minute")?,
                    result: r.try_get("result")?,
                    count: r.try_get("n")?,
                })
            })
            .collect()
    }

    async fn failures_by_reason(
        &self,
        tenant_id: Uuid,
        since_ms: i64,
        limit: i64,
    ) -> Result<Vec<FailureCount>> {
        let rows = sqlx::query(
            "SELECT aadsts, win32, COUNT(*) AS n FROM signins
             WHERE tenant_id = $1 AND time_ms >= $2 AND result <> 'success'
             GROUP BY aadsts, win32 ORDER BY n DESC, aadsts NULLS FIRST LIMIT $3",
        )
        .bind(tenant_id.to_string())
        .bind(since_ms)
        .bind(limit)
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|r| {
                Ok(FailureCount {
                    aadsts: r.try_get::<Option<i64>, _>("aadsts")?.map(|c| c as u32),
                    win32: r.try_get::<Option<i64>, _>("win32")?.map(|c| c as u32),
                    count: r.try_get("n")?,
                })
            })
            .collect()
    }

    async fn sign_in_latencies(
        &self,
        tenant_id: Uuid,
        since_ms: i64,
        pass_through: bool,
        limit: i64,
    ) -> Result<Vec<i64>> {
        let rows = sqlx::query(
            "SELECT latency_ms FROM signins
             WHERE tenant_id = $1 AND time_ms >= $2 AND latency_ms IS NOT NULL
               AND ($3 = 0 OR agent_id IS NOT NULL)
             ORDER BY time_ms DESC LIMIT $4",
        )
        .bind(tenant_id.to_string())
        .bind(since_ms)
        .bind(pass_through as i64)
        .bind(limit)
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|r| Ok(r.try_get::<i64, _>("latency_ms")?))
            .collect()
    }
}

/// Lines in one INSERT statement.
pub(super) const ROWS_PER_INSERT: usize = 64;

/// One INSERT of `lines` (at most [`ROWS_PER_INSERT`]: 12 parameters each).
pub(super) fn insert_sign_ins(lines: &[(Uuid, Box<SignIn>)]) -> sqlx::QueryBuilder<'_, Postgres> {
    let mut q = sqlx::QueryBuilder::new(
        "INSERT INTO signins (tenant_id, time_ms, username, client_id, result, aadsts, win32, agent_id, other_agents, latency_ms, correlation_id, client_ip) ",
    );
    q.push_values(lines, |mut row, (tenant_id, s)| {
        row.push_bind(tenant_id.to_string())
            .push_bind(s.time_ms)
            .push_bind(s.username.as_str())
            .push_bind(s.client_id.as_deref())
            .push_bind(s.result.as_str())
            .push_bind(s.aadsts.map(i64::from))
            .push_bind(s.win32.map(i64::from))
            .push_bind(s.agent_id.map(|a| a.to_string()))
            .push_bind((!s.other_agents.is_empty()).then(|| {
                s.other_agents
                    .iter()
                    .map(Uuid::to_string)
                    .collect::<Vec<_>>()
                    .join(",")
            }))
            .push_bind(s.latency_ms)
            .push_bind(s.correlation_id.as_str())
            .push_bind(s.client_ip.as_deref());
    });
    q
}

impl PgStore {
    /// Deletes each tenant's rows of `table` (which has `tenant_id` and `time_ms`) older than
    /// the tenant's `days` setting before `now_ms`. Returns how many went.
    pub(super) async fn purge_past_retention(
        &self,
        table: &'static str,
        days: fn(&crate::model::settings::Settings) -> u32,
        now_ms: i64,
    ) -> Result<u64> {
        let tenants: Vec<String> = sqlx::query("SELECT id FROM tenants")
            .fetch_all(&self.pool)
            .await?
            .iter()
            .map(|r| r.try_get::<String, _>("id"))
            .collect::<std::result::Result<_, _>>()?;
        // `table` is one of ours, never input.
        let delete = format!("DELETE FROM {table} WHERE tenant_id = $1 AND time_ms < $2");
        let mut gone = 0;
        for id in tenants {
            let Some(t) = self.tenant(&id).await? else {
                continue;
            };
            let keep_ms = i64::from(days(&t.settings)) * 86_400_000;
            let r = sqlx::query(&delete)
                .bind(&id)
                .bind(now_ms - keep_ms)
                .execute(&self.pool)
                .await?;
            gone += r.rows_affected();
        }
        Ok(gone)
    }
}
