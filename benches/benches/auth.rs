//! Criterion benchmarks of bearer token verification, the CPU work every authenticated request
//! does before it reaches the store (see docs/benchmarks.md).
//!
//! `JwtAuthenticator` remembers tokens it has verified (for at most 60 s), so a client that
//! reuses its token pays the signature check once: `*/verify_cached` measures that path, and
//! `*/verify_uncached` a token the authenticator has not seen (a fresh token per iteration,
//! signed outside the timing), which is what the signature check itself costs.

use std::time::Duration;

use criterion::{BatchSize, Criterion, Throughput, criterion_group, criterion_main};
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use todo_core::{JwtAuthenticator, JwtRules, TokenIssuer, UserId};

const SECRET: &[u8] = b"a-benchmark-secret-of-at-least-32-bytes";
const OTHER_SECRET: &[u8] = b"another-secret-of-at-least-32-bytes!!!!";

/// A throwaway Ed25519 key made for this benchmark (`openssl genpkey -algorithm ed25519`); it
/// signs nothing else.
const ED25519_PRIVATE_PEM: &str = "-----BEGIN PRIVATE KEY-----
MC4CAQAwBQYDK2VwBCIEIG3CDf+NEYRZRIfXg+zpKeyj1JJthJ5sfyVEGTQnPH7/
-----END PRIVATE KEY-----
";
/// Its public key, base64url, as the JWK's `x`.
const ED25519_PUBLIC_X: &str = "KyLndWihmlynarxBw5jTMfFL4nSYu07WHtD5z20wfs8";
const ED25519_KID: &str = "bench-ed25519";

fn bench_hs256(c: &mut Criterion) {
    let lifetime = Duration::from_secs(3600);
    let issuer = TokenIssuer::hs256(SECRET, None, None, lifetime);
    let user = UserId::parse("bench-user").expect("user id");
    let token = issuer
        .issue(&user, Some("bench@example.com"), Some("Bench"))
        .expect("issue a token");
    let forged = TokenIssuer::hs256(OTHER_SECRET, None, None, lifetime)
        .issue(&user, None, None)
        .expect("issue a forged token");
    let auth = JwtAuthenticator::shared_secret(SECRET, &JwtRules::default());
    auth.verify(&token).expect("the token verifies");

    let mut group = c.benchmark_group("hs256");
    group.throughput(Throughput::Elements(1));
    group.bench_function("verify_cached", |b| {
        b.iter(|| auth.verify(std::hint::black_box(&token)).expect("verify"));
    });
    let mut n = 0u64;
    group.bench_function("verify_uncached", |b| {
        b.iter_batched(
            || {
                n += 1;
                let user = UserId::parse(&format!("bench-user-{n}")).expect("user id");
                issuer.issue(&user, None, None).expect("issue")
            },
            |fresh| auth.verify(&fresh).expect("verify"),
            BatchSize::SmallInput,
        );
    });
    group.bench_function("reject_bad_signature", |b| {
        b.iter(|| {
            auth.verify(std::hint::black_box(&forged))
                .expect_err("a forged token is rejected")
        });
    });
    group.bench_function("issue", |b| {
        b.iter(|| issuer.issue(&user, None, None).expect("issue"));
    });
    group.finish();
}

/// An EdDSA token shaped like Better Auth's JWT plugin output, for `user`.
fn eddsa_token(key: &EncodingKey, user: &str) -> String {
    let now = jsonwebtoken::get_current_timestamp();
    let claims = serde_json::json!({
        "sub": user, "id": user, "email": "bench@example.com", "name": "Bench",
        "iat": now, "exp": now + 3600,
    });
    let mut header = Header::new(Algorithm::EdDSA);
    header.kid = Some(ED25519_KID.to_owned());
    jsonwebtoken::encode(&header, &claims, key).expect("sign an EdDSA token")
}

fn bench_eddsa(c: &mut Criterion) {
    let key = EncodingKey::from_ed_pem(ED25519_PRIVATE_PEM.as_bytes()).expect("Ed25519 key");
    let jwks = serde_json::json!({"keys": [{
        "kty": "OKP", "crv": "Ed25519", "x": ED25519_PUBLIC_X, "kid": ED25519_KID, "alg": "EdDSA",
    }]})
    .to_string();
    let auth = JwtAuthenticator::builder(JwtRules::default())
        .jwks_document(jwks)
        .build()
        .expect("an authenticator with the JWKS");
    let token = eddsa_token(&key, "bench-user");
    auth.verify(&token).expect("the EdDSA token verifies");

    let mut group = c.benchmark_group("eddsa");
    group.throughput(Throughput::Elements(1));
    group.bench_function("verify_cached", |b| {
        b.iter(|| auth.verify(std::hint::black_box(&token)).expect("verify"));
    });
    let mut n = 0u64;
    group.bench_function("verify_uncached", |b| {
        b.iter_batched(
            || {
                n += 1;
                eddsa_token(&key, &format!("bench-user-{n}"))
            },
            |fresh| auth.verify(&fresh).expect("verify"),
            BatchSize::SmallInput,
        );
    });
    group.finish();
}

fn config() -> Criterion {
    Criterion::default()
        .sample_size(20)
        .warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_secs(2))
}

criterion_group! {
    name = benches;
    config = config();
    targets = bench_hs256, bench_eddsa
}
criterion_main!(benches);
