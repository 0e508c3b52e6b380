//! Every plain field ([`todo_core::FIELDS`]) over HTTP, driven by the declaration itself: a new
//! field is tested here without a line of its own. Create, read, PATCH, PUT, clearing with
//! `null` and `""`, the camelCase spelling, the 422 naming the field for a value of the wrong
//! kind or out of its range (with the task unchanged), and the contract's three schemas.

use serde_json::{Value, json};
use todo_core::FIELDS;
use todo_core::fields::{Field, Kind};
use todo_server::dialect::camel;

use crate::helpers::{apps, create, get, json as json_body, send, user};

/// Two valid values for `f` as a client sends them (each read back the same), and invalid ones.
fn samples(f: &Field) -> (Value, Value, Vec<Value>) {
    match f.kind {
        Kind::Int => {
            let low = f.rules.minimum.unwrap_or(0);
            let high = f.rules.maximum.unwrap_or(low + 1);
            let mut bad = vec![json!("7"), json!(1.5)];
            bad.extend(f.rules.minimum.map(|n| json!(n - 1)));
            bad.extend(f.rules.maximum.map(|n| json!(n + 1)));
            (json!(low), json!(high), bad)
        }
        Kind::Text => {
            let mut bad = vec![json!(7)];
            bad.extend(f.rules.max_chars.map(|n| json!("x".repeat(n + 1))));
            (json!("a"), json!("b"), bad)
        }
        Kind::Instant => (
            json!("2030-01-31T08:00:00Z"),
            json!("2031-02-01T09:30:00.250000Z"),
            vec![
                json!("not a time"),
                json!(7),
                json!("10000-01-01T00:00:00Z"),
            ],
        ),
    }
}

/// The field names a 422 problem lists.
fn named(body: &Value) -> Vec<String> {
    body["errors"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|e| e["field"].as_str().map(str::to_owned))
        .collect()
}

#[tokio::test]
async fn every_plain_field_is_created_read_changed_cleared_and_refused_by_name() {
    assert!(!FIELDS.is_empty(), "no plain field to test");
    for app in apps().await {
        let (u, t) = user();
        for f in FIELDS {
            let name = f.name;
            let (one, two, bad) = samples(f);
            let ctx = format!("{} {name}", app.name);

            let task = create(&app, &u, &t, json!({"title": "a", name: one})).await;
            assert_eq!(task[name], one, "{ctx}: create");
            let path = format!("/api/{u}/tasks/{}", task["id"]);
            assert_eq!(get(&app, &path, &t).await.1[name], one, "{ctx}: read");
            let plain = create(&app, &u, &t, json!({"title": "b"})).await;
            assert_eq!(plain[name], Value::Null, "{ctx}: absent is null");

            let (status, body) = send(&app, "PATCH", &path, &t, json!({name: two})).await;
            assert_eq!((status, &body[name]), (200, &two), "{ctx}: patch");
            let (_, body) = send(&app, "PATCH", &path, &t, json!({camel(name): one})).await;
            assert_eq!(body[name], one, "{ctx}: camelCase key");
            let (_, body) = send(&app, "PATCH", &path, &t, json!({"title": "c"})).await;
            assert_eq!(body[name], one, "{ctx}: absent leaves it");
            let (_, body) = send(&app, "PATCH", &path, &t, json!({name: ""})).await;
            assert_eq!(body[name], Value::Null, "{ctx}: \"\" clears");
            send(&app, "PATCH", &path, &t, json!({name: one})).await;
            let (_, body) = send(&app, "PATCH", &path, &t, json!({name: null})).await;
            assert_eq!(body[name], Value::Null, "{ctx}: null clears");

            let (status, body) =
                send(&app, "PUT", &path, &t, json!({"title": "d", name: two})).await;
            assert_eq!((status, &body[name]), (200, &two), "{ctx}: put");
            let (_, body) = send(&app, "PUT", &path, &t, json!({"title": "d"})).await;
            // PUT reads its body as PATCH does (what the FastAPI backends did): absent leaves.
            assert_eq!(body[name], two, "{ctx}: put without it leaves it");
            send(&app, "PATCH", &path, &t, json!({name: one})).await;

            for value in bad {
                let create_path = format!("/api/{u}/tasks");
                let (status, body) = send(
                    &app,
                    "POST",
                    &create_path,
                    &t,
                    json!({"title": "e", name: value}),
                )
                .await;
                assert_eq!(status, 422, "{ctx}: create with {value}");
                assert_eq!(named(&body), [name], "{ctx}: create with {value}");
                let (status, body) = send(&app, "PATCH", &path, &t, json!({name: value})).await;
                assert_eq!(status, 422, "{ctx}: patch with {value}");
                assert_eq!(named(&body), [name], "{ctx}: patch with {value}");
            }
            assert_eq!(get(&app, &path, &t).await.1[name], one, "{ctx}: unchanged");
        }
    }
}

#[tokio::test]
async fn the_contract_documents_every_plain_field_on_the_task_and_both_bodies() {
    let app = apps().await.remove(0);
    let doc = json_body(app.client.get("/openapi.json").send().await).await;
    for f in FIELDS {
        for schema in ["Task", "TaskCreate", "TaskUpdate"] {
            let property = &doc["components"]["schemas"][schema]["properties"][f.name];
            assert!(property.is_object(), "{schema} lacks {}", f.name);
            let ty = match f.kind {
                Kind::Int => "integer",
                Kind::Text | Kind::Instant => "string",
            };
            assert_eq!(property["type"], ty, "{schema}.{}", f.name);
            assert_eq!(
                property["nullable"].as_bool().unwrap_or(false),
                schema != "TaskCreate",
                "{schema}.{}",
                f.name
            );
            if let Some(n) = f.rules.maximum {
                assert_eq!(property["maximum"], json!(n as f64), "{schema}.{}", f.name);
            }
        }
    }
}

#[tokio::test]
async fn every_body_field_the_contract_documents_is_read_by_the_parser() {
    // A documented field the parser ignored would take any value: an object is wrong for every
    // field, so each must be refused by name.
    for app in apps().await {
        let (u, t) = user();
        let doc = json_body(app.client.get("/openapi.json").send().await).await;
        let task = create(&app, &u, &t, json!({"title": "a"})).await;
        let path = format!("/api/{u}/tasks/{}", task["id"]);
        for (schema, method, uri) in [
            ("TaskCreate", "POST", format!("/api/{u}/tasks")),
            ("TaskUpdate", "PATCH", path.clone()),
            ("TaskUpdate", "PUT", path.clone()),
        ] {
            let properties = doc["components"]["schemas"][schema]["properties"]
                .as_object()
                .unwrap();
            assert!(properties.len() > 5, "{schema}");
            for name in properties.keys() {
                let mut body = json!({"title": "b"});
                body[name] = json!({"not": "a value"});
                let (status, answer) = send(&app, method, &uri, &t, body).await;
                assert_eq!(status, 422, "{} {method} {name}", app.name);
                assert!(
                    named(&answer).contains(name),
                    "{} {method} {name}: {answer}",
                    app.name
                );
            }
        }
        assert_eq!(get(&app, &path, &t).await.1["title"], "a", "{}", app.name);
    }
}
