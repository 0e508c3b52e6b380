//! Defects an attack run found in what the API already promised: preconditions and keys that
//! cannot be read, cursors the server issued and then refused, URLs built from user ids, and the
//! security headers of every answer.

use std::time::Duration;

use poem::http::HeaderValue;
use serde_json::{Value, json};
use todo_core::{TokenIssuer, UserId};

use crate::helpers::{SECRET, apps, bearer, create, header, json, user};

/// A header value with a byte that is not ASCII (valid in HTTP as obs-text, unreadable as text).
fn latin1(bytes: &[u8]) -> HeaderValue {
    HeaderValue::from_bytes(bytes).unwrap()
}

#[tokio::test]
async fn an_if_match_that_cannot_be_read_fails_closed_with_412_and_changes_nothing() {
    for app in apps().await {
        let (u, t) = user();
        let task = create(&app, &u, &t, json!({"title": "v1"})).await;
        let id = task["id"].as_i64().unwrap();
        let path = format!("/api/{u}/tasks/{id}");
        // Version 2, so "1-1"-style tags are stale.
        let resp = app
            .client
            .patch(&path)
            .header("authorization", bearer(&t))
            .body_json(&json!({"title": "v2"}))
            .send()
            .await;
        assert_eq!(resp.0.status(), 200);
        let stale = format!("\"{id}-1\"");
        for (method, value) in [
            (
                "PATCH",
                latin1(format!("{stale}, \"caf\u{e9}\"").as_bytes()),
            ),
            (
                "PATCH",
                latin1(&[stale.as_bytes(), b", \"caf\xe9\""].concat()),
            ),
            ("PUT", latin1(&[stale.as_bytes(), b" \xe9"].concat())),
            ("DELETE", latin1(&[stale.as_bytes(), b" \xe9"].concat())),
            ("COMPLETE", latin1(&[b"\"".as_slice(), b"\xff\""].concat())),
        ] {
            let req = match method {
                "PATCH" => app.client.patch(&path),
                "PUT" => app.client.put(&path),
                "DELETE" => app.client.delete(&path),
                _ => app.client.patch(format!("{path}/complete")),
            };
            let resp = req
                .header("authorization", bearer(&t))
                .header("if-match", value.clone())
                .body_json(&json!({"title": "changed"}))
                .send()
                .await;
            assert_eq!(resp.0.status(), 412, "{} {method} {value:?}", app.name);
            assert_eq!(
                header(&resp, "content-type").as_deref(),
                Some("application/problem+json")
            );
        }
        let now = json(
            app.client
                .get(&path)
                .header("authorization", bearer(&t))
                .send()
                .await,
        )
        .await;
        assert_eq!(now["title"], "v2", "{}", app.name);
        assert_eq!(now["completed"], false, "{}", app.name);
    }
}

#[tokio::test]
async fn an_idempotency_key_that_cannot_be_read_is_422_and_creates_nothing() {
    for app in apps().await {
        let (u, t) = user();
        for _ in 0..2 {
            let resp = app
                .client
                .post(format!("/api/{u}/tasks"))
                .header("authorization", bearer(&t))
                .header("idempotency-key", latin1(b"key-caf\xe9"))
                .body_json(&json!({"title": "once"}))
                .send()
                .await;
            assert_eq!(resp.0.status(), 422, "{}", app.name);
            let body = json(resp).await;
            assert_eq!(body["errors"][0]["field"], "Idempotency-Key", "{body}");
        }
        let list = json(
            app.client
                .get(format!("/api/{u}/tasks"))
                .header("authorization", bearer(&t))
                .send()
                .await,
        )
        .await;
        assert_eq!(list, json!([]), "{}", app.name);
    }
}

#[tokio::test]
async fn every_cursor_the_server_issues_is_accepted_even_for_the_longest_titles() {
    for app in apps().await {
        for title in [
            "😀".repeat(175),
            "\u{1}".repeat(200),
            "İ".repeat(200),
            "\u{1}😀İ\"\\".repeat(40),
        ] {
            let (u, t) = user();
            for _ in 0..3 {
                create(&app, &u, &t, json!({"title": title})).await;
            }
            let mut seen = 0;
            let mut url = format!("/api/{u}/tasks?sort=title&order=asc&limit=1");
            loop {
                let resp = app
                    .client
                    .get(&url)
                    .header("authorization", bearer(&t))
                    .send()
                    .await;
                assert_eq!(resp.0.status(), 200, "{} {url}", app.name);
                let next = header(&resp, "x-next-cursor");
                let page: Value = json(resp).await;
                seen += page.as_array().unwrap().len();
                let Some(cursor) = next else { break };
                url = format!("/api/{u}/tasks?sort=title&order=asc&limit=1&cursor={cursor}");
            }
            assert_eq!(seen, 3, "{}", app.name);
        }
    }
}

#[tokio::test]
async fn a_dot_segment_user_id_never_makes_a_location_that_climbs_out_of_the_api() {
    for app in apps().await {
        let token = TokenIssuer::hs256(SECRET, None, None, Duration::from_secs(900))
            .issue(&UserId::parse("..").unwrap(), None, None)
            .unwrap();
        let resp = app
            .client
            .post("/api/%2E%2E/tasks")
            .header("authorization", bearer(&token))
            .body_json(&json!({"title": "dots"}))
            .send()
            .await;
        assert_eq!(resp.0.status(), 201, "{}", app.name);
        let location = header(&resp, "location").unwrap();
        let id = json(resp).await["id"].as_i64().unwrap();
        assert_eq!(location, format!("/api/tasks/{id}"), "{}", app.name);
        let resp = app
            .client
            .get(&location)
            .header("authorization", bearer(&token))
            .send()
            .await;
        assert_eq!(resp.0.status(), 200);
    }
}

#[tokio::test]
async fn every_answer_carries_the_security_headers() {
    let app = apps().await.remove(0);
    let (u, t) = user();
    let ok = app
        .client
        .get(format!("/api/{u}/tasks"))
        .header("authorization", bearer(&t))
        .send()
        .await;
    let unauthorized = app.client.get(format!("/api/{u}/tasks")).send().await;
    let no_route = app.client.get("/nowhere").send().await;
    let contract = app.client.get("/openapi.json").send().await;
    for resp in [&ok, &unauthorized, &no_route, &contract] {
        assert_eq!(
            header(resp, "x-content-type-options").as_deref(),
            Some("nosniff")
        );
        assert_eq!(header(resp, "x-frame-options").as_deref(), Some("DENY"));
        assert_eq!(
            header(resp, "content-security-policy").as_deref(),
            Some("default-src 'none'; frame-ancestors 'none'")
        );
    }
    let docs = app.client.get("/docs").send().await;
    assert_eq!(docs.0.status(), 200);
    let csp = header(&docs, "content-security-policy").unwrap();
    assert!(csp.contains("script-src 'sha256-"), "{csp}");
    assert!(!csp.contains("'unsafe-eval'") && !csp.contains("script-src 'unsafe-inline'"));
    assert!(csp.contains("frame-ancestors 'none'"), "{csp}");
    assert_eq!(header(&docs, "x-frame-options").as_deref(), Some("DENY"));
}

#[tokio::test]
async fn answers_that_carry_a_token_are_never_cached() {
    let app = apps().await.remove(0);
    let creds = json!({"email": "cache@example.com", "password": "correct horse"});
    let registered = app
        .client
        .post("/api/auth/register")
        .body_json(&creds)
        .send()
        .await;
    assert_eq!(registered.0.status(), 201);
    assert_eq!(
        header(&registered, "cache-control").as_deref(),
        Some("no-store")
    );
    let logged_in = app
        .client
        .post("/api/auth/login")
        .body_json(&creds)
        .send()
        .await;
    assert_eq!(logged_in.0.status(), 200);
    assert_eq!(
        header(&logged_in, "cache-control").as_deref(),
        Some("no-store")
    );
}
