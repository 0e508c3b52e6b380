//! Authentication: turning a bearer token into the [`Principal`] that scopes every store call.
//!
//! [`JwtAuthenticator`] verifies the tokens Better Auth setups send: HS256/384/512 tokens signed
//! with a shared secret (`BETTER_AUTH_SECRET`), including Better Auth's cookie-cache JWT whose
//! user id is `user.id` rather than `sub`. [`TokenIssuer`] mints tokens of the same shape for the
//! built-in accounts.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

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
    /// An opaque session token that no session has.
    #[error("the session does not exist")]
    UnknownSession,
    /// The credential could not be checked now (its database is unreachable); retry later.
    #[error("the credential could not be checked; retry shortly")]
    Unavailable,
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
    #[serde(default)]
    exp: Option<f64>,
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
    /// One prepared validation per algorithm.
    fn validations(&self) -> HashMap<Algorithm, Validation> {
        ALL_ALGORITHMS
            .iter()
            .map(|alg| (*alg, self.validation(vec![*alg])))
            .collect()
    }

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

/// A public key from a JWKS, with the algorithms its key type allows.
struct VerifyKey {
    key: DecodingKey,
    algorithms: Vec<Algorithm>,
}

/// The keys currently trusted, by `kid`.
#[derive(Default)]
struct KeySet {
    by_kid: HashMap<String, Arc<VerifyKey>>,
    without_kid: Vec<Arc<VerifyKey>>,
}

impl KeySet {
    /// Builds a key set from a JWKS document. Each key's algorithms are pinned by its type:
    /// Ed25519 keys verify only EdDSA, RSA keys only RS*/PS*, P-256 only ES256, P-384 only ES384
    /// (narrowed further by the key's own `alg`). Symmetric (`oct`) keys and unsupported curves
    /// are ignored: a JWKS never makes HS* tokens acceptable.
    fn from_jwks(doc: &str) -> Result<Self, crate::Error> {
        use jsonwebtoken::jwk::{AlgorithmParameters, EllipticCurve, JwkSet};
        let set: JwkSet = serde_json::from_str(doc)
            .map_err(|e| crate::Error::Config(format!("invalid JWKS document: {e}")))?;
        let mut keys = Self::default();
        for jwk in &set.keys {
            let by_type: Vec<Algorithm> = match &jwk.algorithm {
                AlgorithmParameters::OctetKeyPair(p) if p.curve == EllipticCurve::Ed25519 => {
                    vec![Algorithm::EdDSA]
                }
                AlgorithmParameters::RSA(_) => RSA_ALGORITHMS.to_vec(),
                AlgorithmParameters::EllipticCurve(p) if p.curve == EllipticCurve::P256 => {
                    vec![Algorithm::ES256]
                }
                AlgorithmParameters::EllipticCurve(p) if p.curve == EllipticCurve::P384 => {
                    vec![Algorithm::ES384]
                }
                _ => continue,
            };
            let algorithms = match jwk.common.key_algorithm.map(Algorithm::try_from) {
                Some(Ok(alg)) if by_type.contains(&alg) => vec![alg],
                Some(_) => continue,
                None => by_type,
            };
            let Ok(key) = DecodingKey::from_jwk(jwk) else {
                continue;
            };
            let entry = Arc::new(VerifyKey { key, algorithms });
            match &jwk.common.key_id {
                Some(kid) => {
                    keys.by_kid.insert(kid.clone(), entry);
                }
                None => keys.without_kid.push(entry),
            }
        }
        Ok(keys)
    }

    fn find(&self, kid: Option<&str>, alg: Algorithm) -> Option<Arc<VerifyKey>> {
        match kid {
            Some(kid) => self.by_kid.get(kid).cloned(),
            None => {
                let mut candidates = self
                    .by_kid
                    .values()
                    .chain(self.without_kid.iter())
                    .filter(|k| k.algorithms.contains(&alg));
                match (candidates.next(), candidates.next()) {
                    (Some(only), None) => Some(only.clone()),
                    _ => None,
                }
            }
        }
    }
}

/// Where keys are fetched from, and how often at most.
struct RemoteJwks {
    url: String,
    client: reqwest::Client,
    min_interval: Duration,
    last_fetch: tokio::sync::Mutex<Option<Instant>>,
}

/// What an RSA key may verify.
const RSA_ALGORITHMS: [Algorithm; 6] = [
    Algorithm::RS256,
    Algorithm::RS384,
    Algorithm::RS512,
    Algorithm::PS256,
    Algorithm::PS384,
    Algorithm::PS512,
];

/// Every algorithm a token may name.
const ALL_ALGORITHMS: [Algorithm; 12] = [
    Algorithm::HS256,
    Algorithm::HS384,
    Algorithm::HS512,
    RSA_ALGORITHMS[0],
    RSA_ALGORITHMS[1],
    RSA_ALGORITHMS[2],
    RSA_ALGORITHMS[3],
    RSA_ALGORITHMS[4],
    RSA_ALGORITHMS[5],
    Algorithm::ES256,
    Algorithm::ES384,
    Algorithm::EdDSA,
];

/// A JWT verifier for Better Auth tokens: HS256/384/512 with a shared secret, and EdDSA, RS*,
/// PS*, ES256, ES384 with public keys from a JWKS (a URL, fetched and cached, or a static
/// document). Verification with a cached key does no I/O.
pub struct JwtAuthenticator {
    hmac: Option<DecodingKey>,
    keys: RwLock<Arc<KeySet>>,
    remote: Option<RemoteJwks>,
    validations: HashMap<Algorithm, Validation>,
    cache: VerifiedCache,
}

/// How long a verified token is remembered at most (it is never remembered past its `exp`).
const VERIFIED_TTL: Duration = Duration::from_secs(60);
/// How many verified tokens are remembered.
const VERIFIED_CAPACITY: usize = 8192;

/// Tokens that verified recently, so a client sending the same token on every request pays for
/// the signature check once a minute rather than every time. An entry never outlives the
/// token's own `exp` (plus the configured leeway), so caching accepts nothing that verification
/// would reject; a JWKS refresh forgets everything, so a withdrawn key stops working at once.
#[derive(Default)]
struct VerifiedCache {
    entries: RwLock<HashMap<Box<str>, (Principal, Instant)>>,
}

impl VerifiedCache {
    fn clear(&self) {
        if let Ok(mut entries) = self.entries.write() {
            entries.clear();
        }
    }

    fn get(&self, token: &str) -> Option<Principal> {
        let entries = self.entries.read().ok()?;
        let (principal, until) = entries.get(token)?;
        (Instant::now() < *until).then(|| principal.clone())
    }

    fn remember(&self, token: &str, principal: &Principal, exp: Option<f64>, leeway: u64) {
        let now_unix = jsonwebtoken::get_current_timestamp() as f64;
        let Some(exp) = exp else { return };
        let left = exp + leeway as f64 - now_unix;
        // Also refuses NaN (a non-finite `exp`).
        if left.is_nan() || left <= 0.0 {
            return;
        }
        let ttl = Duration::from_secs_f64(left.min(VERIFIED_TTL.as_secs_f64()));
        let Ok(mut entries) = self.entries.write() else {
            return;
        };
        if entries.len() >= VERIFIED_CAPACITY {
            let now = Instant::now();
            entries.retain(|_, (_, until)| *until > now);
            if entries.len() >= VERIFIED_CAPACITY {
                entries.clear();
            }
        }
        entries.insert(token.into(), (principal.clone(), Instant::now() + ttl));
    }
}

impl std::fmt::Debug for JwtAuthenticator {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("JwtAuthenticator")
            .field("shared_secret", &self.hmac.as_ref().map(|_| "<redacted>"))
            .field("jwks_url", &self.remote.as_ref().map(|r| r.url.as_str()))
            .finish()
    }
}

/// Builds a [`JwtAuthenticator`].
#[derive(Default)]
pub struct JwtAuthenticatorBuilder {
    rules: JwtRules,
    secret: Option<Vec<u8>>,
    jwks_document: Option<String>,
    jwks_url: Option<String>,
    jwks_min_refetch: Option<Duration>,
    jwks_timeout: Option<Duration>,
}

impl std::fmt::Debug for JwtAuthenticatorBuilder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("JwtAuthenticatorBuilder")
            .field("rules", &self.rules)
            .field("jwks_url", &self.jwks_url)
            .finish_non_exhaustive()
    }
}

impl JwtAuthenticatorBuilder {
    /// Accepts HS256/HS384/HS512 tokens signed with `secret` (its raw bytes are the key, as with
    /// `BETTER_AUTH_SECRET`).
    pub fn shared_secret(mut self, secret: &[u8]) -> Self {
        self.secret = Some(secret.to_vec());
        self
    }

    /// Trusts the public keys of a static JWKS document (`{"keys": [...]}`).
    pub fn jwks_document(mut self, json: impl Into<String>) -> Self {
        self.jwks_document = Some(json.into());
        self
    }

    /// Fetches keys from a JWKS URL (Better Auth: `<auth origin>/api/auth/jwks`): on first use,
    /// and again when a token names an unknown `kid` (key rotation), but at most once per
    /// `min_refetch` (default 10 s) so a flood of bad tokens cannot hammer the issuer. A failing
    /// endpoint keeps the cached keys and never makes a request wait longer than the fetch
    /// timeout (default 3 s).
    pub fn jwks_url(mut self, url: impl Into<String>) -> Self {
        self.jwks_url = Some(url.into());
        self
    }

    /// The floor between two JWKS fetches.
    pub fn jwks_min_refetch(mut self, d: Duration) -> Self {
        self.jwks_min_refetch = Some(d);
        self
    }

    /// The timeout of one JWKS fetch.
    pub fn jwks_timeout(mut self, d: Duration) -> Self {
        self.jwks_timeout = Some(d);
        self
    }

    /// Builds the authenticator. Fails when nothing to verify with was configured, or the JWKS
    /// document or URL is invalid.
    pub fn build(self) -> Result<JwtAuthenticator, crate::Error> {
        if self.secret.is_none() && self.jwks_document.is_none() && self.jwks_url.is_none() {
            return Err(crate::Error::Config(
                "configure a shared secret, a JWKS URL or a JWKS document".into(),
            ));
        }
        let keys = match &self.jwks_document {
            Some(doc) => KeySet::from_jwks(doc)?,
            None => KeySet::default(),
        };
        let remote = match self.jwks_url {
            Some(url) => {
                if !(url.starts_with("https://") || url.starts_with("http://")) {
                    return Err(crate::Error::Config(format!(
                        "the JWKS URL must be http(s): {url}"
                    )));
                }
                let timeout = self.jwks_timeout.unwrap_or(Duration::from_secs(3));
                let client = reqwest::Client::builder()
                    .timeout(timeout)
                    .connect_timeout(timeout)
                    .build()
                    .map_err(|e| crate::Error::Config(format!("HTTP client: {e}")))?;
                Some(RemoteJwks {
                    url,
                    client,
                    min_interval: self.jwks_min_refetch.unwrap_or(Duration::from_secs(10)),
                    last_fetch: tokio::sync::Mutex::new(None),
                })
            }
            None => None,
        };
        let validations = self.rules.validations();
        Ok(JwtAuthenticator {
            hmac: self.secret.as_deref().map(DecodingKey::from_secret),
            keys: RwLock::new(Arc::new(keys)),
            remote,
            validations,
            cache: VerifiedCache::default(),
        })
    }
}

/// The two header fields we act on.
#[derive(Deserialize)]
struct RawHeader {
    alg: String,
    #[serde(default)]
    kid: Option<String>,
}

fn read_header(token: &str) -> Result<(Algorithm, Option<String>), AuthError> {
    use base64::Engine;
    let first = token.split('.').next().unwrap_or("");
    if token.split('.').count() != 3 {
        return Err(AuthError::Malformed);
    }
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(first.trim_end_matches('='))
        .map_err(|_| AuthError::Malformed)?;
    let header: RawHeader = serde_json::from_slice(&bytes).map_err(|_| AuthError::Malformed)?;
    // `none`, and anything jsonwebtoken cannot verify, is not allowed.
    let alg = header
        .alg
        .parse::<Algorithm>()
        .map_err(|_| AuthError::AlgorithmNotAllowed)?;
    Ok((alg, header.kid))
}

impl JwtAuthenticator {
    /// Starts a builder with these validation rules.
    pub fn builder(rules: JwtRules) -> JwtAuthenticatorBuilder {
        JwtAuthenticatorBuilder {
            rules,
            ..JwtAuthenticatorBuilder::default()
        }
    }

    /// Verifies HS256/HS384/HS512 tokens signed with `secret` only.
    pub fn shared_secret(secret: &[u8], rules: &JwtRules) -> Self {
        Self {
            hmac: Some(DecodingKey::from_secret(secret)),
            keys: RwLock::new(Arc::new(KeySet::default())),
            remote: None,
            validations: rules.validations(),
            cache: VerifiedCache::default(),
        }
    }

    fn cached_key(&self, kid: Option<&str>, alg: Algorithm) -> Option<Arc<VerifyKey>> {
        let keys = match self.keys.read() {
            Ok(k) => Arc::clone(&k),
            Err(poisoned) => Arc::clone(&poisoned.into_inner()),
        };
        keys.find(kid, alg)
    }

    fn check(
        &self,
        token: &str,
        key: &DecodingKey,
        alg: Algorithm,
    ) -> Result<Principal, AuthError> {
        let validation = self
            .validations
            .get(&alg)
            .ok_or(AuthError::AlgorithmNotAllowed)?;
        let data = jsonwebtoken::decode::<Claims>(token, key, validation)
            .map_err(|e| map_jwt_error(&e))?;
        let exp = data.claims.exp;
        let principal = data.claims.into_principal()?;
        self.cache
            .remember(token, &principal, exp, validation.leeway);
        Ok(principal)
    }

    /// Verifies with the keys at hand, without any I/O (an unknown `kid` is
    /// [`AuthError::UnknownKey`]; [`Authenticator::authenticate`] also refetches the JWKS).
    pub fn verify(&self, token: &str) -> Result<Principal, AuthError> {
        self.verify_with(token, None)
    }

    fn verify_with(&self, token: &str, fresh: Option<&KeySet>) -> Result<Principal, AuthError> {
        if token.is_empty() {
            return Err(AuthError::Missing);
        }
        if let Some(principal) = self.cache.get(token) {
            return Ok(principal);
        }
        let (alg, kid) = read_header(token)?;
        if matches!(alg, Algorithm::HS256 | Algorithm::HS384 | Algorithm::HS512) {
            let key = self.hmac.as_ref().ok_or(AuthError::AlgorithmNotAllowed)?;
            return self.check(token, key, alg);
        }
        let key = match fresh {
            Some(keys) => keys.find(kid.as_deref(), alg),
            None => self.cached_key(kid.as_deref(), alg),
        }
        .ok_or(AuthError::UnknownKey)?;
        if !key.algorithms.contains(&alg) {
            return Err(AuthError::AlgorithmNotAllowed);
        }
        self.check(token, &key.key, alg)
    }

    /// Fetches the JWKS unless one was fetched less than the floor ago; returns the fresh keys.
    async fn refresh(&self) -> Option<Arc<KeySet>> {
        let remote = self.remote.as_ref()?;
        let mut last = remote.last_fetch.lock().await;
        if let Some(at) = *last
            && at.elapsed() < remote.min_interval
        {
            return None;
        }
        *last = Some(Instant::now());
        let fetched = async {
            let resp = remote
                .client
                .get(&remote.url)
                .send()
                .await?
                .error_for_status()?;
            resp.text().await
        }
        .await;
        match fetched
            .map_err(|e| e.to_string())
            .and_then(|doc| KeySet::from_jwks(&doc).map_err(|e| e.to_string()))
        {
            Ok(keys) => {
                let keys = Arc::new(keys);
                tracing::info!(
                    keys = keys.by_kid.len() + keys.without_kid.len(),
                    "JWKS refreshed"
                );
                match self.keys.write() {
                    Ok(mut k) => *k = Arc::clone(&keys),
                    Err(poisoned) => *poisoned.into_inner() = Arc::clone(&keys),
                }
                // A key may have been withdrawn: forget what it verified.
                self.cache.clear();
                Some(keys)
            }
            Err(e) => {
                tracing::warn!(error = %e, "JWKS fetch failed; keeping the cached keys");
                None
            }
        }
    }
}

#[async_trait]
impl Authenticator for JwtAuthenticator {
    #[tracing::instrument(level = "debug", skip_all)]
    async fn authenticate(&self, token: &str) -> Result<Principal, AuthError> {
        match self.verify(token) {
            Err(AuthError::UnknownKey) if self.remote.is_some() => {
                match self.refresh().await {
                    Some(fresh) => self.verify_with(token, Some(&fresh)),
                    // Fetched recently by someone else (or failed): try what is cached now.
                    None => self.verify(token),
                }
            }
            other => other,
        }
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
            exp: iat.saturating_add(self.lifetime.as_secs()),
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
    fn a_remembered_token_is_still_rejected_once_it_expires() {
        let rules = JwtRules {
            leeway: Duration::ZERO,
            ..JwtRules::default()
        };
        let auth = JwtAuthenticator::shared_secret(SECRET, &rules);
        let token = sign(
            serde_json::json!({"sub": "u", "exp": now() + 1}),
            Algorithm::HS256,
            SECRET,
        );
        assert!(auth.verify(&token).is_ok());
        assert!(auth.verify(&token).is_ok(), "served from the cache");
        std::thread::sleep(Duration::from_millis(2100));
        assert_eq!(auth.verify(&token).unwrap_err(), AuthError::Expired);
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
