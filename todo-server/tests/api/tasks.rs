use serde_json::json;

use crate::helpers::{apps, bearer, create, header, json, user};

#[tokio::test]
async fn create_returns_201_with_location_etag_and_the_fastapi_task_shape() {
    for app in apps().await {
        let (u, t) = user();
        let resp = app
            .client
            .post(format!("/api/{u}/tasks"))
            .header("authorization", bearer(&t))
            .body_json(
                &json!({"title": "Buy milk", "description": "2L", "priority": "high",
                "due_date": "2030-01-31T17:00:00Z", "unknown_extra": 1}),
            )
            .send()
            .await;
        assert_eq!(resp.0.status(), 201, "{}", app.name);
        let location = header(&resp, "location").unwrap();
        let etag = header(&resp, "etag").unwrap();
        let body = json(resp).await;
        let id = body["id"].as_i64().unwrap();
        assert_eq!(location, format!("/api/{u}/tasks/{id}"));
        assert_eq!(etag, format!("\"{id}-1\""));
        assert_eq!(body["user_id"], u.as_str());
        assert_eq!(body["title"], "Buy milk");
        assert_eq!(body["description"], "2L");
        assert_eq!(body["completed"], false);
        assert_eq!(body["priority"], "high");
        let due = chrono::DateTime::parse_from_rfc3339(body["due_date"].as_str().unwrap()).unwrap();
        assert_eq!(due.to_utc().to_rfc3339(), "2030-01-31T17:00:00+00:00");
        for key in ["created_at", "updated_at"] {
            let v = body[key].as_str().unwrap();
            assert!(
                chrono::DateTime::parse_from_rfc3339(v).is_ok(),
                "{key}: {v}"
            );
        }
        assert!(body.get("version").is_none());
    }
}

#[tokio::test]
async fn list_returns_a_bare_array_newest_first_and_pages_with_cursor_headers() {
    for app in apps().await {
        let (u, t) = user();
        for i in 0..3 {
            create(&app, &u, &t, json!({"title": format!("t{i}")})).await;
        }
        let resp = app
            .client
            .get(format!("/api/{u}/tasks"))
            .query("limit", &2)
            .header("authorization", bearer(&t))
            .send()
            .await;
        assert_eq!(resp.0.status(), 200);
        let cursor = header(&resp, "x-next-cursor").expect("more pages");
        let link = header(&resp, "link").unwrap();
        assert!(
            link.starts_with(&format!("</api/{u}/tasks?limit=2&cursor=")),
            "{link}"
        );
        assert!(link.ends_with("rel=\"next\""));
        let first = json(resp).await;
        let titles: Vec<_> = first
            .as_array()
            .unwrap()
            .iter()
            .map(|t| t["title"].clone())
            .collect();
        assert_eq!(titles, [json!("t2"), json!("t1")], "{}", app.name);
        let resp = app
            .client
            .get(format!("/api/{u}/tasks"))
            .query("limit", &2)
            .query("cursor", &cursor)
            .header("authorization", bearer(&t))
            .send()
            .await;
        assert!(header(&resp, "x-next-cursor").is_none());
        let rest = json(resp).await;
        assert_eq!(rest.as_array().unwrap().len(), 1);
        assert_eq!(rest[0]["title"], "t0");
    }
}

#[tokio::test]
async fn the_routes_without_user_id_act_for_the_token_user() {
    for app in apps().await {
        let (u, t) = user();
        let resp = app
            .client
            .post("/api/tasks/")
            .header("authorization", bearer(&t))
            .body_json(&json!({"title": "x"}))
            .send()
            .await;
        assert_eq!(resp.0.status(), 201, "{}", app.name);
        let id = json(resp).await["id"].as_i64().unwrap();
        let resp = app
            .client
            .get(format!("/api/{u}/tasks/{id}"))
            .header("authorization", bearer(&t))
            .send()
            .await;
        assert_eq!(resp.0.status(), 200);
        let resp = app
            .client
            .get("/api/tasks")
            .header("authorization", bearer(&t))
            .send()
            .await;
        assert_eq!(json(resp).await.as_array().unwrap().len(), 1);
    }
}

#[tokio::test]
async fn put_patch_complete_and_delete_work_with_if_match() {
    for app in apps().await {
        let (u, t) = user();
        let task = create(&app, &u, &t, json!({"title": "a", "description": "d"})).await;
        let id = task["id"].as_i64().unwrap();
        let url = format!("/api/{u}/tasks/{id}");
        let auth = bearer(&t);

        let resp = app
            .client
            .put(&url)
            .header("authorization", &auth)
            .header("if-match", format!("\"{id}-1\""))
            .body_json(&json!({"title": "b"}))
            .send()
            .await;
        assert_eq!(resp.0.status(), 200, "{}", app.name);
        assert_eq!(header(&resp, "etag").unwrap(), format!("\"{id}-2\""));
        let body = json(resp).await;
        assert_eq!(body["title"], "b");
        assert_eq!(
            body["description"], "d",
            "PUT leaves absent fields unchanged"
        );

        let stale = app
            .client
            .patch(&url)
            .header("authorization", &auth)
            .header("if-match", format!("\"{id}-1\""))
            .body_json(&json!({"description": null}))
            .send()
            .await;
        assert_eq!(stale.0.status(), 412);

        let resp = app
            .client
            .patch(&url)
            .header("authorization", &auth)
            .body_json(&json!({"description": null}))
            .send()
            .await;
        assert_eq!(json(resp).await["description"], serde_json::Value::Null);

        let resp = app
            .client
            .patch(format!("{url}/complete"))
            .header("authorization", &auth)
            .send()
            .await;
        assert_eq!(resp.0.status(), 200);
        assert_eq!(json(resp).await["completed"], true);
        let resp = app
            .client
            .patch(format!("{url}/complete"))
            .header("authorization", &auth)
            .body_json(&json!({"completed": true}))
            .send()
            .await;
        assert_eq!(
            json(resp).await["completed"],
            true,
            "a body sets instead of toggling"
        );

        let resp = app
            .client
            .delete(&url)
            .header("authorization", &auth)
            .send()
            .await;
        assert_eq!(resp.0.status(), 200);
        let body = json(resp).await;
        assert_eq!(body["id"], id);
        assert!(body["message"].is_string());
        let resp = app
            .client
            .get(&url)
            .header("authorization", &auth)
            .send()
            .await;
        assert_eq!(resp.0.status(), 404);
    }
}

#[tokio::test]
async fn an_idempotent_retry_returns_the_same_task_and_a_different_body_is_422() {
    for app in apps().await {
        let (u, t) = user();
        let send = |title: &'static str| {
            app.client
                .post(format!("/api/{u}/tasks"))
                .header("authorization", bearer(&t))
                .header("idempotency-key", "abc-123")
                .body_json(&json!({"title": title}))
                .send()
        };
        let first = send("once").await;
        assert_eq!(first.0.status(), 201);
        let first = json(first).await;
        let again = send("once").await;
        assert_eq!(again.0.status(), 200, "{}", app.name);
        assert_eq!(json(again).await["id"], first["id"]);
        let other = send("different").await;
        assert_eq!(other.0.status(), 422);
        assert_eq!(json(other).await["errors"][0]["field"], "Idempotency-Key");
        let bad_key = app
            .client
            .post(format!("/api/{u}/tasks"))
            .header("authorization", bearer(&t))
            .header("idempotency-key", "has space")
            .body_json(&json!({"title": "x"}))
            .send()
            .await;
        assert_eq!(bad_key.0.status(), 422);
        assert_eq!(json(bad_key).await["errors"][0]["field"], "Idempotency-Key");
    }
}

#[tokio::test]
async fn built_in_accounts_register_and_log_in_with_tokens_that_work_on_the_task_routes() {
    for app in apps().await {
        let (email, reg) = crate::helpers::register(&app).await;
        assert_eq!(reg["token_type"], "Bearer");
        assert!(reg["expires_in"].as_u64().unwrap() > 0);
        assert_eq!(reg["user"]["email"], email.as_str());
        let id = reg["user"]["id"].as_str().unwrap().to_owned();

        let dup = app
            .client
            .post("/api/auth/register")
            .body_json(&json!({"email": email.to_uppercase(), "password": "another one"}))
            .send()
            .await;
        assert_eq!(dup.0.status(), 409);

        let resp = app
            .client
            .post("/api/auth/login")
            .body_json(&json!({"email": email, "password": "correct horse"}))
            .send()
            .await;
        assert_eq!(resp.0.status(), 200);
        let token = json(resp).await["token"].as_str().unwrap().to_owned();
        create(&app, &id, &token, json!({"title": "mine"})).await;

        let wrong = app
            .client
            .post("/api/auth/login")
            .body_json(&json!({"email": email, "password": "wrong horse"}))
            .send()
            .await;
        assert_eq!(wrong.0.status(), 401);
        let wrong = json(wrong).await;
        let unknown = app
            .client
            .post("/api/auth/login")
            .body_json(&json!({"email": "nobody@example.com", "password": "wrong horse"}))
            .send()
            .await;
        assert_eq!(unknown.0.status(), 401);
        assert_eq!(json(unknown).await, wrong, "the same answer");

        let bad = app
            .client
            .post("/api/auth/register")
            .body_json(&json!({"email": "nope", "password": 5}))
            .send()
            .await;
        assert_eq!(bad.0.status(), 422);
    }
}

#[tokio::test]
async fn fastapi_style_signup_access_token_and_me_work() {
    use rand::Rng;
    for app in apps().await {
        let email = format!("grace.{:x}@example.com", rand::thread_rng().r#gen::<u64>());
        let resp = app
            .client
            .post("/api/auth/signup")
            .body_json(
                &json!({"email": email, "password": "correct horse", "full_name": "Grace H"}),
            )
            .send()
            .await;
        assert_eq!(resp.0.status(), 201, "{}", app.name);
        let signed = json(resp).await;
        assert_eq!(signed["user"]["name"], "Grace H", "{}", app.name);
        assert_eq!(signed["access_token"], signed["token"], "{}", app.name);
        let token = signed["access_token"].as_str().unwrap().to_owned();
        let id = signed["user"]["id"].as_str().unwrap().to_owned();

        let resp = app
            .client
            .post("/api/auth/login")
            .body_json(&json!({"email": email, "password": "correct horse"}))
            .send()
            .await;
        assert_eq!(resp.0.status(), 200);
        let logged = json(resp).await;
        assert_eq!(logged["access_token"], logged["token"]);

        let resp = app
            .client
            .get("/api/auth/me")
            .header("authorization", bearer(&token))
            .send()
            .await;
        assert_eq!(resp.0.status(), 200, "{}", app.name);
        assert_eq!(
            json(resp).await,
            json!({"id": id, "email": email, "name": "Grace H"}),
            "{}",
            app.name
        );
        // Any accepted token: the test tokens carry an email and a name too.
        let (u, t) = user();
        let resp = app
            .client
            .get("/api/auth/me")
            .header("authorization", bearer(&t))
            .send()
            .await;
        assert_eq!(
            json(resp).await,
            json!({"id": u, "email": "u@example.com", "name": "U"})
        );
        let resp = app.client.get("/api/auth/me").send().await;
        assert_eq!(resp.0.status(), 401);
        // `name` wins over `full_name`; a bad `full_name` is a 422 naming it.
        let other = format!("x.{:x}@example.com", rand::thread_rng().r#gen::<u64>());
        let resp = app
            .client
            .post("/api/auth/register")
            .body_json(&json!({"email": other, "password": "correct horse", "full_name": "F", "name": "N"}))
            .send()
            .await;
        assert_eq!(json(resp).await["user"]["name"], "N");
        let resp = app
            .client
            .post("/api/auth/signup")
            .body_json(
                &json!({"email": "y@example.com", "password": "correct horse", "full_name": 5}),
            )
            .send()
            .await;
        assert_eq!(resp.0.status(), 422);
        assert_eq!(json(resp).await["errors"][0]["field"], "full_name");
    }
}
