//! The JWT authenticator against real keys (Ed25519, RSA 2048, P-256) generated at test time, with
//! the JWKS served by a real local HTTP server.
#![allow(clippy::unwrap_used)]

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use jsonwebtoken::jwk::{Jwk, JwkSet};
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use poem::listener::{Acceptor, Listener, TcpListener};
use poem::{EndpointExt, Route, Server, get, handler, web::Data};
use rand::rngs::OsRng;
use serde_json::{Value, json};
use todo_core::{AuthError, Authenticator, JwtAuthenticator, JwtRules};

const ISSUER: &str = "http://localhost:3000";

struct Signer {
    key: EncodingKey,
    alg: Algorithm,
    kid: String,
    /// Ed25519 only: the raw public key (jsonwebtoken cannot derive the JWK from PKCS#8).
    ed_public: Option<[u8; 32]>,
}

impl Signer {
    fn ed25519(kid: &str) -> Self {
        use ed25519_dalek::pkcs8::EncodePrivateKey;
        let sk = ed25519_dalek::SigningKey::generate(&mut OsRng);
        let der = sk.to_pkcs8_der().unwrap();
        Self {
            key: EncodingKey::from_ed_der(der.as_bytes()),
            alg: Algorithm::EdDSA,
            kid: kid.into(),
            ed_public: Some(sk.verifying_key().to_bytes()),
        }
    }

    fn rsa(kid: &str, alg: Algorithm) -> Self {
        use rsa::pkcs1::EncodeRsaPrivateKey;
        let sk = rsa::RsaPrivateKey::new(&mut OsRng, 2048).unwrap();
        let der = sk.to_pkcs1_der().unwrap();
        Self {
            key: EncodingKey::from_rsa_der(der.as_bytes()),
            alg,
            kid: kid.into(),
            ed_public: None,
        }
    }

    fn p256(kid: &str) -> Self {
        use p256::pkcs8::EncodePrivateKey;
        let sk = p256::SecretKey::random(&mut OsRng);
        let der = sk.to_pkcs8_der().unwrap();
        Self {
            key: EncodingKey::from_ec_der(der.as_bytes()),
            alg: Algorithm::ES256,
            kid: kid.into(),
            ed_public: None,
        }
    }

    /// The public JWK, shaped like Better Auth's (no `use`).
    fn jwk(&self) -> Jwk {
        if let Some(x) = self.ed_public {
            use base64::Engine;
            let x = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(x);
            return serde_json::from_value(
                json!({"kty": "OKP", "crv": "Ed25519", "x": x, "kid": self.kid, "alg": "EdDSA"}),
            )
            .unwrap();
        }
        let mut jwk = Jwk::from_encoding_key(&self.key, self.alg).unwrap();
        jwk.common.key_id = Some(self.kid.clone());
        jwk.common.public_key_use = None;
        jwk
    }

    fn sign(&self, claims: &Value) -> String {
        let mut header = Header::new(self.alg);
        header.kid = Some(self.kid.clone());
        jsonwebtoken::encode(&header, claims, &self.key).unwrap()
    }
}

fn now() -> i64 {
    chrono::Utc::now().timestamp()
}

/// Claims exactly as Better Auth's jwt() plugin issues them.
fn better_auth_claims(user: &str) -> Value {
    json!({
        "sub": user, "id": user, "email": "ada@example.com", "name": "Ada",
        "emailVerified": true, "image": null,
        "createdAt": "2026-11-01T10:00:00.000Z", "updatedAt": "2026-11-01T10:00:00.000Z",
        "iat": now(), "exp": now() + 900, "iss": ISSUER, "aud": ISSUER,
    })
}

fn jwks(signers: &[&Signer]) -> String {
    serde_json::to_string(&JwkSet {
        keys: signers.iter().map(|s| s.jwk()).collect(),
    })
    .unwrap()
}

#[derive(Clone)]
struct JwksState {
    doc: Arc<Mutex<String>>,
    hits: Arc<AtomicUsize>,
    delay: Duration,
    fail: bool,
}

#[handler]
async fn serve_jwks(state: Data<&JwksState>) -> poem::Response {
    state.hits.fetch_add(1, Ordering::SeqCst);
    tokio::time::sleep(state.delay).await;
    if state.fail {
        return poem::Response::builder()
            .status(poem::http::StatusCode::INTERNAL_SERVER_ERROR)
            .finish();
    }
    let doc = state.doc.lock().unwrap().clone();
    poem::Response::builder()
        .content_type("application/json")
        .body(doc)
}

/// Serves a JWKS on a free local port; returns its URL and the shared state.
async fn jwks_server(doc: String, delay: Duration, fail: bool) -> (String, JwksState) {
    let state = JwksState {
        doc: Arc::new(Mutex::new(doc)),
        hits: Arc::new(AtomicUsize::new(0)),
        delay,
        fail,
    };
    let acceptor = TcpListener::bind("127.0.0.1:0")
        .into_acceptor()
        .await
        .unwrap();
    let addr = *acceptor.local_addr()[0].as_socket_addr().unwrap();
    let app = Route::new()
        .at("/api/auth/jwks", get(serve_jwks))
        .data(state.clone());
    tokio::spawn(async move { Server::new_with_acceptor(acceptor).run(app).await });
    (format!("http://{addr}/api/auth/jwks"), state)
}

fn rules() -> JwtRules {
    JwtRules {
        issuer: Some(vec![ISSUER.into()]),
        audience: Some(vec![ISSUER.into()]),
        ..JwtRules::default()
    }
}

#[tokio::test]
async fn tokens_of_every_supported_algorithm_verify_through_a_jwks_url() {
    let signers = [
        Signer::ed25519("ed-1"),
        Signer::rsa("rs-1", Algorithm::RS256),
        Signer::rsa("ps-1", Algorithm::PS256),
        Signer::p256("es-1"),
    ];
    let (url, state) = jwks_server(
        jwks(&signers.iter().collect::<Vec<_>>()),
        Duration::ZERO,
        false,
    )
    .await;
    let auth = JwtAuthenticator::builder(rules())
        .jwks_url(url)
        .build()
        .unwrap();
    for s in &signers {
        let p = auth
            .authenticate(&s.sign(&better_auth_claims("user-1")))
            .await
            .unwrap_or_else(|e| panic!("{:?}: {e}", s.alg));
        assert_eq!(p.user_id().as_str(), "user-1");
        assert_eq!(p.email(), Some("ada@example.com"));
        assert_eq!(p.name(), Some("Ada"));
    }
    assert_eq!(state.hits.load(Ordering::SeqCst), 1, "keys are cached");
}

#[tokio::test]
async fn a_rotated_key_with_a_new_kid_is_picked_up() {
    let old = Signer::ed25519("old");
    let (url, state) = jwks_server(jwks(&[&old]), Duration::ZERO, false).await;
    let auth = JwtAuthenticator::builder(rules())
        .jwks_url(url)
        .jwks_min_refetch(Duration::ZERO)
        .build()
        .unwrap();
    auth.authenticate(&old.sign(&better_auth_claims("u")))
        .await
        .unwrap();
    // The issuer restarts: a new key replaces the old one.
    let new = Signer::ed25519("new");
    *state.doc.lock().unwrap() = jwks(&[&new]);
    let p = auth
        .authenticate(&new.sign(&better_auth_claims("u2")))
        .await
        .unwrap();
    assert_eq!(p.user_id().as_str(), "u2");
    assert_eq!(
        auth.authenticate(&old.sign(&better_auth_claims("u"))).await,
        Err(AuthError::UnknownKey),
        "a key that left the JWKS is no longer trusted"
    );
}

#[tokio::test]
async fn a_flood_of_unknown_kids_fetches_the_jwks_at_most_once_per_floor() {
    let known = Signer::ed25519("known");
    let (url, state) = jwks_server(jwks(&[&known]), Duration::ZERO, false).await;
    let auth = Arc::new(
        JwtAuthenticator::builder(rules())
            .jwks_url(url)
            .jwks_min_refetch(Duration::from_secs(60))
            .build()
            .unwrap(),
    );
    let stranger = Signer::ed25519("unknown");
    let mut handles = Vec::new();
    for _ in 0..50 {
        let auth = auth.clone();
        let token = stranger.sign(&better_auth_claims("x"));
        handles.push(tokio::spawn(async move { auth.authenticate(&token).await }));
    }
    for h in handles {
        assert_eq!(h.await.unwrap(), Err(AuthError::UnknownKey));
    }
    assert_eq!(state.hits.load(Ordering::SeqCst), 1);
    // The known key still verifies from the cache.
    auth.authenticate(&known.sign(&better_auth_claims("u")))
        .await
        .unwrap();
}

#[tokio::test]
async fn a_jwks_endpoint_that_is_down_or_slow_gives_a_prompt_rejection() {
    let key = Signer::ed25519("k");
    let token = key.sign(&better_auth_claims("u"));
    // Down: nothing listens on the port.
    let free = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = free.local_addr().unwrap().port();
    drop(free);
    let down = JwtAuthenticator::builder(rules())
        .jwks_url(format!("http://127.0.0.1:{port}/jwks"))
        .jwks_timeout(Duration::from_secs(1))
        .build()
        .unwrap();
    let started = Instant::now();
    assert_eq!(down.authenticate(&token).await, Err(AuthError::UnknownKey));
    assert!(started.elapsed() < Duration::from_secs(10), "no hang");

    // Slow: answers after 30 s; the 1 s timeout wins.
    let (url, _) = jwks_server(jwks(&[&key]), Duration::from_secs(30), false).await;
    let slow = JwtAuthenticator::builder(rules())
        .jwks_url(url)
        .jwks_timeout(Duration::from_secs(1))
        .build()
        .unwrap();
    let started = Instant::now();
    assert_eq!(slow.authenticate(&token).await, Err(AuthError::UnknownKey));
    assert!(started.elapsed() < Duration::from_secs(10), "no hang");

    // Failing with 500: also a rejection, not an error page.
    let (url, _) = jwks_server(jwks(&[&key]), Duration::ZERO, true).await;
    let failing = JwtAuthenticator::builder(rules())
        .jwks_url(url)
        .build()
        .unwrap();
    assert_eq!(
        failing.authenticate(&token).await,
        Err(AuthError::UnknownKey)
    );
}

#[tokio::test]
async fn cached_keys_keep_working_when_the_endpoint_starts_failing() {
    let key = Signer::ed25519("k");
    let (url, state) = jwks_server(jwks(&[&key]), Duration::ZERO, false).await;
    let auth = JwtAuthenticator::builder(rules())
        .jwks_url(url)
        .jwks_min_refetch(Duration::ZERO)
        .build()
        .unwrap();
    auth.authenticate(&key.sign(&better_auth_claims("u")))
        .await
        .unwrap();
    *state.doc.lock().unwrap() = "not json".into();
    // An unknown kid triggers a refetch, which fails; the cached key still verifies.
    let other = Signer::ed25519("other");
    assert_eq!(
        auth.authenticate(&other.sign(&better_auth_claims("u")))
            .await,
        Err(AuthError::UnknownKey)
    );
    auth.authenticate(&key.sign(&better_auth_claims("u")))
        .await
        .unwrap();
}

fn static_auth(signers: &[&Signer], secret: Option<&[u8]>) -> JwtAuthenticator {
    let mut b = JwtAuthenticator::builder(rules()).jwks_document(jwks(signers));
    if let Some(s) = secret {
        b = b.shared_secret(s);
    }
    b.build().unwrap()
}

fn unsigned(header: Value, claims: &Value) -> String {
    use base64::Engine;
    let e = base64::engine::general_purpose::URL_SAFE_NO_PAD;
    format!(
        "{}.{}.",
        e.encode(header.to_string()),
        e.encode(claims.to_string())
    )
}

#[tokio::test]
async fn alg_none_is_rejected() {
    let ed = Signer::ed25519("ed");
    let auth = static_auth(&[&ed], Some(b"0123456789abcdef0123456789abcdef"));
    let token = unsigned(
        json!({"alg": "none", "typ": "JWT"}),
        &better_auth_claims("u"),
    );
    assert_eq!(
        auth.authenticate(&token).await,
        Err(AuthError::AlgorithmNotAllowed)
    );
}

#[tokio::test]
async fn an_hs256_token_signed_with_a_public_key_is_rejected() {
    // The classic confusion attack: HMAC "signed" with the RSA public key the JWKS publishes.
    let rs = Signer::rsa("rs", Algorithm::RS256);
    let auth = static_auth(&[&rs], None);
    let jwk_json = serde_json::to_vec(&rs.jwk()).unwrap();
    let mut header = Header::new(Algorithm::HS256);
    header.kid = Some("rs".into());
    let forged = jsonwebtoken::encode(
        &header,
        &better_auth_claims("u"),
        &EncodingKey::from_secret(&jwk_json),
    )
    .unwrap();
    assert_eq!(
        auth.authenticate(&forged).await,
        Err(AuthError::AlgorithmNotAllowed)
    );
}

#[tokio::test]
async fn an_algorithm_other_than_the_keys_own_is_rejected() {
    let ed = Signer::ed25519("ed");
    let auth = static_auth(&[&ed], None);
    // An RS256 token that names the Ed25519 key's kid.
    let rs = Signer::rsa("ed", Algorithm::RS256);
    assert_eq!(
        auth.authenticate(&rs.sign(&better_auth_claims("u"))).await,
        Err(AuthError::AlgorithmNotAllowed)
    );
}

/// Signs Better Auth claims with `patch` applied (a `null` removes the claim) and checks the
/// answer of a static-JWKS authenticator.
async fn rejection_of(patch: Value) -> Result<todo_core::Principal, AuthError> {
    let ed = Signer::ed25519("ed");
    let auth = static_auth(&[&ed], None);
    let mut c = better_auth_claims("u");
    for (k, v) in patch.as_object().unwrap() {
        if v.is_null() {
            c.as_object_mut().unwrap().remove(k);
        } else {
            c[k] = v.clone();
        }
    }
    auth.authenticate(&ed.sign(&c)).await
}

#[tokio::test]
async fn an_expired_token_is_rejected_as_expired() {
    assert_eq!(
        rejection_of(json!({"exp": now() - 3600})).await,
        Err(AuthError::Expired)
    );
}

#[tokio::test]
async fn a_token_expired_within_the_leeway_still_passes() {
    assert!(rejection_of(json!({"exp": now() - 30})).await.is_ok());
}

#[tokio::test]
async fn a_token_not_valid_yet_is_rejected_as_not_yet_valid() {
    assert_eq!(
        rejection_of(json!({"nbf": now() + 3600})).await,
        Err(AuthError::NotYetValid)
    );
}

#[tokio::test]
async fn a_wrong_issuer_is_rejected() {
    assert_eq!(
        rejection_of(json!({"iss": "http://evil"})).await,
        Err(AuthError::WrongIssuer)
    );
}

#[tokio::test]
async fn a_wrong_audience_is_rejected() {
    assert_eq!(
        rejection_of(json!({"aud": "http://evil"})).await,
        Err(AuthError::WrongAudience)
    );
}

#[tokio::test]
async fn a_token_without_a_subject_is_rejected() {
    assert_eq!(
        rejection_of(json!({"sub": null, "id": null})).await,
        Err(AuthError::NoSubject)
    );
    assert_eq!(
        rejection_of(json!({"sub": "", "id": ""})).await,
        Err(AuthError::NoSubject)
    );
}

#[tokio::test]
async fn a_token_without_exp_is_rejected() {
    assert_eq!(
        rejection_of(json!({"exp": null})).await,
        Err(AuthError::Malformed)
    );
}

#[tokio::test]
async fn a_token_from_an_unknown_key_is_rejected() {
    let ed = Signer::ed25519("ed");
    let auth = static_auth(&[&ed], None);
    let stranger = Signer::ed25519("unknown");
    assert_eq!(
        auth.authenticate(&stranger.sign(&better_auth_claims("u")))
            .await,
        Err(AuthError::UnknownKey)
    );
}

#[tokio::test]
async fn a_malformed_token_is_rejected() {
    let ed = Signer::ed25519("ed");
    let auth = static_auth(&[&ed], None);
    for token in ["a.b", "not-a-jwt", "a.b.c", "e30.e30.e30"] {
        assert_eq!(
            auth.authenticate(token).await,
            Err(AuthError::Malformed),
            "{token}"
        );
    }
}

#[tokio::test]
async fn a_signature_from_another_key_under_a_known_kid_is_rejected() {
    let ed = Signer::ed25519("ed");
    let auth = static_auth(&[&ed], None);
    let impostor = Signer {
        kid: "ed".into(),
        ..Signer::ed25519("x")
    };
    assert_eq!(
        auth.authenticate(&impostor.sign(&better_auth_claims("u")))
            .await,
        Err(AuthError::BadSignature)
    );
}

#[tokio::test]
async fn a_token_with_aud_passes_when_no_audience_is_configured() {
    let ed = Signer::ed25519("ed");
    let auth = JwtAuthenticator::builder(JwtRules::default())
        .jwks_document(jwks(&[&ed]))
        .build()
        .unwrap();
    assert!(
        auth.authenticate(&ed.sign(&better_auth_claims("u")))
            .await
            .is_ok()
    );
}
