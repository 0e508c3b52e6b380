//! Built-in accounts for deployments without Better Auth: register and log in with an email and a
//! password. Passwords are hashed with argon2id off the async runtime, a bounded number at a
//! time ([`Hasher`]); tokens are then issued by a [`TokenIssuer`](crate::TokenIssuer) with the
//! same claims Better Auth uses.

use std::sync::{Arc, OnceLock};
use std::time::Duration;

use argon2::Argon2;
use argon2::password_hash::rand_core::OsRng;
use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use async_trait::async_trait;
use tokio::sync::Semaphore;

use crate::error::{Error, Result, ValidationError};
use crate::model::UserId;

/// Shortest accepted password, in characters.
pub const PASSWORD_MIN_CHARS: usize = 8;
/// Longest accepted password, in characters.
pub const PASSWORD_MAX_CHARS: usize = 128;

/// A registered account (never its password).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Account {
    /// The user id tasks are stored under (32 random alphanumerics, like Better Auth's).
    pub id: UserId,
    /// The normalised email.
    pub email: String,
    /// The display name, if given.
    pub name: Option<String>,
}

/// A normalised email: trimmed, lowercased, `local@domain`, at most 254 characters.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Email(String);

impl Email {
    /// Normalises and checks `raw`.
    pub fn parse(raw: &str) -> Result<Self, ValidationError> {
        let email = raw.trim().to_lowercase();
        let valid = email.chars().count() <= 254
            && !email.chars().any(|c| c.is_whitespace() || c.is_control())
            && matches!(email.split_once('@'), Some((local, domain))
                if !local.is_empty() && !domain.is_empty() && !domain.contains('@'));
        if valid {
            Ok(Self(email))
        } else {
            Err(ValidationError::field("email", "must be an email address"))
        }
    }

    /// The normalised text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

fn check_password(password: &str) -> Result<(), ValidationError> {
    let n = password.chars().count();
    if !(PASSWORD_MIN_CHARS..=PASSWORD_MAX_CHARS).contains(&n) {
        return Err(ValidationError::field(
            "password",
            format!("must be {PASSWORD_MIN_CHARS} to {PASSWORD_MAX_CHARS} characters"),
        ));
    }
    Ok(())
}

fn check_name(name: Option<&str>) -> Result<Option<String>, ValidationError> {
    match name.map(str::trim).filter(|n| !n.is_empty()) {
        None => Ok(None),
        Some(n) if n.chars().count() > 100 || n.contains('\0') => Err(ValidationError::field(
            "name",
            "must be at most 100 characters",
        )),
        Some(n) => Ok(Some(n.to_owned())),
    }
}

/// How long a registration or login waits for its turn to hash by default.
const DEFAULT_HASH_WAIT: Duration = Duration::from_secs(5);

/// Runs argon2id on tokio's blocking threads, at most a fixed number at a time
/// ([`StoreOptions::password_hash_concurrency`](crate::StoreOptions::password_hash_concurrency)):
/// each hash holds about 19 MiB and tens of milliseconds of a CPU, so a burst of sign-ins would
/// otherwise take as many blocking threads and as much memory as it has requests. A caller waits
/// for a turn at most [`StoreOptions::password_hash_wait`](crate::StoreOptions::password_hash_wait),
/// then gets [`Error::Unavailable`]. A turn is held until the hash has finished, even if the
/// caller has given up meanwhile, so the bound holds for the threads and not just the callers.
pub(crate) struct Hasher {
    turns: Arc<Semaphore>,
    wait: Duration,
}

impl Hasher {
    /// A hasher for `options`.
    pub(crate) fn new(options: &crate::StoreOptions) -> Self {
        let at_once = options.password_hash_concurrency.unwrap_or_else(|| {
            std::thread::available_parallelism().map_or(1, std::num::NonZeroUsize::get)
        });
        Self {
            turns: Arc::new(Semaphore::new(at_once.max(1))),
            wait: options.password_hash_wait.unwrap_or(DEFAULT_HASH_WAIT),
        }
    }

    /// Runs `f` on the blocking pool once a turn is free.
    async fn run<T: Send + 'static>(&self, f: impl FnOnce() -> T + Send + 'static) -> Result<T> {
        let turn = match Arc::clone(&self.turns).try_acquire_owned() {
            Ok(turn) => turn,
            Err(_) => tokio::time::timeout(self.wait, Arc::clone(&self.turns).acquire_owned())
                .await
                .map_err(|_| Error::Unavailable("too many password hashes in progress".into()))?
                .map_err(|e| Error::Unavailable(Box::new(e)))?,
        };
        tokio::task::spawn_blocking(move || {
            let _turn = turn;
            f()
        })
        .await
        .map_err(|e| Error::Storage(Box::new(e)))
    }

    /// Hashes a new password (argon2id, a random salt).
    pub(crate) async fn hash(&self, password: String) -> Result<String> {
        self.run(move || {
            let salt = SaltString::generate(&mut OsRng);
            Argon2::default()
                .hash_password(password.as_bytes(), &salt)
                .map(|h| h.to_string())
                .map_err(|e| Error::Storage(e.to_string().into()))
        })
        .await?
    }

    /// Whether `password` matches `hash`; `false` for any mismatch or unreadable hash. Without
    /// a hash (an unknown email), a decoy is verified instead, in one turn like any other, so
    /// the answer takes as long as for a wrong password.
    pub(crate) async fn verify(&self, password: String, hash: Option<String>) -> Result<bool> {
        self.run(move || {
            let known = hash.is_some();
            let hash = hash.unwrap_or_else(|| decoy_hash().to_owned());
            let ok = PasswordHash::new(&hash)
                .map(|parsed| {
                    Argon2::default()
                        .verify_password(password.as_bytes(), &parsed)
                        .is_ok()
                })
                .unwrap_or(false);
            known && ok
        })
        .await
    }
}

/// A hash of a random password, verified against when the email is unknown so that a login
/// takes about as long for an unknown email as for a wrong password.
fn decoy_hash() -> &'static str {
    static DECOY: OnceLock<String> = OnceLock::new();
    DECOY.get_or_init(|| {
        let salt = SaltString::generate(&mut OsRng);
        Argon2::default()
            .hash_password(b"decoy password never used", &salt)
            .map(|h| h.to_string())
            .unwrap_or_default()
    })
}

/// A new random user id: 32 alphanumerics.
pub(crate) fn new_user_id() -> Result<UserId> {
    use rand::Rng;
    use rand::distributions::Alphanumeric;
    let id: String = rand::thread_rng()
        .sample_iter(&Alphanumeric)
        .take(32)
        .map(char::from)
        .collect();
    Ok(UserId::parse(&id)?)
}

/// Validated registration input.
pub(crate) struct Registration {
    pub email: Email,
    pub password: String,
    pub name: Option<String>,
}

impl Registration {
    pub(crate) fn parse(email: &str, password: &str, name: Option<&str>) -> Result<Self> {
        let mut errors = ValidationError::default();
        let email = errors.collect(Email::parse(email));
        errors.collect(check_password(password));
        let name = errors.collect(check_name(name));
        errors.into_result()?;
        match (email, name) {
            (Some(email), Some(name)) => Ok(Self {
                email,
                password: password.to_owned(),
                name,
            }),
            _ => Err(ValidationError::field("email", "is invalid").into()),
        }
    }
}

/// Built-in accounts.
#[async_trait]
pub trait AccountStore: Send + Sync + 'static {
    /// Registers an account. The email is normalised (case, whitespace); one already registered
    /// is [`Error::EmailTaken`]. Hashing the password waits for a turn
    /// ([`StoreOptions::password_hash_concurrency`](crate::StoreOptions::password_hash_concurrency)):
    /// [`Error::Unavailable`] if none comes within
    /// [`StoreOptions::password_hash_wait`](crate::StoreOptions::password_hash_wait).
    async fn register(&self, email: &str, password: &str, name: Option<&str>) -> Result<Account>;

    /// Checks an email and password. Any mismatch, unknown email included, is
    /// [`Error::InvalidCredentials`], answered in about the same time. Like
    /// [`register`](Self::register), [`Error::Unavailable`] when no hashing turn comes in time.
    async fn login(&self, email: &str, password: &str) -> Result<Account>;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn emails_are_normalised_and_checked() {
        assert_eq!(
            Email::parse("  Ada@Example.COM ").unwrap().as_str(),
            "ada@example.com"
        );
        for bad in ["", "ada", "@x.y", "ada@", "a b@c.d", "a@b@c"] {
            assert!(Email::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn registration_reports_every_bad_field() {
        let Err(Error::Validation(v)) =
            Registration::parse("nope", "short", Some(&"n".repeat(101)))
        else {
            panic!("expected a validation error")
        };
        let fields: Vec<_> = v.errors.iter().map(|e| e.field.as_str()).collect();
        assert_eq!(fields, ["email", "password", "name"]);
    }

    #[tokio::test]
    async fn a_hash_verifies_only_its_password_and_an_unknown_account_never_verifies() {
        let hasher = Hasher::new(&crate::StoreOptions::default());
        let hash = hasher.hash("correct horse".into()).await.unwrap();
        assert!(hash.starts_with("$argon2id$"));
        assert!(
            hasher
                .verify("correct horse".into(), Some(hash.clone()))
                .await
                .unwrap()
        );
        assert!(
            !hasher
                .verify("wrong horse".into(), Some(hash))
                .await
                .unwrap()
        );
        assert!(
            !hasher
                .verify("decoy password never used".into(), None)
                .await
                .unwrap()
        );
    }
}
