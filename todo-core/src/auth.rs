//! Authentication: turning a bearer token into the [`Principal`] that scopes every store call.
//!
//! [`JwtAuthenticator`] verifies the tokens Better Auth setups send: HS256/384/512 tokens signed
//! with a shared secret (`BETTER_AUTH_SECRET`), including Better Auth's cookie-cache JWT whose
//! user id is `user.id` rather than `sub`. [`TokenIssuer`] mints tokens of the same shape for the
//! built-in accounts.

use std::collections::HashSet;
use std::time::Duration;

use async_trait::async_trait;
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use serde::{Deserialize, Serialize};

use crate::model::UserId;
use crate::principal::Principal;

/// Why a credential was rejected. The text is safe to show to clients: it never contains the
/// token or a key.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AuthError {
    /// No credential was presented.
    #[error("no bearer token was presented")]
    Missing,
    /// The token is not a well-formed JWT.
    #[error("the bearer token is malformed")]
    Malformed,
    /// The signature does not verify.
    #[error("the token signature is invalid")]
    BadSignature,
    /// `exp` is in the past (beyond the leeway).
    #[error("the token has expired")]
    Expired,
    /// `nbf` is in the future (beyond the leeway).
    #[error("the token is not valid yet")]
    NotYetValid,
    /// `iss` is not the configured issuer.
    #[error("the token was issued by an unexpected issuer")]
    WrongIssuer,
    /// `aud` does not include the configured audience.
    #[error("the token is not meant for this audience")]
    WrongAudience,
    /// The token names a key (`kid`) that is not known.
    #[error("the token was signed with an unknown key")]
    UnknownKey,
    /// The token's algorithm is not one this server accepts for its key.
    #[error("the token's signing algorithm is not allowed")]
    AlgorithmNotAllowed,
    /// The token carries no usable user id (`sub`, `user.id` or `id`).
    #[error("the token has no subject")]
    NoSubject,
}

/// Verifies a bearer credential and returns the principal it stands for.
#[async_trait]
pub trait Authenticator: Send + Sync + 'static {
    /// Verifies `token` (the part after `Bearer `).
    async fn authenticate(&self, token: &str) -> Result<Principal, AuthError>;
}

/// The claims read from a token. Unknown claims are ignored.
#[derive(Debug, Deserialize)]
struct Claims {
    #[serde(default)]
    sub: Option<String>,
    #[serde(default)]
    id: Option<String>,
    #[serde(default)]
    user: Option<UserClaim>,
    #[serde(default)]
    email: Option<String>,
    #[serde(default)]
    name: Option<String>,
}

#[derive(Debug, Deserialize)]
struct UserClaim {
    #[serde(default)]
    id: Option<String>,
    #[serde(default)]
    email: Option<String>,
    #[serde(default)]
    name: Option<String>,
}

impl Claims {
    /// The user id is `sub`, else `user.id` (Better Auth's cookie cache), else `id`.
    fn into_principal(self) -> Result<Principal, AuthError> {
        let user = self.user;
        let id = [self.sub, user.as_ref().and_then(|u| u.id.clone()), self.id]
            .into_iter()
            .flatten()
            .find(|id| !id.is_empty())
            .ok_or(AuthError::NoSubject)?;
        let user_id = UserId::parse(&id).map_err(|_| AuthError::NoSubject)?;
        let email = self
            .email
            .or_else(|| user.as_ref().and_then(|u| u.email.clone()));
        let name = self.name.or_else(|| user.and_then(|u| u.name));
        Ok(Principal::verified(user_id, email, name))
    }
}

fn map_jwt_error(e: &jsonwebtoken::errors::Error) -> AuthError {
    use jsonwebtoken::errors::ErrorKind as K;
    match e.kind() {
        K::InvalidSignature => AuthError::BadSignature,
        K::ExpiredSignature => AuthError::Expired,
        K::ImmatureSignature => AuthError::NotYetValid,
        K::InvalidIssuer => AuthError::WrongIssuer,
        K::InvalidAudience => AuthError::WrongAudience,
        K::InvalidAlgorithm | K::InvalidAlgorithmName | K::UnsupportedAlgorithm => {
            AuthError::AlgorithmNotAllowed
        }
        _ => AuthError::Malformed,
    }
}

/// Validation settings shared by every key.
#[derive(Debug, Clone)]
pub struct JwtRules {
    /// Accepted `iss` values; `None` skips the check.
    pub issuer: Option<Vec<String>>,
    /// Accepted `aud` values; `None` skips the check (a token carrying `aud` is still accepted).
    pub audience: Option<Vec<String>>,
    /// Clock skew tolerated on `exp` and `nbf` (default 60 s).
    pub leeway: Duration,
}

impl Default for JwtRules {
    fn default() -> Self {
        Self {
            issuer: None,
            audience: None,
            leeway: Duration::from_secs(60),
        }
    }
}

impl JwtRules {
    fn validation(&self, algorithms: Vec<Algorithm>) -> Validation {
        let mut v = Validation::new(Algorithm::HS256);
        v.algorithms = algorithms;
        v.leeway = self.leeway.as_secs();
        v.validate_exp = true;
        v.validate_nbf = true;
        v.required_spec_claims = HashSet::from(["exp".to_owned()]);
        match &self.issuer {
            Some(iss) => v.set_issuer(iss),
            None => v.iss = None,
        }
        match &self.audience {
            Some(aud) => v.set_audience(aud),
            // jsonwebtoken rejects any token carrying `aud` when no audience is configured;
            // Better Auth always sends one, so only check it when asked to.
            None => v.validate_aud = false,
        }
        v
    }
}

/// A JWT verifier for HMAC-signed tokens (HS256, HS384, HS512) with a shared secret.
pub struct JwtAuthenticator {
    key: DecodingKey,
    validation: Validation,
}

impl std::fmt::Debug for JwtAuthenticator {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("JwtAuthenticator")
            .field("key", &"<redacted>")
            .field("algorithms", &self.validation.algorithms)
            .finish()
    }
}

impl JwtAuthenticator {
    /// Verifies HS256/HS384/HS512 tokens signed with `secret` (its raw bytes are the key, as with
    /// `BETTER_AUTH_SECRET`).
    pub fn shared_secret(secret: &[u8], rules: &JwtRules) -> Self {
        Self {
            key: DecodingKey::from_secret(secret),
            validation: rules.validation(vec![
                Algorithm::HS256,
                Algorithm::HS384,
                Algorithm::HS512,
            ]),
        }
    }

    /// Verifies synchronously (a few microseconds of CPU for HMAC).
    pub fn verify(&self, token: &str) -> Result<Principal, AuthError> {
        if token.is_empty() {
            return Err(AuthError::Missing);
        }
        let data = jsonwebtoken::decode::<Claims>(token, &self.key, &self.validation)
            .map_err(|e| map_jwt_error(&e))?;
        data.claims.into_principal()
    }
}

#[async_trait]
impl Authenticator for JwtAuthenticator {
    #[tracing::instrument(skip_all)]
    async fn authenticate(&self, token: &str) -> Result<Principal, AuthError> {
        self.verify(token)
    }
}

/// The claims [`TokenIssuer`] signs, shaped like Better Auth's JWT plugin output.
#[derive(Debug, Serialize)]
struct IssuedClaims<'a> {
    sub: &'a str,
    id: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    email: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    name: Option<&'a str>,
    iat: u64,
    exp: u64,
    #[serde(skip_serializing_if = "Option::is_none")]
    iss: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    aud: Option<&'a str>,
}

/// Signs HS256 tokens for the built-in accounts, with the same claims Better Auth issues.
pub struct TokenIssuer {
    key: EncodingKey,
    issuer: Option<String>,
    audience: Option<String>,
    lifetime: Duration,
}

impl std::fmt::Debug for TokenIssuer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TokenIssuer")
            .field("key", &"<redacted>")
            .field("issuer", &self.issuer)
            .field("lifetime", &self.lifetime)
            .finish()
    }
}

impl TokenIssuer {
    /// An issuer signing with `secret`; tokens live for `lifetime`.
    pub fn hs256(
        secret: &[u8],
        issuer: Option<String>,
        audience: Option<String>,
        lifetime: Duration,
    ) -> Self {
        Self {
            key: EncodingKey::from_secret(secret),
            issuer,
            audience,
            lifetime,
        }
    }

    /// How long issued tokens live.
    pub fn lifetime(&self) -> Duration {
        self.lifetime
    }

    /// Signs a token for `user_id`.
    pub fn issue(
        &self,
        user_id: &UserId,
        email: Option<&str>,
        name: Option<&str>,
    ) -> Result<String, crate::Error> {
        let iat = jsonwebtoken::get_current_timestamp();
        let claims = IssuedClaims {
            sub: user_id.as_str(),
            id: user_id.as_str(),
            email,
            name,
            iat,
            exp: iat + self.lifetime.as_secs(),
            iss: self.issuer.as_deref(),
            aud: self.audience.as_deref(),
        };
        jsonwebtoken::encode(&Header::new(Algorithm::HS256), &claims, &self.key)
            .map_err(|e| crate::Error::Storage(Box::new(e)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SECRET: &[u8] = b"a-test-secret-of-at-least-32-bytes!!";

    fn sign(claims: serde_json::Value, alg: Algorithm, secret: &[u8]) -> String {
        jsonwebtoken::encode(
            &Header::new(alg),
            &claims,
            &EncodingKey::from_secret(secret),
        )
        .unwrap()
    }

    fn now() -> u64 {
        jsonwebtoken::get_current_timestamp()
    }

    #[test]
    fn issued_tokens_verify_and_carry_the_profile() {
        let issuer = TokenIssuer::hs256(SECRET, None, None, Duration::from_secs(900));
        let token = issuer
            .issue(&UserId::parse("u1").unwrap(), Some("a@b.c"), Some("Al"))
            .unwrap();
        let auth = JwtAuthenticator::shared_secret(SECRET, &JwtRules::default());
        let p = auth.verify(&token).unwrap();
        assert_eq!(p.user_id().as_str(), "u1");
        assert_eq!(p.email(), Some("a@b.c"));
        assert_eq!(p.name(), Some("Al"));
    }

    #[test]
    fn cookie_cache_tokens_use_user_id_and_aud_is_tolerated_when_unconfigured() {
        let auth = JwtAuthenticator::shared_secret(SECRET, &JwtRules::default());
        let token = sign(
            serde_json::json!({"session": {"id": "s"}, "user": {"id": "u2", "email": "x@y.z"},
                "exp": now() + 60, "aud": "http://localhost:3000"}),
            Algorithm::HS256,
            SECRET,
        );
        let p = auth.verify(&token).unwrap();
        assert_eq!(p.user_id().as_str(), "u2");
        assert_eq!(p.email(), Some("x@y.z"));
    }

    #[test]
    fn each_rejection_has_its_own_reason() {
        let rules = JwtRules {
            issuer: Some(vec!["http://auth".into()]),
            audience: Some(vec!["http://auth".into()]),
            ..JwtRules::default()
        };
        let auth = JwtAuthenticator::shared_secret(SECRET, &rules);
        let ok = serde_json::json!({"sub": "u", "iss": "http://auth", "aud": "http://auth"});
        let with = |extra: serde_json::Value| {
            let mut c = ok.clone();
            for (k, v) in extra.as_object().unwrap() {
                c[k] = v.clone();
            }
            c
        };
        let cases = [
            (
                sign(
                    with(serde_json::json!({"exp": now() + 60})),
                    Algorithm::HS256,
                    b"another-secret-another-secret-xx",
                ),
                AuthError::BadSignature,
            ),
            (
                sign(
                    with(serde_json::json!({"exp": now() - 3600})),
                    Algorithm::HS256,
                    SECRET,
                ),
                AuthError::Expired,
            ),
            (
                sign(
                    with(serde_json::json!({"exp": now() + 3600, "nbf": now() + 1800})),
                    Algorithm::HS256,
                    SECRET,
                ),
                AuthError::NotYetValid,
            ),
            (
                sign(
                    with(serde_json::json!({"exp": now() + 60, "iss": "http://evil"})),
                    Algorithm::HS256,
                    SECRET,
                ),
                AuthError::WrongIssuer,
            ),
            (
                sign(
                    with(serde_json::json!({"exp": now() + 60, "aud": "http://evil"})),
                    Algorithm::HS256,
                    SECRET,
                ),
                AuthError::WrongAudience,
            ),
            (
                sign(
                    with(serde_json::json!({"exp": now() + 60, "sub": ""})),
                    Algorithm::HS256,
                    SECRET,
                ),
                AuthError::NoSubject,
            ),
            (
                sign(with(serde_json::json!({})), Algorithm::HS256, SECRET),
                AuthError::Malformed,
            ),
            ("not.a.jwt".to_owned(), AuthError::Malformed),
            (String::new(), AuthError::Missing),
        ];
        for (token, want) in cases {
            assert_eq!(auth.verify(&token).unwrap_err(), want, "{token}");
        }
        let good = sign(
            with(serde_json::json!({"exp": now() + 60})),
            Algorithm::HS512,
            SECRET,
        );
        assert_eq!(auth.verify(&good).unwrap().user_id().as_str(), "u");
    }
}
