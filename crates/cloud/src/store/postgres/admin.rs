//! PostgreSQL: admin.

use uuid::Uuid;

use super::*;

impl PgStore {
    /// Ends a user's sessions and refresh tokens (on a password change, a block, a delete).
    pub(crate) async fn end_sessions(
        tx: &mut sqlx::Transaction<'static, sqlx::Postgres>,
        tenant_id: Uuid,
        user_id: Uuid,
    ) -> Result<()> {
        for table in ["sessions", "refresh_tokens", "auth_codes"] {
            sqlx::query(&format!(
                "DELETE FROM {table} WHERE tenant_id = $1 AND user_id = $2"
            ))
            .bind(tenant_id.to_string())
            .bind(user_id.to_string())
            .execute(&mut **tx)
            .await?;
        }
        Ok(())
    }
}
