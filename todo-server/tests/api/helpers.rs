use std::sync::Arc;
use std::time::Duration;

use poem::EndpointExt;
use poem::endpoint::BoxEndpoint;
use poem::test::{TestClient, TestResponse};
use serde_json::Value;
use todo_core::{StoreOptions, TokenIssuer, UserId};
use todo_server::AppState;

use crate::backends::backends;

pub const SECRET: &[u8] = b"test-secret-test-secret-test-secret!";

pub struct TestApp {
    pub name: &'static str,
    pub client: TestClient<BoxEndpoint<'static, poem::Response>>,
}

async fn build(name: &'static str, url: &str, cors: &[String]) -> TestApp {
    build_with(name, url, cors, false, StoreOptions::default()).await
}

/// The app on SQLite with Better Auth's session cookie accepted.
pub async fn app_with_cookie_auth() -> TestApp {
    build_with(
        "sqlite",
        "sqlite::memory:",
        &[],
        true,
        StoreOptions::default(),
    )
    .await
}

async fn build_with(
    name: &'static str,
    url: &str,
    cors: &[String],
    cookie_auth: bool,
    options: StoreOptions,
) -> TestApp {
    let store = todo_core::open_store(url, options).await.unwrap();
    let mut state = AppState::for_secret(store, SECRET);
    state.cookie_auth = cookie_auth;
    let state = Arc::new(state);
    let ep = todo_server::app(state, cors).map_to_response().boxed();
    TestApp {
        name,
        client: TestClient::new(ep),
    }
}

/// The app on every backend this run can reach (see [`backends`]), answering in the dialect
/// `settings` make.
pub async fn apps_in_dialect(settings: todo_server::dialect::DialectSettings) -> Vec<TestApp> {
    let dialect = Arc::new(todo_server::dialect::Dialect::new(&settings).unwrap());
    let mut out = Vec::new();
    for backend in backends() {
        let store = todo_core::open_store(&backend.url, backend.options)
            .await
            .unwrap();
        let mut state = AppState::for_secret(store, SECRET);
        state.dialect = dialect.clone();
        let ep = todo_server::app(Arc::new(state), &[])
            .map_to_response()
            .boxed();
        out.push(TestApp {
            name: backend.name,
            client: TestClient::new(ep),
        });
    }
    out
}

/// The app on every backend this run can reach: SQLite, PostgreSQL, and PostgreSQL through a
/// transaction pooler (told so; migrations on the direct URL); see [`backends`].
pub async fn apps() -> Vec<TestApp> {
    let mut out = Vec::new();
    for backend in backends() {
        out.push(build_with(backend.name, &backend.url, &[], false, backend.options).await);
    }
    out
}

/// The app on SQLite with CORS origins configured.
pub async fn app_with_cors(origins: &[&str]) -> TestApp {
    let origins: Vec<String> = origins.iter().map(|s| s.to_string()).collect();
    build("sqlite", "sqlite::memory:", &origins).await
}

/// A fresh user id (tests share the PostgreSQL database) and a valid token for it.
pub fn user() -> (String, String) {
    use rand::Rng;
    let id = format!("user-{:016x}", rand::thread_rng().r#gen::<u64>());
    let token = TokenIssuer::hs256(SECRET, None, None, Duration::from_secs(900))
        .issue(
            &UserId::parse(&id).unwrap(),
            Some("u@example.com"),
            Some("U"),
        )
        .unwrap();
    (id, token)
}

pub fn bearer(token: &str) -> String {
    format!("Bearer {token}")
}

pub async fn json(resp: TestResponse) -> Value {
    resp.0.into_body().into_json().await.unwrap()
}

pub fn header(resp: &TestResponse, name: &str) -> Option<String> {
    resp.0
        .headers()
        .get(name)
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned)
}

/// Creates a task over HTTP and returns its JSON.
pub async fn create(app: &TestApp, user: &str, token: &str, body: Value) -> Value {
    let resp = app
        .client
        .post(format!("/api/{user}/tasks"))
        .header("authorization", bearer(token))
        .body_json(&body)
        .send()
        .await;
    assert_eq!(resp.0.status(), 201, "{}", app.name);
    json(resp).await
}

/// Registers a fresh built-in account (password `correct horse`, name `Ada`): its email and the
/// registration's answer.
pub async fn register(app: &TestApp) -> (String, Value) {
    use rand::Rng;
    let email = format!("ada.{:x}@example.com", rand::thread_rng().r#gen::<u64>());
    let resp = app
        .client
        .post("/api/auth/register")
        .body_json(&serde_json::json!({"email": email, "password": "correct horse", "name": "Ada"}))
        .send()
        .await;
    assert_eq!(resp.0.status(), 201, "{}", app.name);
    (email, json(resp).await)
}

/// GETs `path` as `token`'s user: the status and the body.
pub async fn get(app: &TestApp, path: &str, token: &str) -> (u16, Value) {
    let resp = app
        .client
        .get(path)
        .header("authorization", bearer(token))
        .send()
        .await;
    let status = resp.0.status().as_u16();
    (status, json(resp).await)
}

/// Sends `body` to `path` with `method` as `token`'s user: the status and the body.
pub async fn send(
    app: &TestApp,
    method: &str,
    path: &str,
    token: &str,
    body: Value,
) -> (u16, Value) {
    let req = match method {
        "PATCH" => app.client.patch(path),
        "PUT" => app.client.put(path),
        "DELETE" => app.client.delete(path),
        _ => app.client.post(path),
    };
    let req = req.header("authorization", bearer(token));
    let resp = if body.is_null() {
        req.send().await
    } else {
        req.body_json(&body).send().await
    };
    let status = resp.0.status().as_u16();
    (status, json(resp).await)
}
