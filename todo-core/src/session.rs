//! Better Auth's opaque session tokens, checked against its `session` table, for deployments
//! where the task backend shares Better Auth's PostgreSQL database.

use std::str::FromStr;
use std::time::Duration;

use async_trait::async_trait;
use sqlx::Row;
use sqlx::postgres::{PgConnectOptions, PgPool, PgPoolOptions, PgRow};

use crate::auth::{AuthError, Authenticator};
use crate::error::{Error, Result};
use crate::model::UserId;
use crate::options::Pooler;
use crate::principal::Principal;

/// Where Better Auth keeps sessions. The defaults are Better Auth's own names.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SessionTable {
    /// Table name (default `session`).
    pub table: String,
    /// Column holding the session token (default `token`).
    pub token_column: String,
    /// Column holding the user id (default `userId`).
    pub user_id_column: String,
    /// Column holding the expiry time, a `timestamp`/`timestamptz` (default `expiresAt`).
    pub expires_at_column: String,
}

impl Default for SessionTable {
    fn default() -> Self {
        Self {
            table: "session".into(),
            token_column: "token".into(),
            user_id_column: "userId".into(),
            expires_at_column: "expiresAt".into(),
        }
    }
}

impl SessionTable {
    /// Checks that `name` is a usable identifier (`name` or `schema.name`; letters, digits and
    /// `_`, at most 63 characters each): anything else is refused rather than quoted into SQL.
    pub fn check_identifier(name: &str) -> Result<()> {
        quote_identifier(name).map(|_| ())
    }
}

/// Quotes an identifier after checking it is plain (letters, digits, `_`, optionally one `.`
/// for a schema), so configuration can never inject SQL.
fn quote_identifier(name: &str) -> Result<String> {
    let parts: Vec<&str> = name.split('.').collect();
    let plain = |p: &&str| {
        !p.is_empty() && p.len() <= 63 && p.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
    };
    if parts.len() > 2 || !parts.iter().all(plain) {
        return Err(Error::Config(format!(
            "invalid SQL identifier {name:?}: use letters, digits and _"
        )));
    }
    Ok(parts
        .iter()
        .map(|p| format!("\"{p}\""))
        .collect::<Vec<_>>()
        .join("."))
}

/// Checks Better Auth session tokens (the cookie `better-auth.session_token`, the part before
/// the first `.`) against the `session` table. Expired sessions are rejected.
pub struct SessionTableAuthenticator {
    pool: PgPool,
    query: String,
    /// Behind a transaction pooler ([`Pooler::Transaction`]): each lookup is an unnamed statement
    /// in a transaction of its own, as the task store's statements are there.
    pooler: Pooler,
}

impl std::fmt::Debug for SessionTableAuthenticator {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SessionTableAuthenticator")
            .field("query", &self.query)
            .field("pooler", &self.pooler)
            .finish_non_exhaustive()
    }
}

impl SessionTableAuthenticator {
    /// Connects to Better Auth's PostgreSQL database, behind the pooler its URL names
    /// ([`Pooler::detect`]).
    pub async fn connect(url: &str, table: &SessionTable) -> Result<Self> {
        Self::connect_behind(url, table, Pooler::detect(url)).await
    }

    /// Connects to Better Auth's PostgreSQL database behind `pooler`. With
    /// [`Pooler::Transaction`] nothing relies on the session: no statement is named or kept,
    /// each lookup is an unnamed statement inside `begin` ... `commit` (two more round trips),
    /// and no `extra_float_digits` startup parameter is sent (PgBouncer refuses it unless told
    /// to ignore it). The URL parameter `pgbouncer` is dropped before connecting.
    pub async fn connect_behind(url: &str, table: &SessionTable, pooler: Pooler) -> Result<Self> {
        let options = PgConnectOptions::from_str(&Pooler::strip_url_parameters(url))
            .map_err(|e| Error::Config(format!("invalid PostgreSQL URL: {e}")))?
            .application_name("todo-sessions");
        let options = match pooler {
            Pooler::None => options,
            Pooler::Transaction => options.statement_cache_capacity(0).extra_float_digits(None),
        };
        let pool = PgPoolOptions::new()
            .max_connections(8)
            .acquire_timeout(Duration::from_secs(3))
            .connect_with(options)
            .await
            .map_err(crate::store::postgres::error::from_sqlx)?;
        let mut sessions = Self::with_pool(pool, table)?;
        sessions.pooler = pooler;
        Ok(sessions)
    }

    /// Uses an existing pool, whose connections are sessions of their own ([`Pooler::None`]).
    pub fn with_pool(pool: PgPool, table: &SessionTable) -> Result<Self> {
        let query = format!(
            "select {user}::text, {expires} > now() from {table} where {token} = $1",
            user = quote_identifier(&table.user_id_column)?,
            expires = quote_identifier(&table.expires_at_column)?,
            table = quote_identifier(&table.table)?,
            token = quote_identifier(&table.token_column)?,
        );
        Ok(Self {
            pool,
            query,
            pooler: Pooler::None,
        })
    }

    /// The session row of `token`, if any: a named statement prepared once per connection, or,
    /// behind a transaction pooler, an unnamed one in a transaction of its own.
    async fn lookup(&self, token: &str) -> sqlx::Result<Option<PgRow>> {
        let query = sqlx::query(&self.query).bind(token);
        match self.pooler {
            Pooler::None => query.fetch_optional(&self.pool).await,
            Pooler::Transaction => {
                let mut tx = self.pool.begin().await?;
                let row = query.persistent(false).fetch_optional(&mut *tx).await?;
                tx.commit().await?;
                Ok(row)
            }
        }
    }
}

impl SessionTableAuthenticator {
    /// Reads the table once, so that a table or column that does not exist, or a database that
    /// cannot be reached, is found when the server starts rather than on every request.
    pub async fn check(&self) -> Result<()> {
        self.lookup("")
            .await
            .map_err(crate::store::postgres::error::from_sqlx)?;
        Ok(())
    }
}

#[async_trait]
impl Authenticator for SessionTableAuthenticator {
    #[tracing::instrument(level = "debug", skip_all)]
    async fn authenticate(&self, token: &str) -> Result<Principal, AuthError> {
        // A signed cookie value is `<token>.<signature>`; the table holds the token.
        let token = token.split('.').next().unwrap_or("").trim();
        if token.is_empty() {
            return Err(AuthError::Missing);
        }
        // Better Auth's session tokens are short random identifiers; anything else is refused
        // without a query, so garbage tokens cost its database nothing.
        if token.len() > 512
            || !token
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        {
            return Err(AuthError::Malformed);
        }
        // A statement lost to a transaction pooler the authenticator was not told about is
        // noted by `from_sqlx`, which logs one line naming the setting.
        let row = self
            .lookup(token)
            .await
            .map_err(|e| {
                let e = crate::store::postgres::error::from_sqlx(e);
                tracing::warn!(error = %e, "session lookup failed");
                AuthError::Unavailable
            })?
            .ok_or(AuthError::UnknownSession)?;
        let user: String = row.try_get(0).map_err(|_| AuthError::NoSubject)?;
        let live: Option<bool> = row.try_get(1).map_err(|_| AuthError::Expired)?;
        if live != Some(true) {
            return Err(AuthError::Expired);
        }
        let user_id = UserId::parse(&user).map_err(|_| AuthError::NoSubject)?;
        Ok(Principal::verified(user_id, None, None))
    }
}

#[cfg(test)]
mod tests {
    use super::quote_identifier;

    #[test]
    fn identifiers_are_quoted_and_injection_is_refused() {
        assert_eq!(quote_identifier("userId").unwrap(), "\"userId\"");
        assert_eq!(
            quote_identifier("auth.session").unwrap(),
            "\"auth\".\"session\""
        );
        for bad in ["", "a;drop table x", "a\"b", "a.b.c", "sp ace"] {
            assert!(quote_identifier(bad).is_err(), "{bad}");
        }
    }
}
