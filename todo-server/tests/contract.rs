//! The committed contract, `docs/openapi.json`, is what the server generates. A change to the API
//! shows up in review as a change to that file; this test fails until the file is updated with
//!
//! ```sh
//! UPDATE_OPENAPI=1 cargo test -p todo-server --test contract
//! ```
#![allow(clippy::unwrap_used)] // test helpers panic on setup failures by design

use std::path::{Path, PathBuf};
use std::sync::Arc;

use serde_json::Value;
use todo_core::StoreOptions;
use todo_server::AppState;

const UPDATE_ENV: &str = "UPDATE_OPENAPI";
const UPDATE_COMMAND: &str = "UPDATE_OPENAPI=1 cargo test -p todo-server --test contract";

fn committed_path() -> PathBuf {
    let server_crate = Path::new(env!("CARGO_MANIFEST_DIR"));
    server_crate
        .parent()
        .unwrap_or(server_crate)
        .join("docs/openapi.json")
}

/// The contract the server serves at `/openapi.json`.
async fn generated() -> String {
    let store = todo_core::open_store("sqlite::memory:", StoreOptions::default())
        .await
        .unwrap();
    let state = Arc::new(AppState::for_secret(
        store,
        b"contract-secret-contract-secret-contract",
    ));
    todo_server::openapi_json(&state)
}

/// JSON pointers where `a` and `b` differ (at most `max`).
fn differences(a: &Value, b: &Value, at: &str, out: &mut Vec<String>, max: usize) {
    if out.len() >= max || a == b {
        return;
    }
    match (a, b) {
        (Value::Object(x), Value::Object(y)) => {
            let mut keys: Vec<&String> = x.keys().chain(y.keys()).collect();
            keys.sort();
            keys.dedup();
            for k in keys {
                let here = format!("{at}/{}", k.replace('~', "~0").replace('/', "~1"));
                match (x.get(k), y.get(k)) {
                    (Some(v), Some(w)) => differences(v, w, &here, out, max),
                    (Some(_), None) => out.push(format!("{here}: only in the committed file")),
                    (None, Some(_)) => out.push(format!("{here}: only in the generated contract")),
                    (None, None) => {}
                }
                if out.len() >= max {
                    return;
                }
            }
        }
        (Value::Array(x), Value::Array(y)) if x.len() == y.len() => {
            for (i, (v, w)) in x.iter().zip(y).enumerate() {
                differences(v, w, &format!("{at}/{i}"), out, max);
            }
        }
        _ => out.push(format!("{at}: committed {a}, generated {b}")),
    }
}

#[tokio::test]
async fn the_committed_openapi_contract_is_what_the_server_generates() {
    let path = committed_path();
    let text = generated().await;
    let fresh: Value = serde_json::from_str(&text).expect("the generated contract is JSON");

    if std::env::var(UPDATE_ENV).is_ok_and(|v| v == "1") {
        let mut contents = text;
        if !contents.ends_with('\n') {
            contents.push('\n');
        }
        std::fs::write(&path, contents).unwrap();
        println!("{UPDATE_ENV}=1: wrote {}", path.display());
        return;
    }

    let committed = std::fs::read_to_string(&path).unwrap_or_else(|e| {
        panic!(
            "cannot read {}: {e}\nGenerate it with:\n    {UPDATE_COMMAND}",
            path.display()
        )
    });
    let committed: Value = serde_json::from_str(&committed).unwrap_or_else(|e| {
        panic!(
            "{} is not valid JSON: {e}\nRegenerate it with:\n    {UPDATE_COMMAND}",
            path.display()
        )
    });
    if committed != fresh {
        let mut diffs = Vec::new();
        differences(&committed, &fresh, "", &mut diffs, 20);
        panic!(
            "docs/openapi.json is out of date: the API changed but the committed contract did \
             not.\nFirst differences (JSON pointers):\n  {}\n\nIf the change is intended, \
             update the file and commit it with the code:\n    {UPDATE_COMMAND}",
            diffs.join("\n  ")
        );
    }
}

#[test]
fn every_alias_in_the_route_table_is_documented_with_its_operations() {
    let store = tokio::runtime::Runtime::new()
        .unwrap()
        .block_on(todo_core::open_store(
            "sqlite::memory:",
            todo_core::StoreOptions::default(),
        ))
        .unwrap();
    let state = std::sync::Arc::new(todo_server::AppState::for_secret(
        store,
        b"contract-test-secret-0123456789-abcdef",
    ));
    let contract: Value = serde_json::from_str(&todo_server::openapi_json(&state)).unwrap();
    for alias in todo_server::routes::ALIASES {
        for (method, id) in alias.operations {
            let op = &contract["paths"][alias.path][method];
            assert_eq!(op["operationId"], *id, "{method} {}", alias.path);
            let own = &contract["paths"][alias.target][method];
            assert!(
                own.is_object(),
                "{method} {} has no operation",
                alias.target
            );
            assert_eq!(op["responses"], own["responses"], "{method} {}", alias.path);
        }
    }
}
