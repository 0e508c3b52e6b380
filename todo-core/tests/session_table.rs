//! Better Auth's opaque session tokens against a real `session` table on PostgreSQL (skipped,
//! loudly, without `TODO_TEST_DATABASE_URL`).
#![allow(clippy::unwrap_used)]

use std::io::Write;

use todo_core::{AuthError, Authenticator, SessionTable, SessionTableAuthenticator};

fn pg_url() -> Option<String> {
    match std::env::var("TODO_TEST_DATABASE_URL") {
        Ok(u) if !u.is_empty() => Some(u),
        _ => {
            let _ = writeln!(
                std::io::stderr(),
                "\n*** SKIPPING the session-table tests: TODO_TEST_DATABASE_URL is not set ***\n"
            );
            None
        }
    }
}

#[tokio::test]
async fn live_sessions_authenticate_and_expired_or_unknown_ones_do_not() {
    let Some(url) = pg_url() else { return };
    use rand::Rng;
    let table = format!("session_test_{:x}", rand::thread_rng().r#gen::<u32>());
    let pool = sqlx::PgPool::connect(&url).await.unwrap();
    sqlx::query(&format!(
        r#"create table "{table}" (id text primary key, token text not null unique,
           "userId" text not null, "expiresAt" timestamp not null)"#
    ))
    .execute(&pool)
    .await
    .unwrap();
    for (id, token, user, interval) in [
        ("1", "livetoken", "user-live", "1 hour"),
        ("2", "oldtoken", "user-old", "-1 hour"),
    ] {
        sqlx::query(&format!(
            r#"insert into "{table}" values ($1, $2, $3, now() + interval '{interval}')"#
        ))
        .bind(id)
        .bind(token)
        .bind(user)
        .execute(&pool)
        .await
        .unwrap();
    }
    let auth = SessionTableAuthenticator::connect(
        &url,
        &SessionTable {
            table: table.clone(),
            ..SessionTable::default()
        },
    )
    .await
    .unwrap();
    // The signed cookie value is `<token>.<signature>`; either form works.
    for presented in ["livetoken", "livetoken.c2lnbmF0dXJl"] {
        let p = auth.authenticate(presented).await.unwrap();
        assert_eq!(p.user_id().as_str(), "user-live");
    }
    assert_eq!(auth.authenticate("oldtoken").await, Err(AuthError::Expired));
    assert_eq!(
        auth.authenticate("nosuchtoken").await,
        Err(AuthError::UnknownSession)
    );
    assert_eq!(auth.authenticate("").await, Err(AuthError::Missing));
    // Tokens are bound, never spliced; one that cannot be a session token is refused before any
    // query is made.
    assert_eq!(
        auth.authenticate("' or 1=1 --").await,
        Err(AuthError::Malformed)
    );
    assert_eq!(
        auth.authenticate("no-such_token-0123").await,
        Err(AuthError::UnknownSession)
    );
    sqlx::query(&format!(r#"drop table "{table}""#))
        .execute(&pool)
        .await
        .unwrap();
}

#[tokio::test]
async fn unsafe_table_names_are_refused_at_configuration() {
    let Some(url) = pg_url() else { return };
    let err = SessionTableAuthenticator::connect(
        &url,
        &SessionTable {
            table: "session; drop table tasks".into(),
            ..SessionTable::default()
        },
    )
    .await
    .unwrap_err();
    assert!(matches!(err, todo_core::Error::Config(_)), "{err:?}");
}
