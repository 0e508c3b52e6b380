use todo_core::{AccountStore, Error, StoreOptions};

use crate::helpers::pg_url;

/// Each backend's accounts (a file database reads them on its own connections), with the
/// directory to keep while the file's store is used.
async fn account_stores() -> Vec<(
    &'static str,
    std::sync::Arc<dyn AccountStore>,
    Option<tempfile::TempDir>,
)> {
    let mut out = Vec::new();
    let memory = todo_core::open_store("sqlite::memory:", StoreOptions::default())
        .await
        .unwrap();
    out.push(("sqlite-memory", memory.accounts, None));
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}", dir.path().join("todo.db").display());
    let file = todo_core::open_store(&url, StoreOptions::default())
        .await
        .unwrap();
    out.push(("sqlite-file", file.accounts, Some(dir)));
    if let Some(url) = pg_url() {
        let pg = todo_core::open_store(&url, StoreOptions::default())
            .await
            .unwrap();
        out.push(("postgres", pg.accounts, None));
    }
    out
}

fn unique_email() -> String {
    use rand::Rng;
    format!("Ada.{:x}@Example.com", rand::thread_rng().r#gen::<u64>())
}

#[tokio::test]
async fn register_then_login_with_a_normalised_email() {
    for (name, accounts, _dir) in account_stores().await {
        let email = unique_email();
        let account = accounts
            .register(&format!("  {email} "), "correct horse", Some(" Ada "))
            .await
            .unwrap();
        assert_eq!(account.email, email.to_lowercase(), "{name}");
        assert_eq!(account.name.as_deref(), Some("Ada"));
        assert_eq!(account.id.as_str().len(), 32);
        let again = accounts
            .login(&email.to_uppercase(), "correct horse")
            .await
            .unwrap();
        assert_eq!(again, account, "{name}");
    }
}

#[tokio::test]
async fn a_duplicate_email_is_a_conflict_whatever_its_case() {
    for (name, accounts, _dir) in account_stores().await {
        let email = unique_email();
        accounts.register(&email, "password-1", None).await.unwrap();
        let err = accounts
            .register(&email.to_uppercase(), "password-2", None)
            .await
            .unwrap_err();
        assert!(matches!(err, Error::EmailTaken), "{name}: {err:?}");
    }
}

#[tokio::test]
async fn a_wrong_password_and_an_unknown_email_get_the_same_answer() {
    for (name, accounts, _dir) in account_stores().await {
        let email = unique_email();
        accounts.register(&email, "password-1", None).await.unwrap();
        let wrong = accounts.login(&email, "password-2").await.unwrap_err();
        let unknown = accounts
            .login(&unique_email(), "password-1")
            .await
            .unwrap_err();
        let malformed = accounts
            .login("not an email", "password-1")
            .await
            .unwrap_err();
        for e in [&wrong, &unknown, &malformed] {
            assert!(matches!(e, Error::InvalidCredentials), "{name}: {e:?}");
        }
        assert_eq!(wrong.to_string(), unknown.to_string());
    }
}

#[tokio::test]
async fn invalid_registrations_name_each_field_and_store_nothing() {
    for (name, accounts, _dir) in account_stores().await {
        let email = unique_email();
        match accounts.register(&email, "short", None).await {
            Err(Error::Validation(v)) => assert_eq!(v.errors[0].field, "password"),
            other => panic!("{name}: {other:?}"),
        }
        // Nothing was stored: the email is still free.
        accounts
            .register(&email, "long enough", None)
            .await
            .unwrap();
    }
}

/// A store on a fresh SQLite file with `at_once` password hashes at a time, each caller
/// waiting at most `wait` for a turn, and an account registered in it ("correct horse").
async fn hashing_store(
    dir: &tempfile::TempDir,
    at_once: usize,
    wait: Option<std::time::Duration>,
) -> (std::sync::Arc<dyn AccountStore>, String) {
    let url = format!("sqlite://{}", dir.path().join("accounts.db").display());
    let options = StoreOptions {
        password_hash_concurrency: Some(at_once),
        password_hash_wait: wait,
        ..StoreOptions::default()
    };
    let accounts = todo_core::open_store(&url, options).await.unwrap().accounts;
    let email = unique_email();
    accounts
        .register(&email, "correct horse", None)
        .await
        .unwrap();
    (accounts, email)
}

/// `k` logins at once; each one's result, and when it came.
async fn logins_at_once(
    accounts: &std::sync::Arc<dyn AccountStore>,
    email: &str,
    k: usize,
) -> Vec<(Result<todo_core::Account, Error>, std::time::Instant)> {
    let mut handles = Vec::new();
    for _ in 0..k {
        let accounts = std::sync::Arc::clone(accounts);
        let email = email.to_owned();
        handles.push(tokio::spawn(async move {
            let result = accounts.login(&email, "correct horse").await;
            (result, std::time::Instant::now())
        }));
    }
    let mut out = Vec::new();
    for h in handles {
        out.push(h.await.unwrap());
    }
    out
}

/// With one hash at a time, logins that cannot get a turn within the wait are refused as
/// unavailable (retry later), never as bad credentials; with the default wait, every one of
/// them succeeds in turn.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn logins_that_wait_too_long_for_a_password_hash_are_unavailable() {
    let dir = tempfile::tempdir().unwrap();
    let (accounts, email) = hashing_store(&dir, 1, Some(std::time::Duration::from_millis(1))).await;
    let results: Vec<_> = logins_at_once(&accounts, &email, 6)
        .await
        .into_iter()
        .map(|(r, _)| r)
        .collect();
    let succeeded = results.iter().filter(|r| r.is_ok()).count();
    let refused = results
        .iter()
        .filter(|r| matches!(r, Err(Error::Unavailable(_))))
        .count();
    assert!(succeeded >= 1, "{results:?}");
    assert!(refused >= 1, "{results:?}");
    assert_eq!(succeeded + refused, results.len(), "{results:?}");

    let dir = tempfile::tempdir().unwrap();
    let (accounts, email) = hashing_store(&dir, 1, None).await;
    for (result, _) in logins_at_once(&accounts, &email, 6).await {
        result.unwrap();
    }
}

/// No more hashes run at once than allowed: with one at a time, `K` logins started together
/// end one by one, a hash apart, so the last ends long after the first (at least half of
/// `K - 1` logins' time, one login timed alone, the fastest of three before and three after).
/// Run side by side, they would share the CPUs and end together. (Total time is no measure here: argon2 is bound by memory, and two
/// hashes side by side on this kind of machine finish only a little sooner than one after
/// the other.)
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn password_hashes_run_no_more_at_once_than_allowed() {
    use std::time::{Duration, Instant};
    const K: u32 = 10;
    let dir = tempfile::tempdir().unwrap();
    let (accounts, email) = hashing_store(&dir, 1, Some(Duration::from_secs(60))).await;
    let mut one = Duration::MAX;
    for _ in 0..3 {
        let started = Instant::now();
        accounts.login(&email, "correct horse").await.unwrap();
        one = one.min(started.elapsed());
    }
    let mut ended = Vec::new();
    for (result, at) in logins_at_once(&accounts, &email, K as usize).await {
        result.unwrap();
        ended.push(at);
    }
    // Timed again afterwards: a login timed while other tests loaded the machine would make
    // `one` too long and the spread look short.
    for _ in 0..3 {
        let started = Instant::now();
        accounts.login(&email, "correct horse").await.unwrap();
        one = one.min(started.elapsed());
    }
    ended.sort();
    let spread = ended[ended.len() - 1] - ended[0];
    assert!(
        spread >= one * (K - 1) / 2,
        "{K} logins ended within {spread:?} (one alone takes {one:?}): they ran side by side"
    );
}
