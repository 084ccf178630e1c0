//! Users, sign-in sessions, API tokens and sign-in attempts.
//!
//! Secrets never reach this module in the clear: sessions and tokens are looked
//! up by the SHA-256 of the random value the client holds, passwords are stored
//! as Argon2id PHC strings made by the server crate.

use irflow_domain::{Actor, Role, UserId, Username};
use jiff::Timestamp;
use sqlx::Row;
use sqlx::any::AnyRow;

use crate::audit::{AuditOutcome, NewAuditEvent};
use crate::{Result, Store, StoreError, from_micros, micros, parse_stored};

/// Sessions' "last seen" and tokens' "last used" are refreshed at most this often
/// (one minute), so that reading pages does not turn every request into a write.
const TOUCH_EVERY_MICROS: i64 = 60_000_000;

/// A user as stored (without the password hash).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UserRecord {
    /// Id.
    pub id: UserId,
    /// Sign-in name.
    pub username: String,
    /// Name shown to people.
    pub display_name: String,
    /// Role.
    pub role: Role,
    /// For referrers: their clinic or practice.
    pub organization: Option<String>,
    /// Whether the account may sign in.
    pub active: bool,
}

impl UserRecord {
    /// The actor this user acts as.
    pub fn actor(&self) -> Actor {
        Actor::user(self.id, self.username.clone(), self.role)
    }
}

/// A user to create.
#[derive(Debug, Clone)]
pub struct NewUser {
    /// Sign-in name.
    pub username: Username,
    /// Name shown to people.
    pub display_name: String,
    /// Role.
    pub role: Role,
    /// For referrers: their clinic.
    pub organization: Option<String>,
    /// Argon2id PHC string.
    pub password_hash: String,
}

/// A live sign-in session.
#[derive(Debug, Clone)]
pub struct SessionRecord {
    /// Who.
    pub user: UserRecord,
    /// The session's anti-forgery token, embedded in every form.
    pub csrf_token: String,
    /// When it ends at the latest.
    pub expires_at: Timestamp,
}

/// An API token as listed (never the secret).
#[derive(Debug, Clone)]
pub struct ApiTokenRecord {
    /// Id (for revoking).
    pub id: i64,
    /// Owner.
    pub username: String,
    /// What it is for.
    pub label: String,
    /// Issued.
    pub created_at: Timestamp,
    /// Last used.
    pub last_used_at: Option<Timestamp>,
    /// Revoked.
    pub revoked_at: Option<Timestamp>,
}

fn user_from_row(row: &AnyRow) -> Result<UserRecord> {
    let role: String = row.try_get("role")?;
    let disabled: Option<i64> = row.try_get("disabled_at")?;
    Ok(UserRecord {
        id: UserId::new(row.try_get("id")?),
        username: row.try_get("username")?,
        display_name: row.try_get("display_name")?,
        role: parse_stored("role", &role)?,
        organization: row.try_get("organization")?,
        active: disabled.is_none(),
    })
}

impl Store {
    /// Creates a user. The username must be free.
    pub async fn create_user(&self, actor: &Actor, user: &NewUser) -> Result<UserRecord> {
        let display = user.display_name.trim();
        if display.is_empty() || display.chars().count() > 200 {
            return Err(StoreError::Invalid(
                "display name is required (at most 200 characters)".to_owned(),
            ));
        }
        let now = Timestamp::now();
        let mut tx = self.pool.begin().await?;
        let inserted = sqlx::query(self.sql(
            "INSERT INTO users (username, display_name, role, organization, password_hash, created_at)
             VALUES (?, ?, ?, ?, ?, ?) RETURNING id",
        ))
        .bind(user.username.as_str().to_owned())
        .bind(display.to_owned())
        .bind(user.role.as_str())
        .bind(user.organization.clone())
        .bind(user.password_hash.clone())
        .bind(micros(now))
        .fetch_one(&mut *tx)
        .await;
        let row = match inserted {
            Ok(row) => row,
            Err(sqlx::Error::Database(db)) if db.is_unique_violation() => {
                return Err(StoreError::Duplicate(format!(
                    "the username {} is already taken",
                    user.username
                )));
            }
            Err(e) => return Err(e.into()),
        };
        let id = UserId::new(row.try_get(0)?);
        self.insert_audit(
            &mut *tx,
            &NewAuditEvent::new(actor, "create", "user", AuditOutcome::Success)
                .entity(id)
                .detail(format!("role={}", user.role)),
            now,
        )
        .await?;
        tx.commit().await?;
        self.user(id).await
    }

    /// A user by id.
    pub async fn user(&self, id: UserId) -> Result<UserRecord> {
        let row = sqlx::query(self.sql("SELECT id, username, display_name, role, organization, disabled_at FROM users WHERE id = ?"))
            .bind(id.get())
            .fetch_one(&self.pool)
            .await?;
        user_from_row(&row)
    }

    /// A user by username, with the stored password hash (for sign-in).
    pub async fn user_for_sign_in(&self, username: &str) -> Result<Option<(UserRecord, String)>> {
        let row = sqlx::query(self.sql(
            "SELECT id, username, display_name, role, organization, disabled_at, password_hash
             FROM users WHERE username = ?",
        ))
        .bind(username.to_owned())
        .fetch_optional(&self.pool)
        .await?;
        row.map(|r| Ok((user_from_row(&r)?, r.try_get("password_hash")?)))
            .transpose()
    }

    /// A user by username.
    pub async fn user_by_username(&self, username: &str) -> Result<UserRecord> {
        let row = sqlx::query(self.sql("SELECT id, username, display_name, role, organization, disabled_at FROM users WHERE username = ?"))
            .bind(username.to_owned())
            .fetch_one(&self.pool)
            .await?;
        user_from_row(&row)
    }

    /// Every user, by role then name.
    pub async fn list_users(&self) -> Result<Vec<UserRecord>> {
        let rows = sqlx::query(self.sql("SELECT id, username, display_name, role, organization, disabled_at FROM users ORDER BY role, username"))
            .fetch_all(&self.pool)
            .await?;
        rows.iter().map(user_from_row).collect()
    }

    /// Replaces a user's password hash and ends their sessions.
    pub async fn set_password_hash(&self, actor: &Actor, id: UserId, hash: &str) -> Result<()> {
        let now = Timestamp::now();
        let mut tx = self.pool.begin().await?;
        let done = sqlx::query(self.sql("UPDATE users SET password_hash = ? WHERE id = ?"))
            .bind(hash.to_owned())
            .bind(id.get())
            .execute(&mut *tx)
            .await?;
        if done.rows_affected() == 0 {
            return Err(StoreError::NotFound);
        }
        sqlx::query(self.sql("DELETE FROM sessions WHERE user_id = ?"))
            .bind(id.get())
            .execute(&mut *tx)
            .await?;
        self.insert_audit(
            &mut *tx,
            &NewAuditEvent::new(actor, "set_password", "user", AuditOutcome::Success).entity(id),
            now,
        )
        .await?;
        tx.commit().await?;
        Ok(())
    }

    /// Starts a session for a user.
    pub async fn create_session(
        &self,
        user: UserId,
        token_hash: &str,
        csrf_token: &str,
        now: Timestamp,
        expires_at: Timestamp,
    ) -> Result<()> {
        sqlx::query(self.sql(
            "INSERT INTO sessions (token_hash, user_id, csrf_token, created_at, last_seen_at, expires_at)
             VALUES (?, ?, ?, ?, ?, ?)",
        ))
        .bind(token_hash.to_owned())
        .bind(user.get())
        .bind(csrf_token.to_owned())
        .bind(micros(now))
        .bind(micros(now))
        .bind(micros(expires_at))
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// Finds a live session: not expired, not idle for longer than `idle_limit`,
    /// for an active user. Touches it (sliding idle timeout).
    pub async fn live_session(
        &self,
        token_hash: &str,
        now: Timestamp,
        idle_limit: jiff::SignedDuration,
    ) -> Result<Option<SessionRecord>> {
        let idle_cutoff = micros(now) - i64::try_from(idle_limit.as_micros()).unwrap_or(i64::MAX);
        let row = sqlx::query(self.sql(
            "SELECT u.id, u.username, u.display_name, u.role, u.organization, u.disabled_at,
                    s.csrf_token, s.expires_at, s.last_seen_at
             FROM sessions s JOIN users u ON u.id = s.user_id
             WHERE s.token_hash = ? AND s.expires_at > ? AND s.last_seen_at > ?
               AND u.disabled_at IS NULL",
        ))
        .bind(token_hash.to_owned())
        .bind(micros(now))
        .bind(idle_cutoff)
        .fetch_optional(&self.pool)
        .await?;
        let Some(row) = row else { return Ok(None) };
        let last_seen: i64 = row.try_get("last_seen_at")?;
        if micros(now) - last_seen > TOUCH_EVERY_MICROS {
            sqlx::query(self.sql("UPDATE sessions SET last_seen_at = ? WHERE token_hash = ?"))
                .bind(micros(now))
                .bind(token_hash.to_owned())
                .execute(&self.pool)
                .await?;
        }
        Ok(Some(SessionRecord {
            user: user_from_row(&row)?,
            csrf_token: row.try_get("csrf_token")?,
            expires_at: from_micros(row.try_get("expires_at")?)?,
        }))
    }

    /// Ends a session (sign-out). Also sweeps sessions that have expired.
    pub async fn delete_session(&self, token_hash: &str) -> Result<()> {
        sqlx::query(self.sql("DELETE FROM sessions WHERE token_hash = ? OR expires_at < ?"))
            .bind(token_hash.to_owned())
            .bind(micros(Timestamp::now()))
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    /// Records a sign-in attempt.
    pub async fn record_login_attempt(
        &self,
        username: &str,
        client: &str,
        succeeded: bool,
        at: Timestamp,
    ) -> Result<()> {
        sqlx::query(self.sql(
            "INSERT INTO login_attempts (username, client, at, succeeded) VALUES (?, ?, ?, ?)",
        ))
        .bind(username.to_owned())
        .bind(client.to_owned())
        .bind(micros(at))
        .bind(i64::from(succeeded))
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// Failed sign-ins since `since` for this username and from this client
    /// (counted across every irflow process sharing the database).
    pub async fn recent_login_failures(
        &self,
        username: &str,
        client: &str,
        since: Timestamp,
    ) -> Result<(i64, i64)> {
        let by_user: i64 = sqlx::query_scalar(self.sql(
            "SELECT COUNT(*) FROM login_attempts WHERE username = ? AND at >= ? AND succeeded = 0",
        ))
        .bind(username.to_owned())
        .bind(micros(since))
        .fetch_one(&self.pool)
        .await?;
        let by_client: i64 = sqlx::query_scalar(self.sql(
            "SELECT COUNT(*) FROM login_attempts WHERE client = ? AND at >= ? AND succeeded = 0",
        ))
        .bind(client.to_owned())
        .bind(micros(since))
        .fetch_one(&self.pool)
        .await?;
        Ok((by_user, by_client))
    }

    /// Stores a new API token (by hash) for a user; returns its id.
    pub async fn issue_api_token(
        &self,
        actor: &Actor,
        user: UserId,
        token_hash: &str,
        label: &str,
    ) -> Result<i64> {
        let now = Timestamp::now();
        let mut tx = self.pool.begin().await?;
        let id: i64 = sqlx::query_scalar(self.sql(
            "INSERT INTO api_tokens (user_id, token_hash, label, created_at) VALUES (?, ?, ?, ?) RETURNING id",
        ))
        .bind(user.get())
        .bind(token_hash.to_owned())
        .bind(label.to_owned())
        .bind(micros(now))
        .fetch_one(&mut *tx)
        .await?;
        self.insert_audit(
            &mut *tx,
            &NewAuditEvent::new(actor, "issue", "api_token", AuditOutcome::Success)
                .entity(id)
                .detail(format!("user_id={user}")),
            now,
        )
        .await?;
        tx.commit().await?;
        Ok(id)
    }

    /// The active user holding a live (unrevoked) token with this hash.
    pub async fn user_for_api_token(&self, token_hash: &str) -> Result<Option<UserRecord>> {
        let row = sqlx::query(self.sql(
            "SELECT u.id, u.username, u.display_name, u.role, u.organization, u.disabled_at,
                    t.id AS token_id, t.last_used_at
             FROM api_tokens t JOIN users u ON u.id = t.user_id
             WHERE t.token_hash = ? AND t.revoked_at IS NULL AND u.disabled_at IS NULL",
        ))
        .bind(token_hash.to_owned())
        .fetch_optional(&self.pool)
        .await?;
        let Some(row) = row else { return Ok(None) };
        let token_id: i64 = row.try_get("token_id")?;
        let last_used: Option<i64> = row.try_get("last_used_at")?;
        let now = micros(Timestamp::now());
        if last_used.is_none_or(|t| now - t > TOUCH_EVERY_MICROS) {
            sqlx::query(self.sql("UPDATE api_tokens SET last_used_at = ? WHERE id = ?"))
                .bind(now)
                .bind(token_id)
                .execute(&self.pool)
                .await?;
        }
        user_from_row(&row).map(Some)
    }

    /// Revokes a token by id. Revoking twice is refused, so a typo is noticed.
    pub async fn revoke_api_token(&self, actor: &Actor, id: i64) -> Result<()> {
        let now = Timestamp::now();
        let mut tx = self.pool.begin().await?;
        let done = sqlx::query(
            self.sql("UPDATE api_tokens SET revoked_at = ? WHERE id = ? AND revoked_at IS NULL"),
        )
        .bind(micros(now))
        .bind(id)
        .execute(&mut *tx)
        .await?;
        if done.rows_affected() == 0 {
            return Err(StoreError::NotFound);
        }
        self.insert_audit(
            &mut *tx,
            &NewAuditEvent::new(actor, "revoke", "api_token", AuditOutcome::Success).entity(id),
            now,
        )
        .await?;
        tx.commit().await?;
        Ok(())
    }

    /// Every token, newest first (never the secrets).
    pub async fn list_api_tokens(&self) -> Result<Vec<ApiTokenRecord>> {
        let rows = sqlx::query(
            "SELECT t.id, u.username, t.label, t.created_at, t.last_used_at, t.revoked_at
             FROM api_tokens t JOIN users u ON u.id = t.user_id ORDER BY t.id DESC",
        )
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|r| {
                let last: Option<i64> = r.try_get("last_used_at")?;
                let revoked: Option<i64> = r.try_get("revoked_at")?;
                Ok(ApiTokenRecord {
                    id: r.try_get("id")?,
                    username: r.try_get("username")?,
                    label: r.try_get("label")?,
                    created_at: from_micros(r.try_get("created_at")?)?,
                    last_used_at: last.map(from_micros).transpose()?,
                    revoked_at: revoked.map(from_micros).transpose()?,
                })
            })
            .collect()
    }
}
