use serde_json::json;

use crate::helpers::{SECRET, app_with_cookie_auth, apps, bearer, json};

/// Better Auth's cookie-cache JWT: `{session, user: {id, ...}}`, no `sub`, HS256 with the secret.
fn cookie_cache_jwt(user: &str) -> String {
    let now = chrono::Utc::now().timestamp();
    let claims = json!({
        "session": {"id": "s1", "userId": user, "token": "opaque"},
        "user": {"id": user, "email": "ada@example.com", "name": "Ada"},
        "iat": now, "exp": now + 300,
    });
    jsonwebtoken::encode(
        &jsonwebtoken::Header::new(jsonwebtoken::Algorithm::HS256),
        &claims,
        &jsonwebtoken::EncodingKey::from_secret(SECRET),
    )
    .unwrap()
}

#[tokio::test]
async fn the_session_cookie_authorises_json_requests_when_enabled() {
    let app = app_with_cookie_auth().await;
    let token = cookie_cache_jwt("cookie-user");
    for name in [
        "better-auth.session_data",
        "__Secure-better-auth.session_data",
    ] {
        let cookie = format!("theme=dark; {name}={token}; other=1");
        let resp = app
            .client
            .post("/api/cookie-user/tasks")
            .header("cookie", &cookie)
            .body_json(&json!({"title": "from the browser"}))
            .send()
            .await;
        assert_eq!(resp.0.status(), 201, "{name}");
        let resp = app
            .client
            .get("/api/tasks")
            .header("cookie", &cookie)
            .send()
            .await;
        assert_eq!(resp.0.status(), 200);
    }
}

#[tokio::test]
async fn a_cookie_never_authorises_a_form_or_text_body() {
    let app = app_with_cookie_auth().await;
    let cookie = format!("better-auth.session_data={}", cookie_cache_jwt("victim"));
    for ct in [
        "application/x-www-form-urlencoded",
        "text/plain",
        "multipart/form-data; boundary=x",
    ] {
        let resp = app
            .client
            .post("/api/victim/tasks")
            .header("cookie", &cookie)
            .content_type(ct)
            .body("{\"title\": \"csrf\"}")
            .send()
            .await;
        assert_eq!(resp.0.status(), 415, "{ct}");
    }
    let resp = app
        .client
        .get("/api/victim/tasks")
        .header("cookie", &cookie)
        .send()
        .await;
    assert_eq!(json(resp).await, json!([]), "nothing was created");
}

#[tokio::test]
async fn the_cookie_is_ignored_when_disabled_and_a_bearer_header_takes_precedence() {
    let cookie = format!("better-auth.session_data={}", cookie_cache_jwt("u1"));
    for app in apps().await {
        let resp = app
            .client
            .get("/api/tasks")
            .header("cookie", &cookie)
            .send()
            .await;
        assert_eq!(resp.0.status(), 401, "cookies are off by default");
    }
    let app = app_with_cookie_auth().await;
    let resp = app
        .client
        .get("/api/tasks")
        .header("cookie", &cookie)
        .header("authorization", bearer("not-a-jwt"))
        .send()
        .await;
    assert_eq!(
        resp.0.status(),
        401,
        "a bad bearer header is not rescued by a cookie"
    );
}
