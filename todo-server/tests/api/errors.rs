use serde_json::{Value, json};

use crate::helpers::{app_with_cors, apps, bearer, create, header, json, user};

fn assert_problem(body: &Value, status: u16) {
    assert_eq!(body["status"], status, "{body}");
    assert!(body["type"].is_string());
    assert!(body["title"].is_string());
    assert!(body["detail"].is_string(), "{body}");
}

#[tokio::test]
async fn missing_or_bad_tokens_are_401_problems_with_a_bearer_challenge() {
    for app in apps().await {
        let (u, _) = user();
        for auth in [None, Some("Bearer nope"), Some("Basic abc")] {
            let mut req = app.client.get(format!("/api/{u}/tasks"));
            if let Some(a) = auth {
                req = req.header("authorization", a);
            }
            let resp = req.send().await;
            assert_eq!(resp.0.status(), 401, "{auth:?}");
            assert!(
                header(&resp, "www-authenticate")
                    .unwrap()
                    .starts_with("Bearer")
            );
            assert_eq!(
                header(&resp, "content-type").unwrap(),
                "application/problem+json"
            );
            assert_problem(&json(resp).await, 401);
        }
    }
}

#[tokio::test]
async fn another_users_path_is_403_and_another_users_task_is_404() {
    for app in apps().await {
        let (alice, at) = user();
        let (_bob, bt) = user();
        let task = create(&app, &alice, &at, json!({"title": "secret"})).await;
        let id = task["id"].as_i64().unwrap();
        let resp = app
            .client
            .get(format!("/api/{alice}/tasks"))
            .header("authorization", bearer(&bt))
            .send()
            .await;
        assert_eq!(resp.0.status(), 403, "{}", app.name);
        let resp = app
            .client
            .get(format!("/api/tasks/{id}"))
            .header("authorization", bearer(&bt))
            .send()
            .await;
        assert_eq!(resp.0.status(), 404);
        assert_problem(&json(resp).await, 404);
        let resp = app
            .client
            .delete(format!("/api/tasks/{id}"))
            .header("authorization", bearer(&bt))
            .send()
            .await;
        assert_eq!(resp.0.status(), 404);
    }
}

#[tokio::test]
async fn bad_bodies_get_400_415_413_or_422_naming_the_fields() {
    for app in apps().await {
        let (u, t) = user();
        let url = format!("/api/{u}/tasks");
        let auth = bearer(&t);
        let resp = app
            .client
            .post(&url)
            .header("authorization", &auth)
            .content_type("application/json")
            .body("{\"title\": ")
            .send()
            .await;
        assert_eq!(resp.0.status(), 400, "{}", app.name);
        assert_problem(&json(resp).await, 400);

        let resp = app
            .client
            .post(&url)
            .header("authorization", &auth)
            .content_type("text/plain")
            .body("title=x")
            .send()
            .await;
        assert_eq!(resp.0.status(), 415);

        let big = json!({"title": "x", "description": "y".repeat(1_100_000)});
        let resp = app
            .client
            .post(&url)
            .header("authorization", &auth)
            .body_json(&big)
            .send()
            .await;
        assert_eq!(resp.0.status(), 413);

        let resp = app
            .client
            .post(&url)
            .header("authorization", &auth)
            .body_json(&json!({"title": "  ", "priority": "urgent", "description": 5}))
            .send()
            .await;
        assert_eq!(resp.0.status(), 422);
        let body = json(resp).await;
        assert_problem(&body, 422);
        let fields: Vec<&str> = body["errors"]
            .as_array()
            .unwrap()
            .iter()
            .map(|e| e["field"].as_str().unwrap())
            .collect();
        assert_eq!(fields, ["title", "description", "priority"]);

        for query in [
            "limit=0",
            "limit=abc",
            "status=finished",
            "sort=size",
            "cursor=zzz",
        ] {
            let resp = app
                .client
                .get(format!("{url}?{query}"))
                .header("authorization", &auth)
                .send()
                .await;
            assert_eq!(resp.0.status(), 422, "{query}");
        }
        // Nothing was created by any of the rejected requests.
        let resp = app
            .client
            .get(&url)
            .header("authorization", &auth)
            .send()
            .await;
        assert_eq!(json(resp).await, json!([]));
    }
}

#[tokio::test]
async fn health_readiness_contract_and_docs_are_served() {
    for app in apps().await {
        for path in ["/healthz", "/health", "/readyz"] {
            let resp = app.client.get(path).send().await;
            assert_eq!(resp.0.status(), 200, "{path}");
        }
        let resp = app.client.get("/openapi.json").send().await;
        assert_eq!(resp.0.status(), 200);
        let spec = json(resp).await;
        assert!(spec["paths"]["/{user_id}/tasks"]["get"].is_object());
        let resp = app.client.get("/docs").send().await;
        assert_eq!(resp.0.status(), 200);
    }
}

#[tokio::test]
async fn cors_echoes_allowed_origins_with_credentials_and_answers_preflights_without_auth() {
    let app = app_with_cors(&["http://localhost:3000"]).await;
    let resp = app
        .client
        .request(poem::http::Method::OPTIONS, "/api/tasks")
        .header("origin", "http://localhost:3000")
        .header("access-control-request-method", "POST")
        .header(
            "access-control-request-headers",
            "authorization, content-type",
        )
        .send()
        .await;
    assert_eq!(resp.0.status(), 200);
    assert_eq!(
        header(&resp, "access-control-allow-origin").as_deref(),
        Some("http://localhost:3000")
    );
    assert_eq!(
        header(&resp, "access-control-allow-credentials").as_deref(),
        Some("true")
    );
    let (u, t) = user();
    let resp = app
        .client
        .get(format!("/api/{u}/tasks"))
        .header("origin", "http://localhost:3000")
        .header("authorization", bearer(&t))
        .send()
        .await;
    assert_eq!(resp.0.status(), 200);
    let exposed = header(&resp, "access-control-expose-headers")
        .unwrap()
        .to_lowercase();
    for h in ["etag", "location", "x-next-cursor", "link"] {
        assert!(exposed.contains(h), "{exposed}");
    }
    assert_ne!(
        header(&resp, "access-control-allow-origin").as_deref(),
        Some("*")
    );
    let resp = app
        .client
        .get(format!("/api/{u}/tasks"))
        .header("origin", "https://evil.example")
        .header("authorization", bearer(&t))
        .send()
        .await;
    assert!(header(&resp, "access-control-allow-origin").is_none());
}

#[tokio::test]
async fn an_unavailable_database_is_a_prompt_503_and_readyz_says_so() {
    use std::sync::Arc;
    use todo_core::StoreOptions;
    let opened = todo_core::open_store("sqlite::memory:", StoreOptions::default())
        .await
        .unwrap();
    let store = opened.tasks.clone();
    let state = Arc::new(todo_server::AppState::for_secret(
        opened,
        crate::helpers::SECRET,
    ));
    let client = poem::test::TestClient::new(todo_server::app(state, &[]));
    // The pool is gone: every query fails to get a connection.
    store.close().await;
    let (u, t) = user();
    let resp = client
        .get(format!("/api/{u}/tasks"))
        .header("authorization", bearer(&t))
        .send()
        .await;
    assert_eq!(resp.0.status(), 503);
    assert!(header(&resp, "retry-after").is_some());
    let body = json(resp).await;
    assert_problem(&body, 503);
    assert!(
        !body["detail"].as_str().unwrap().contains("pool"),
        "no database text"
    );
    let resp = client.get("/readyz").send().await;
    assert_eq!(resp.0.status(), 503);
    assert!(
        header(&resp, "retry-after").is_some(),
        "{:?}",
        resp.0.headers()
    );
    let resp = client.get("/healthz").send().await;
    assert_eq!(resp.0.status(), 200, "the process is still up");
}

#[tokio::test]
async fn a_method_a_path_does_not_answer_is_405_with_an_allow_header() {
    for app in apps().await {
        let (u, t) = user();
        let task = create(&app, &u, &t, json!({"title": "x"})).await;
        let id = task["id"].as_i64().unwrap();
        let cases = [
            (format!("/api/{u}/tasks"), "GET, POST"),
            (format!("/api/{u}/tasks/"), "GET, POST"),
            ("/api/tasks".to_owned(), "GET, POST"),
            (format!("/api/{u}/tasks/{id}/complete"), "PATCH"),
            ("/healthz".to_owned(), "GET"),
        ];
        for (path, allow) in cases {
            let resp = app
                .client
                .delete(&path)
                .header("authorization", bearer(&t))
                .send()
                .await;
            assert_eq!(resp.0.status(), 405, "{path}");
            assert_eq!(header(&resp, "allow").as_deref(), Some(allow), "{path}");
            assert_problem(&json(resp).await, 405);
        }
        let resp = app
            .client
            .post(format!("/api/{u}/tasks/{id}"))
            .header("authorization", bearer(&t))
            .send()
            .await;
        assert_eq!(resp.0.status(), 405);
        assert_eq!(
            header(&resp, "allow").as_deref(),
            Some("GET, PUT, PATCH, DELETE")
        );
    }
}

#[tokio::test]
async fn cors_preflights_from_allowed_origins_echo_the_headers_they_ask_for() {
    let app = app_with_cors(&["http://localhost:3000"]).await;
    let asked = "authorization, content-type, cache-control, x-requested-with";
    let resp = app
        .client
        .request(poem::http::Method::OPTIONS, "/api/tasks")
        .header("origin", "http://localhost:3000")
        .header("access-control-request-method", "POST")
        .header("access-control-request-headers", asked)
        .send()
        .await;
    assert_eq!(resp.0.status(), 200);
    let allowed = header(&resp, "access-control-allow-headers")
        .unwrap()
        .to_ascii_lowercase();
    for h in [
        "authorization",
        "content-type",
        "cache-control",
        "x-requested-with",
    ] {
        assert!(allowed.contains(h), "{allowed}");
    }
    // Another origin gets no CORS grant at all.
    let resp = app
        .client
        .request(poem::http::Method::OPTIONS, "/api/tasks")
        .header("origin", "https://evil.example")
        .header("access-control-request-method", "POST")
        .header("access-control-request-headers", asked)
        .send()
        .await;
    assert!(header(&resp, "access-control-allow-headers").is_none());
    assert!(header(&resp, "access-control-allow-origin").is_none());
}
