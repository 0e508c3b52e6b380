use todo_core::{AccountStore, Error, StoreOptions};

use crate::helpers::pg_url;

async fn account_stores() -> Vec<(&'static str, std::sync::Arc<dyn AccountStore>)> {
    let mut out = Vec::new();
    let memory = todo_core::open_store("sqlite::memory:", StoreOptions::default())
        .await
        .unwrap();
    out.push(("sqlite-memory", memory.accounts));
    if let Some(url) = pg_url() {
        let pg = todo_core::open_store(&url, StoreOptions::default())
            .await
            .unwrap();
        out.push(("postgres", pg.accounts));
    }
    out
}

fn unique_email() -> String {
    use rand::Rng;
    format!("Ada.{:x}@Example.com", rand::thread_rng().r#gen::<u64>())
}

#[tokio::test]
async fn register_then_login_with_a_normalised_email() {
    for (name, accounts) in account_stores().await {
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
    for (name, accounts) in account_stores().await {
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
    for (name, accounts) in account_stores().await {
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
    for (name, accounts) in account_stores().await {
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
