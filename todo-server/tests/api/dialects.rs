//! Dialects: every placeholder and setting, with the bodies compared exactly, on every backend;
//! and for each setting, the answers checked against the contract the server then publishes.

use serde_json::{Map, Value, json};
use todo_server::dialect::{DialectSettings, DueDateFormat, EnumCase, JsonCase};

use crate::helpers::{TestApp, apps, apps_in_dialect, bearer, header, json, user};

/// Sends `body` (none when null) to `path` as `token`'s user: status, content type and body.
async fn call(
    app: &TestApp,
    method: &str,
    path: &str,
    token: Option<&str>,
    body: Value,
) -> (u16, String, Value) {
    let req = match method.to_ascii_uppercase().as_str() {
        "PATCH" => app.client.patch(path),
        "PUT" => app.client.put(path),
        "DELETE" => app.client.delete(path),
        "POST" => app.client.post(path),
        _ => app.client.get(path),
    };
    let req = match token {
        Some(t) => req.header("authorization", bearer(t)),
        None => req,
    };
    let resp = if body.is_null() {
        req.send().await
    } else {
        req.body_json(&body).send().await
    };
    let status = resp.0.status().as_u16();
    let content_type = header(&resp, "content-type").unwrap_or_default();
    (status, content_type, json(resp).await)
}

/// A task in the default dialect, with the same id, as `app` now answers it.
async fn task(app: &TestApp, user: &str, token: &str, id: &Value) -> Value {
    call(
        app,
        "GET",
        &format!("/api/{user}/tasks/{id}"),
        Some(token),
        Value::Null,
    )
    .await
    .2
}

const LIST_ALL: &str = r#"{"items": "$tasks", "total": "$total", "completed_count": "$completed_count",
    "pending_count": "$pending_count", "skip": "$skip", "limit": "$limit", "has_more": "$has_more",
    "next_cursor": "$next_cursor", "api": {"version": 1, "ok": true}}"#;

#[tokio::test]
async fn a_list_envelope_fills_every_placeholder_and_counts_what_the_filters_match() {
    let settings = DialectSettings {
        list_envelope: Some(LIST_ALL.to_owned()),
        ..DialectSettings::default()
    };
    for app in apps_in_dialect(settings).await {
        let (u, t) = user();
        let mut made = Vec::new();
        for title in ["a", "b", "c"] {
            let (status, _, body) = call(
                &app,
                "POST",
                &format!("/api/{u}/tasks"),
                Some(&t),
                json!({"title": title}),
            )
            .await;
            assert_eq!(status, 201, "{}", app.name);
            made.push(body);
        }
        call(
            &app,
            "PATCH",
            &format!("/api/{u}/tasks/{}/complete", made[0]["id"]),
            Some(&t),
            Value::Null,
        )
        .await;
        let a = task(&app, &u, &t, &made[0]["id"]).await;
        let resp = app
            .client
            .get(format!("/api/{u}/tasks?sort=title&order=asc&limit=2"))
            .header("authorization", bearer(&t))
            .send()
            .await;
        let cursor = header(&resp, "x-next-cursor").unwrap();
        assert_eq!(
            json(resp).await,
            json!({"items": [a, made[1]], "total": 3, "completed_count": 1, "pending_count": 2,
                   "skip": 0, "limit": 2, "has_more": true, "next_cursor": cursor,
                   "api": {"version": 1, "ok": true}}),
            "{}",
            app.name
        );
        // The counts follow the filters, not the page; the last page has no more.
        let (_, _, pending) = call(
            &app,
            "GET",
            "/api/tasks?status=pending&sort=title&order=asc&skip=1&limit=5",
            Some(&t),
            Value::Null,
        )
        .await;
        assert_eq!(
            pending,
            json!({"items": [made[2]], "total": 2, "completed_count": 0, "pending_count": 2,
                   "skip": 1, "limit": 5, "has_more": false, "next_cursor": null,
                   "api": {"version": 1, "ok": true}}),
            "{}",
            app.name
        );
    }
}

#[tokio::test]
async fn a_task_envelope_wraps_every_single_task_answer_and_nothing_else() {
    let settings = DialectSettings {
        task_envelope: Some(r#"{"task": "$task", "data": ["ok"]}"#.to_owned()),
        list_envelope: Some(r#"{"data": {"tasks": "$tasks"}}"#.to_owned()),
        ..DialectSettings::default()
    };
    for app in apps_in_dialect(settings).await {
        let (u, t) = user();
        let base = format!("/api/{u}/tasks");
        let (status, _, created) = call(&app, "POST", &base, Some(&t), json!({"title": "x"})).await;
        assert_eq!(status, 201, "{}", app.name);
        let inner = created["task"].clone();
        assert_eq!(
            created,
            json!({"task": inner, "data": ["ok"]}),
            "{}",
            app.name
        );
        let one = format!("{base}/{}", inner["id"]);
        let (_, _, got) = call(&app, "GET", &one, Some(&t), Value::Null).await;
        assert_eq!(got, created, "{}", app.name);
        for (method, path, body) in [
            ("PATCH", one.clone(), json!({"title": "y"})),
            (
                "PUT",
                one.clone(),
                json!({"title": "z", "completed": false}),
            ),
            ("PATCH", format!("{one}/complete"), Value::Null),
        ] {
            let (status, _, answer) = call(&app, method, &path, Some(&t), body).await;
            assert_eq!(status, 200, "{} {method} {path}", app.name);
            assert_eq!(answer["data"], json!(["ok"]), "{}", app.name);
            assert_eq!(answer["task"]["id"], inner["id"], "{}", app.name);
        }
        let (_, _, listed) = call(&app, "GET", &base, Some(&t), Value::Null).await;
        let (_, _, now) = call(&app, "GET", &one, Some(&t), Value::Null).await;
        assert_eq!(
            listed,
            json!({"data": {"tasks": [now["task"]]}}),
            "{}",
            app.name
        );
        let (status, _, deleted) = call(&app, "DELETE", &one, Some(&t), Value::Null).await;
        assert_eq!(
            (status, &deleted["id"]),
            (200, &inner["id"]),
            "{}",
            app.name
        );
    }
}

#[tokio::test]
async fn an_error_envelope_answers_every_error_as_json_in_the_template() {
    let template = r#"{"error": {"code": "$code", "message": "$detail", "status": "$status",
        "title": "$title", "fields": "$errors"}}"#;
    let settings = DialectSettings {
        error_envelope: Some(template.to_owned()),
        ..DialectSettings::default()
    };
    let plain = apps().await;
    for (app, plain) in apps_in_dialect(settings).await.iter().zip(&plain) {
        let (u, t) = user();
        let cases: Vec<(&str, String, Option<&str>, Value, &str)> = vec![
            (
                "GET",
                format!("/api/{u}/tasks/424242"),
                Some(&t),
                Value::Null,
                "not_found",
            ),
            (
                "POST",
                format!("/api/{u}/tasks"),
                Some(&t),
                json!({"title": ""}),
                "validation_error",
            ),
            (
                "GET",
                format!("/api/{u}/tasks?limit=0"),
                Some(&t),
                Value::Null,
                "validation_error",
            ),
            (
                "GET",
                format!("/api/{u}/tasks"),
                None,
                Value::Null,
                "unauthorized",
            ),
            (
                "GET",
                "/api/someone-else/tasks".to_owned(),
                Some(&t),
                Value::Null,
                "forbidden",
            ),
            (
                "GET",
                "/api/no/such/route/here".to_owned(),
                Some(&t),
                Value::Null,
                "not_found",
            ),
        ];
        for (method, path, token, body, code) in cases {
            let (status, content_type, answer) =
                call(app, method, &path, token, body.clone()).await;
            let (plain_status, plain_type, problem) = call(plain, method, &path, token, body).await;
            assert_eq!(status, plain_status, "{} {path}", app.name);
            assert!(
                plain_type.starts_with("application/problem+json"),
                "{plain_type}"
            );
            assert_eq!(content_type, "application/json", "{} {path}", app.name);
            assert_eq!(
                answer,
                json!({"error": {"code": code, "message": problem["detail"], "status": status,
                                 "title": problem["title"],
                                 "fields": problem.get("errors").cloned().unwrap_or(json!([]))}}),
                "{} {path}",
                app.name
            );
        }
        // Headers an error carries are kept.
        let resp = app.client.get(format!("/api/{u}/tasks")).send().await;
        assert!(header(&resp, "www-authenticate").is_some());
        // Successes are untouched.
        let (status, _, list) = call(
            app,
            "GET",
            &format!("/api/{u}/tasks"),
            Some(&t),
            Value::Null,
        )
        .await;
        assert_eq!((status, list), (200, json!([])), "{}", app.name);
    }
}

#[tokio::test]
async fn under_an_error_envelope_a_405_has_its_own_code() {
    let settings = DialectSettings {
        error_envelope: Some(r#"{"code": "$code", "status": "$status"}"#.to_owned()),
        ..DialectSettings::default()
    };
    for app in apps_in_dialect(settings).await {
        let (u, t) = user();
        let (status, content_type, answer) = call(
            &app,
            "DELETE",
            &format!("/api/{u}/tasks"),
            Some(&t),
            Value::Null,
        )
        .await;
        assert_eq!(status, 405, "{}", app.name);
        assert_eq!(content_type, "application/json", "{}", app.name);
        assert_eq!(
            answer,
            json!({"code": "method_not_allowed", "status": 405}),
            "{}",
            app.name
        );
    }
}

/// `v` with every object key in camelCase.
fn camel(v: &Value) -> Value {
    match v {
        Value::Object(m) => Value::Object(
            m.iter()
                .map(|(k, v)| (todo_server::dialect::camel(k), camel(v)))
                .collect::<Map<String, Value>>(),
        ),
        Value::Array(items) => Value::Array(items.iter().map(camel).collect()),
        other => other.clone(),
    }
}

#[tokio::test]
async fn camel_case_keys_every_answer_and_requests_are_read_either_way() {
    let settings = DialectSettings {
        json_case: JsonCase::Camel,
        ..DialectSettings::default()
    };
    let plain = apps().await;
    for (app, plain) in apps_in_dialect(settings).await.iter().zip(&plain) {
        let (u, t) = user();
        let body = json!({"title": "x", "due_date": "2031-02-03T04:05:06Z", "tags": ["a"],
                          "remindAt": "2031-02-03T03:00:00Z"});
        let (_, _, created) = call(app, "POST", &format!("/api/{u}/tasks"), Some(&t), body).await;
        let id = &created["id"];
        let (_, _, got) = call(
            app,
            "GET",
            &format!("/api/{u}/tasks/{id}"),
            Some(&t),
            Value::Null,
        )
        .await;
        assert_eq!(got, created, "{}", app.name);
        assert_eq!(got["dueDate"], "2031-02-03T04:05:06Z", "{}", app.name);
        assert_eq!(got["remindAt"], "2031-02-03T03:00:00Z", "{}", app.name);
        let keys: Vec<&str> = got
            .as_object()
            .unwrap()
            .keys()
            .map(String::as_str)
            .collect();
        for k in [
            "userId",
            "createdAt",
            "updatedAt",
            "completedAt",
            "dueDate",
            "remindAt",
        ] {
            assert!(keys.contains(&k), "{}: {k} in {keys:?}", app.name);
        }
        assert!(
            !keys.iter().any(|k| k.contains('_')),
            "{}: {keys:?}",
            app.name
        );
        for path in [format!("/api/{u}/stats"), "/api/tags".to_owned()] {
            let (status, _, answer) = call(app, "GET", &path, Some(&t), Value::Null).await;
            let (_, _, theirs) = call(plain, "GET", &path, Some(&t), Value::Null).await;
            assert_eq!(status, 200);
            // The plain app has no tasks for this user: compare shapes on an empty user.
            if path.ends_with("stats") {
                assert!(answer["byPriority"].is_object(), "{}: {answer}", app.name);
                assert_eq!(camel(&theirs).as_object().unwrap().keys().count(), 5);
            } else {
                assert_eq!(answer, json!([{"name": "a", "count": 1}]), "{}", app.name);
            }
        }
        // Token answers and errors follow too (problem keys are single words already).
        let email = format!("{u}@example.com");
        let (status, _, token) = call(
            app,
            "POST",
            "/api/auth/register",
            None,
            json!({"email": email, "password": "correct horse"}),
        )
        .await;
        assert_eq!(status, 201, "{}", app.name);
        assert!(
            token["accessToken"].is_string() && token["tokenType"] == "Bearer",
            "{token}"
        );
        assert!(token.get("access_token").is_none(), "{token}");
        let (status, _, problem) = call(
            app,
            "POST",
            &format!("/api/{u}/tasks"),
            Some(&t),
            json!({"title": ""}),
        )
        .await;
        assert_eq!(status, 422);
        assert_eq!(problem["errors"][0]["field"], "title", "{}", app.name);
    }
}

#[tokio::test]
async fn enum_case_and_date_only_due_dates_shape_answers_and_any_case_is_read() {
    for (enums, high, pending, completed) in [
        (EnumCase::Capitalized, "High", "Pending", "Completed"),
        (EnumCase::Upper, "HIGH", "PENDING", "COMPLETED"),
    ] {
        let settings = DialectSettings {
            enum_case: enums,
            due_date_format: DueDateFormat::Date,
            ..DialectSettings::default()
        };
        for app in apps_in_dialect(settings).await {
            let (u, t) = user();
            let (status, _, made) = call(
                &app,
                "POST",
                &format!("/api/{u}/tasks"),
                Some(&t),
                json!({"title": "x", "priority": high, "due_date": "2030-05-06T22:30:00Z",
                       "remind_at": "2030-05-06T20:00:00Z"}),
            )
            .await;
            assert_eq!(status, 201, "{}: {made}", app.name);
            assert_eq!(
                (
                    &made["priority"],
                    &made["status"],
                    &made["due_date"],
                    &made["remind_at"]
                ),
                (
                    &json!(high),
                    &json!(pending),
                    &json!("2030-05-06"),
                    &json!("2030-05-06T20:00:00Z")
                ),
                "{}",
                app.name
            );
            // What the answer says can be sent back as it is.
            let one = format!("/api/{u}/tasks/{}", made["id"]);
            let (status, _, back) = call(
                &app,
                "PUT",
                &one,
                Some(&t),
                json!({"title": "x", "priority": made["priority"], "due_date": made["due_date"],
                       "status": completed}),
            )
            .await;
            assert_eq!(status, 200, "{}: {back}", app.name);
            assert_eq!(
                (&back["status"], &back["completed"], &back["due_date"]),
                (&json!(completed), &json!(true), &json!("2030-05-06")),
                "{}",
                app.name
            );
            let (_, _, list) = call(
                &app,
                "GET",
                &format!("/api/{u}/tasks?priority={high}"),
                Some(&t),
                Value::Null,
            )
            .await;
            assert_eq!(list[0]["priority"], high, "{}", app.name);
        }
    }
}

/// Checks `value` against `schema` (the subset of OpenAPI 3.0 the server's contract uses),
/// resolving references in `doc`; each mismatch is pushed to `errors` with its path.
fn check(doc: &Value, schema: &Value, value: &Value, at: &str, errors: &mut Vec<String>) {
    if let Some(r) = schema.get("$ref").and_then(Value::as_str) {
        let target = doc.pointer(r.trim_start_matches('#')).unwrap();
        return check(doc, target, value, at, errors);
    }
    if let Some(all) = schema.get("allOf").and_then(Value::as_array) {
        for s in all {
            check(doc, s, value, at, errors);
        }
        return;
    }
    if value.is_null() {
        if schema.get("nullable") != Some(&json!(true)) && schema.get("type").is_some() {
            errors.push(format!("{at}: null where {schema} is not nullable"));
        }
        return;
    }
    if let Some(options) = schema.get("enum").and_then(Value::as_array)
        && !options.contains(value)
    {
        errors.push(format!("{at}: {value} is not one of {options:?}"));
    }
    match schema.get("type").and_then(Value::as_str) {
        Some("object") => {
            let Some(map) = value.as_object() else {
                return errors.push(format!("{at}: {value} is not an object"));
            };
            for r in schema["required"].as_array().into_iter().flatten() {
                if !map.contains_key(r.as_str().unwrap()) {
                    errors.push(format!("{at}: missing {r}"));
                }
            }
            let props = schema.get("properties").and_then(Value::as_object);
            for (k, v) in map {
                match props.and_then(|p| p.get(k)) {
                    Some(s) => check(doc, s, v, &format!("{at}.{k}"), errors),
                    None => errors.push(format!("{at}: {k} is not in the schema")),
                }
            }
        }
        Some("array") => match value.as_array() {
            Some(items) => {
                for (i, item) in items.iter().enumerate() {
                    check(doc, &schema["items"], item, &format!("{at}[{i}]"), errors);
                }
            }
            None => errors.push(format!("{at}: {value} is not an array")),
        },
        Some("string") => match (value.as_str(), schema.get("format").and_then(Value::as_str)) {
            (None, _) => errors.push(format!("{at}: {value} is not a string")),
            (Some(s), Some("date"))
                if chrono::NaiveDate::parse_from_str(s, "%Y-%m-%d").is_err() =>
            {
                errors.push(format!("{at}: {s} is not a date"))
            }
            (Some(s), Some("date-time")) if chrono::DateTime::parse_from_rfc3339(s).is_err() => {
                errors.push(format!("{at}: {s} is not a date-time"))
            }
            _ => {}
        },
        Some("integer") if !value.is_i64() && !value.is_u64() => {
            errors.push(format!("{at}: {value} is not an integer"))
        }
        Some("boolean") if !value.is_boolean() => {
            errors.push(format!("{at}: {value} is not a boolean"))
        }
        _ => {}
    }
}

#[tokio::test]
async fn for_each_setting_the_published_contract_describes_the_answers() {
    let every = DialectSettings {
        list_envelope: Some(LIST_ALL.to_owned()),
        task_envelope: Some(r#"{"task": "$task"}"#.to_owned()),
        error_envelope: Some(
            r#"{"error": {"code": "$code", "message": "$detail", "fields": "$errors"}}"#.to_owned(),
        ),
        json_case: JsonCase::Camel,
        enum_case: EnumCase::Upper,
        due_date_format: DueDateFormat::Date,
    };
    let one = |f: fn(&mut DialectSettings, &DialectSettings)| {
        let mut s = DialectSettings::default();
        f(&mut s, &every);
        s
    };
    let settings = [
        DialectSettings::default(),
        one(|s, e| s.list_envelope = e.list_envelope.clone()),
        one(|s, e| s.task_envelope = e.task_envelope.clone()),
        one(|s, e| s.error_envelope = e.error_envelope.clone()),
        one(|s, _| s.json_case = JsonCase::Camel),
        one(|s, _| s.enum_case = EnumCase::Capitalized),
        one(|s, _| s.due_date_format = DueDateFormat::Date),
        every.clone(),
    ];
    for setting in settings {
        for app in apps_in_dialect(setting.clone()).await {
            let doc: Value = json(app.client.get("/openapi.json").send().await).await;
            let (u, t) = user();
            let base = format!("/api/{u}/tasks");
            let (_, _, made) = call(
                &app,
                "POST",
                &base,
                Some(&t),
                json!({"title": "x", "priority": "high", "due_date": "2030-01-02", "tags": ["w"]}),
            )
            .await;
            let id = made.get("task").unwrap_or(&made)["id"].clone();
            // (method, route in the contract, path, token, body, status)
            #[allow(clippy::type_complexity)]
            let calls: Vec<(&str, &str, String, Option<&str>, Value, &str)> = vec![
                (
                    "post",
                    "/{user_id}/tasks",
                    base.clone(),
                    Some(&t),
                    json!({"title": "y"}),
                    "201",
                ),
                (
                    "get",
                    "/{user_id}/tasks",
                    format!("{base}?limit=1"),
                    Some(&t),
                    Value::Null,
                    "200",
                ),
                (
                    "get",
                    "/tasks",
                    "/api/tasks?status=overdue".to_owned(),
                    Some(&t),
                    Value::Null,
                    "200",
                ),
                (
                    "get",
                    "/{user_id}/tasks/{id}",
                    format!("{base}/{id}"),
                    Some(&t),
                    Value::Null,
                    "200",
                ),
                (
                    "patch",
                    "/{user_id}/tasks/{id}/complete",
                    format!("{base}/{id}/complete"),
                    Some(&t),
                    Value::Null,
                    "200",
                ),
                (
                    "get",
                    "/{user_id}/tasks/{id}",
                    format!("{base}/424242"),
                    Some(&t),
                    Value::Null,
                    "404",
                ),
                (
                    "post",
                    "/{user_id}/tasks",
                    base.clone(),
                    Some(&t),
                    json!({"title": ""}),
                    "422",
                ),
                (
                    "get",
                    "/{user_id}/tasks",
                    base.clone(),
                    None,
                    Value::Null,
                    "401",
                ),
                (
                    "get",
                    "/{user_id}/stats",
                    format!("/api/{u}/stats"),
                    Some(&t),
                    Value::Null,
                    "200",
                ),
                (
                    "get",
                    "/tags",
                    "/api/tags".to_owned(),
                    Some(&t),
                    Value::Null,
                    "200",
                ),
                (
                    "delete",
                    "/{user_id}/tasks/{id}",
                    format!("{base}/{id}"),
                    Some(&t),
                    Value::Null,
                    "200",
                ),
            ];
            for (method, route, path, token, body, want) in calls {
                let (status, content_type, answer) = call(&app, method, &path, token, body).await;
                assert_eq!(
                    status.to_string(),
                    want,
                    "{} {setting:?} {path}: {answer}",
                    app.name
                );
                let media = content_type.clone();
                let schema = doc
                    .pointer(&format!(
                        "/paths/{}/{method}/responses/{want}/content/{}/schema",
                        route.replace('~', "~0").replace('/', "~1"),
                        media.replace('/', "~1")
                    ))
                    .unwrap_or_else(|| {
                        panic!("{setting:?}: no {media} schema for {method} {route} {want}")
                    });
                let mut errors = Vec::new();
                check(&doc, schema, &answer, "$", &mut errors);
                assert!(
                    errors.is_empty(),
                    "{} {setting:?} {method} {path}: {errors:?}\n{answer}",
                    app.name
                );
            }
        }
    }
}

#[tokio::test]
async fn under_json_case_camel_an_empty_string_in_an_optional_field_means_no_value() {
    let settings = DialectSettings {
        json_case: JsonCase::Camel,
        ..DialectSettings::default()
    };
    for app in apps_in_dialect(settings).await {
        let (u, t) = user();
        let base = format!("/api/{u}/tasks");
        let body = json!({"title": "a", "description": "", "dueDate": "", "remindAt": "",
                          "recurrence": ""});
        let (status, _, task) = call(&app, "POST", &base, Some(&t), body).await;
        assert_eq!(status, 201, "{}: {task}", app.name);
        for f in ["description", "dueDate", "remindAt", "recurrence"] {
            assert_eq!(task[f], Value::Null, "{}: {f} in {task}", app.name);
        }
        let full =
            json!({"title": "b", "dueDate": "2030-01-31", "remindAt": "2030-01-30T09:00:00Z"});
        let (status, _, task) = call(&app, "POST", &base, Some(&t), full).await;
        assert_eq!(status, 201, "{}: {task}", app.name);
        let path = format!("{base}/{}", task["id"]);
        let clear = json!({"dueDate": "", "remindAt": ""});
        let (status, _, task) = call(&app, "PATCH", &path, Some(&t), clear).await;
        assert_eq!(status, 200, "{}: {task}", app.name);
        assert_eq!(task["dueDate"], Value::Null, "{}: {task}", app.name);
        assert_eq!(task["remindAt"], Value::Null, "{}: {task}", app.name);
    }
}
