//! The MCP server, driven by rmcp's own client: over real HTTP to the app served on a TCP port
//! (SQLite; PostgreSQL when `TODO_TEST_DATABASE_URL` is set; PostgreSQL through a transaction
//! pooler when `TODO_TEST_POOLER_URL` is set), and over stdio to the
//! `todo-server mcp --user` binary.
#![allow(clippy::unwrap_used)]

#[path = "support/mcp_client.rs"]
mod mcp_client;
mod support;

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::Duration;

use mcp_client::{Client, call_raw};
use poem::listener::{Acceptor, Listener, TcpListener};
use rmcp::model::{CallToolResult, ClientConfig};
use rmcp::transport::streamable_http_client::StreamableHttpClientTransportConfig;
use rmcp::transport::{ConfigureCommandExt, StreamableHttpClientTransport, TokioChildProcess};
use rmcp::{ServiceError, ServiceExt};
use serde_json::{Value, json};
use todo_core::{StoreOptions, TokenIssuer, UserId};
use todo_server::AppState;

const SECRET: &[u8] = b"mcp-tests-secret-0123456789-abcdefghij";

/// The app on a real TCP port; the server task ends with the test's runtime.
struct Served {
    base: String,
}

async fn serve(url: &str, issuer: Option<&str>) -> Served {
    serve_with(
        url,
        StoreOptions::default(),
        |state| state.authorization_server = issuer.map(str::to_owned),
        &[],
    )
    .await
}

async fn serve_with(
    url: &str,
    options: StoreOptions,
    tweak: impl FnOnce(&mut AppState),
    cors: &[String],
) -> Served {
    let store = todo_core::open_store(url, options).await.unwrap();
    let mut state = AppState::for_secret(store, SECRET);
    tweak(&mut state);
    let app = todo_server::app(Arc::new(state), cors);
    let acceptor = TcpListener::bind("127.0.0.1:0")
        .into_acceptor()
        .await
        .unwrap();
    let addr = acceptor.local_addr()[0].as_socket_addr().copied().unwrap();
    tokio::spawn(poem::Server::new_with_acceptor(acceptor).run(app));
    Served {
        base: format!("http://{addr}"),
    }
}

/// One served app per backend this run can reach (`support::backends`: SQLite, PostgreSQL, and
/// PostgreSQL through a transaction pooler).
async fn backends() -> Vec<(&'static str, Served)> {
    let mut out = Vec::new();
    for backend in support::backends::backends() {
        let served = serve_with(&backend.url, backend.options, |_| {}, &[]).await;
        out.push((backend.name, served));
    }
    out
}

/// A fresh user (the PostgreSQL database is shared) and a valid token for it.
fn user() -> (String, String) {
    use rand::Rng;
    let id = format!("mcp-{:016x}", rand::thread_rng().r#gen::<u64>());
    (id.clone(), token_for(&id, Duration::from_secs(900)))
}

fn token_for(id: &str, lifetime: Duration) -> String {
    TokenIssuer::hs256(SECRET, None, None, lifetime)
        .issue(&UserId::parse(id).unwrap(), None, None)
        .unwrap()
}

async fn connect(
    served: &Served,
    token: &str,
) -> Result<Client, rmcp::service::ClientInitializeError> {
    mcp_client::connect(&served.base, token).await
}

async fn call(client: &Client, tool: &str, args: Value) -> CallToolResult {
    call_raw(client, tool, args).await.unwrap()
}

/// A successful result's structured content (and it has a text copy).
fn ok(result: &CallToolResult) -> Value {
    assert_ne!(result.is_error, Some(true), "{result:?}");
    assert!(!result.content.is_empty(), "{result:?}");
    result.structured_content.clone().unwrap()
}

/// A failed result's message.
fn failed(result: &CallToolResult) -> String {
    assert_eq!(result.is_error, Some(true), "{result:?}");
    assert!(result.structured_content.is_none(), "{result:?}");
    result.content[0].as_text().unwrap().text.clone()
}

fn text(result: &CallToolResult) -> Value {
    serde_json::from_str(&result.content[0].as_text().unwrap().text).unwrap()
}

async fn titles(client: &Client, args: Value) -> Vec<String> {
    let listed = ok(&call(client, "list_tasks", args).await);
    listed["tasks"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["title"].as_str().unwrap().to_owned())
        .collect()
}

#[tokio::test]
async fn initialize_names_the_server_and_lists_the_five_tools_with_their_schemas() {
    let served = serve("sqlite::memory:", None).await;
    let (_, token) = user();
    let client = connect(&served, &token).await.unwrap();
    let info = client.peer_info().unwrap();
    assert_eq!(info.server_info.as_ref().unwrap().name, "todo");
    assert!(info.capabilities.tools.is_some());

    let tools = client.list_all_tools().await.unwrap();
    let names: BTreeSet<&str> = tools.iter().map(|t| t.name.as_ref()).collect();
    assert_eq!(
        names,
        BTreeSet::from([
            "add_task",
            "complete_task",
            "delete_task",
            "list_tasks",
            "update_task"
        ])
    );
    for tool in &tools {
        let input = Value::Object((*tool.input_schema).clone());
        assert_eq!(input["type"], "object", "{}", tool.name);
        assert!(
            input["properties"]["user_id"].is_object(),
            "{} takes user_id",
            tool.name
        );
        assert!(
            tool.description.as_deref().is_some_and(|d| !d.is_empty()),
            "{} has a description",
            tool.name
        );
        let output = Value::Object((**tool.output_schema.as_ref().unwrap()).clone());
        assert_eq!(output["type"], "object", "{}", tool.name);
        let required = |schema: &Value| -> BTreeSet<String> {
            schema["required"]
                .as_array()
                .map(|r| r.iter().map(|v| v.as_str().unwrap().to_owned()).collect())
                .unwrap_or_default()
        };
        match tool.name.as_ref() {
            "add_task" => {
                assert_eq!(required(&input), BTreeSet::from(["title".to_owned()]));
                for field in ["description", "priority", "due_date", "tags", "recurrence"] {
                    assert!(input["properties"][field].is_object(), "add_task {field}");
                }
            }
            "list_tasks" => {
                assert!(required(&input).is_empty());
                for field in ["status", "q", "tag", "limit"] {
                    assert!(input["properties"][field].is_object(), "list_tasks {field}");
                }
                assert!(output["properties"]["tasks"].is_object());
            }
            name => {
                assert_eq!(
                    required(&input),
                    BTreeSet::from(["task_id".to_owned()]),
                    "{name}"
                );
                assert_eq!(
                    required(&output),
                    BTreeSet::from([
                        "task_id".to_owned(),
                        "status".to_owned(),
                        "title".to_owned()
                    ]),
                    "{name}"
                );
            }
        }
    }
    client.cancel().await.unwrap();
}

#[tokio::test]
async fn every_tool_works_for_the_signed_in_user() {
    for (backend, served) in backends().await {
        let (id, token) = user();
        let client = connect(&served, &token).await.unwrap();

        let created = ok(&call(
            &client,
            "add_task",
            json!({"title": "Buy milk", "description": "2 litres", "priority": "high",
                   "due_date": "2030-01-31", "tags": ["home", "Errands"]}),
        )
        .await);
        assert_eq!(created["status"], "created", "{backend}");
        assert_eq!(created["title"], "Buy milk", "{backend}");
        let milk = created["task_id"].as_i64().unwrap();
        let bread = ok(&call(
            &client,
            "add_task",
            json!({"title": "Bake bread", "user_id": id}),
        )
        .await)["task_id"]
            .as_i64()
            .unwrap();

        // The list: structured {"tasks": [...]}, and its text is the bare array.
        let listed = call(&client, "list_tasks", json!({})).await;
        let tasks = ok(&listed)["tasks"].clone();
        assert_eq!(text(&listed), tasks, "{backend}");
        assert_eq!(tasks.as_array().unwrap().len(), 2, "{backend}");
        let first = &tasks[1];
        assert_eq!(first["id"], milk, "{backend}: newest first");
        assert_eq!(first["user_id"], id.as_str());
        assert_eq!(first["priority"], "high");
        assert_eq!(first["due_date"], "2030-01-31T00:00:00Z");
        assert_eq!(first["tags"], json!(["home", "Errands"]));
        assert_eq!(first["completed"], false);

        assert_eq!(
            titles(&client, json!({"tag": "errands"})).await,
            ["Buy milk"]
        );
        assert_eq!(titles(&client, json!({"q": "BREAD"})).await, ["Bake bread"]);
        assert_eq!(titles(&client, json!({"limit": 1})).await, ["Bake bread"]);

        let updated = ok(&call(
            &client,
            "update_task",
            json!({"task_id": milk, "title": "Buy oat milk", "tags": [], "description": null}),
        )
        .await);
        assert_eq!(
            updated,
            json!({"task_id": milk, "status": "updated", "title": "Buy oat milk"})
        );
        let listed = ok(&call(&client, "list_tasks", json!({"q": "oat"})).await);
        assert_eq!(listed["tasks"][0]["tags"], json!([]), "{backend}");
        assert_eq!(listed["tasks"][0]["description"], Value::Null, "{backend}");

        let completed = ok(&call(&client, "complete_task", json!({"task_id": milk})).await);
        assert_eq!(
            completed,
            json!({"task_id": milk, "status": "completed", "title": "Buy oat milk"})
        );
        assert_eq!(
            titles(&client, json!({"status": "completed"})).await,
            ["Buy oat milk"]
        );
        assert_eq!(
            titles(&client, json!({"status": "pending"})).await,
            ["Bake bread"]
        );

        let deleted = ok(&call(&client, "delete_task", json!({"task_id": bread})).await);
        assert_eq!(
            deleted,
            json!({"task_id": bread, "status": "deleted", "title": "Bake bread"})
        );
        assert_eq!(titles(&client, json!({})).await, ["Buy oat milk"]);

        // A repeating task: completing it creates the next occurrence.
        let weekly = ok(&call(
            &client,
            "add_task",
            json!({"title": "Water plants", "due_date": "2030-01-07T09:00:00Z",
                   "recurrence": "FREQ=WEEKLY"}),
        )
        .await)["task_id"]
            .as_i64()
            .unwrap();
        ok(&call(&client, "complete_task", json!({"task_id": weekly})).await);
        let pending = ok(&call(&client, "list_tasks", json!({"status": "pending"})).await);
        assert_eq!(pending["tasks"][0]["title"], "Water plants", "{backend}");
        assert_eq!(
            pending["tasks"][0]["due_date"], "2030-01-14T09:00:00Z",
            "{backend}"
        );
        client.cancel().await.unwrap();
    }
}

#[tokio::test]
async fn tool_errors_are_results_the_model_can_act_on_and_change_nothing() {
    let served = serve("sqlite::memory:", None).await;
    let (_, token) = user();
    let client = connect(&served, &token).await.unwrap();
    let id = ok(&call(&client, "add_task", json!({"title": "Keep me"})).await)["task_id"]
        .as_i64()
        .unwrap();

    let cases = [
        (
            "complete_task",
            json!({"task_id": 999_999}),
            "task 999999 not found",
        ),
        ("delete_task", json!({"task_id": 999_999}), "not found"),
        (
            "update_task",
            json!({"task_id": 999_999, "title": "x"}),
            "not found",
        ),
        ("complete_task", json!({}), "task_id is required"),
        (
            "complete_task",
            json!({"task_id": -3}),
            "task_id must be a positive integer",
        ),
        ("add_task", json!({}), "title is required"),
        ("add_task", json!({"title": "   "}), "title"),
        (
            "add_task",
            json!({"title": "x", "priority": "urgent"}),
            "priority",
        ),
        (
            "add_task",
            json!({"title": "x", "due_date": "next week"}),
            "due_date",
        ),
        (
            "add_task",
            json!({"title": "x", "recurrence": "FREQ=DAILY"}),
            "due_date",
        ),
        (
            "add_task",
            json!({"title": "x", "tags": (0..21).map(|i| format!("t{i}")).collect::<Vec<_>>()}),
            "tags",
        ),
        (
            "add_task",
            json!({"title": "x", "titel": "y"}),
            "unknown argument `titel`",
        ),
        ("update_task", json!({"task_id": id, "title": ""}), "title"),
        (
            "update_task",
            json!({"task_id": id, "completed": "yes"}),
            "completed",
        ),
        ("list_tasks", json!({"limit": 0}), "limit"),
        ("list_tasks", json!({"limit": 101}), "limit"),
        ("list_tasks", json!({"status": "done"}), "status"),
        ("list_tasks", json!({"q": 5}), "q must be a string"),
    ];
    for (tool, args, expected) in cases {
        let message = failed(&call(&client, tool, args.clone()).await);
        assert!(
            message.contains(expected),
            "{tool} {args}: {message:?} should mention {expected:?}"
        );
    }
    // Nothing was created or changed by any of them.
    let listed = ok(&call(&client, "list_tasks", json!({})).await);
    assert_eq!(listed["tasks"].as_array().unwrap().len(), 1);
    assert_eq!(listed["tasks"][0]["title"], "Keep me");
    assert_eq!(listed["tasks"][0]["completed"], false);

    // An unknown tool is the protocol's own error, not a crash.
    match call_raw(&client, "drop_database", json!({})).await {
        Err(ServiceError::McpError(e)) => assert_eq!(e.code.0, -32602),
        other => panic!("unexpected {other:?}"),
    }
    client.cancel().await.unwrap();
}

#[tokio::test]
async fn another_users_tasks_are_not_found_and_user_id_cannot_widen_the_token() {
    for (backend, served) in backends().await {
        let (alice, alice_token) = user();
        let (_, bob_token) = user();
        let a = connect(&served, &alice_token).await.unwrap();
        let b = connect(&served, &bob_token).await.unwrap();
        let id = ok(&call(&a, "add_task", json!({"title": "Alice's"})).await)["task_id"]
            .as_i64()
            .unwrap();

        for (tool, args) in [
            ("complete_task", json!({"task_id": id})),
            (
                "update_task",
                json!({"task_id": id, "title": "Bob was here"}),
            ),
            ("delete_task", json!({"task_id": id})),
        ] {
            let message = failed(&call(&b, tool, args).await);
            assert!(message.contains("not found"), "{backend} {tool}: {message}");
        }
        // Naming Alice in the arguments changes nothing: the token decides.
        for (tool, args) in [
            ("list_tasks", json!({"user_id": alice})),
            ("add_task", json!({"title": "Planted", "user_id": alice})),
            ("complete_task", json!({"task_id": id, "user_id": alice})),
            ("delete_task", json!({"task_id": id, "user_id": alice})),
            (
                "update_task",
                json!({"task_id": id, "title": "x", "user_id": alice}),
            ),
        ] {
            let message = failed(&call(&b, tool, args).await);
            assert!(message.contains("user_id"), "{backend} {tool}: {message}");
        }
        assert!(titles(&b, json!({})).await.is_empty(), "{backend}");
        let listed = ok(&call(&a, "list_tasks", json!({"user_id": alice})).await);
        assert_eq!(listed["tasks"].as_array().unwrap().len(), 1, "{backend}");
        assert_eq!(listed["tasks"][0]["title"], "Alice's", "{backend}");
        assert_eq!(listed["tasks"][0]["completed"], false, "{backend}");
        a.cancel().await.unwrap();
        b.cancel().await.unwrap();
    }
}

#[tokio::test]
async fn without_a_valid_token_mcp_answers_401_with_a_bearer_challenge() {
    let served = serve("sqlite::memory:", Some("https://auth.example.com")).await;
    let initialize = json!({"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {
        "protocolVersion": "2025-11-25", "capabilities": {},
        "clientInfo": {"name": "test", "version": "1"}}});
    let http = reqwest::Client::new();
    for auth in [
        None,
        Some("Bearer not-a-token".to_owned()),
        Some(format!(
            "Bearer {}",
            token_for("x", Duration::from_secs(60)).replace('.', "x.")
        )),
        Some(format!("Basic {}", "dXNlcjpwYXNz")),
    ] {
        let mut req = http
            .post(format!("{}/mcp", served.base))
            .header("content-type", "application/json")
            .header("accept", "application/json, text/event-stream")
            .json(&initialize);
        if let Some(auth) = &auth {
            req = req.header("authorization", auth);
        }
        let resp = req.send().await.unwrap();
        assert_eq!(resp.status(), 401, "{auth:?}");
        let challenge = resp
            .headers()
            .get("www-authenticate")
            .unwrap()
            .to_str()
            .unwrap()
            .to_owned();
        assert!(challenge.starts_with("Bearer "), "{challenge}");
        assert!(
            challenge.contains(&format!(
                "resource_metadata=\"{}/.well-known/oauth-protected-resource\"",
                served.base
            )),
            "{challenge}"
        );
        let body: Value = resp.json().await.unwrap();
        assert_eq!(body["status"], 401);
    }
    let foreign = TokenIssuer::hs256(
        b"another-secret-another-secret-0123456",
        None,
        None,
        Duration::from_secs(60),
    )
    .issue(&UserId::parse("mallory").unwrap(), None, None)
    .unwrap();
    let resp = http
        .post(format!("{}/mcp", served.base))
        .header("authorization", format!("Bearer {foreign}"))
        .header("content-type", "application/json")
        .header("accept", "application/json, text/event-stream")
        .json(&initialize)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 401);

    // rmcp's client without a token cannot even initialize.
    let err = ClientConfig::default()
        .serve(StreamableHttpClientTransport::from_uri(format!(
            "{}/mcp",
            served.base
        )))
        .await
        .err()
        .unwrap();
    let err = format!("{err:?}");
    assert!(
        err.contains("AuthRequired") && err.contains("resource_metadata"),
        "{err}"
    );

    // The protected resource metadata names the resource and the configured issuer.
    for path in [
        "/.well-known/oauth-protected-resource",
        "/.well-known/oauth-protected-resource/mcp",
    ] {
        let doc: Value = http
            .get(format!("{}{path}", served.base))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        assert_eq!(doc["resource"], format!("{}/mcp", served.base), "{path}");
        assert_eq!(
            doc["authorization_servers"],
            json!(["https://auth.example.com"])
        );
        assert_eq!(doc["bearer_methods_supported"], json!(["header"]));
    }
}

#[tokio::test]
async fn stdio_mode_acts_for_the_user_named_on_the_command_line() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("todo.db");
    let url = format!("sqlite://{}", db.display());
    let spawn = || {
        let url = url.clone();
        let dir = dir.path().to_owned();
        TokioChildProcess::new(
            tokio::process::Command::new(support::bin()).configure(move |c| {
                c.current_dir(&dir)
                    .env_clear()
                    .env("DATABASE_URL", &url)
                    .env("BETTER_AUTH_SECRET", support::SECRET)
                    .env("RUST_LOG", "warn")
                    .args(["mcp", "--user", "desk-user"]);
            }),
        )
        .unwrap()
    };
    let client = ClientConfig::default().serve(spawn()).await.unwrap();
    assert_eq!(
        client
            .peer_info()
            .unwrap()
            .server_info
            .as_ref()
            .unwrap()
            .name,
        "todo"
    );
    let created = ok(&call(&client, "add_task", json!({"title": "From the desktop"})).await);
    assert_eq!(created["status"], "created");
    let listed = ok(&call(&client, "list_tasks", json!({})).await);
    assert_eq!(listed["tasks"][0]["user_id"], "desk-user");
    let message = failed(&call(&client, "list_tasks", json!({"user_id": "someone-else"})).await);
    assert!(message.contains("user_id"), "{message}");
    client.cancel().await.unwrap();

    // The task is in the configured database, owned by that user: a second run sees it.
    let client = ClientConfig::default().serve(spawn()).await.unwrap();
    assert_eq!(titles(&client, json!({})).await, ["From the desktop"]);
    client.cancel().await.unwrap();
}

#[tokio::test]
async fn the_session_cookie_and_browser_preflights_work_as_on_the_rest_routes() {
    let origin = "https://app.example.com";
    let served = serve_with(
        "sqlite::memory:",
        StoreOptions::default(),
        |state| state.cookie_auth = true,
        &[origin.to_owned()],
    )
    .await;
    let (id, token) = user();
    let http = reqwest::Client::new();
    let list = json!({"jsonrpc": "2.0", "id": 1, "method": "tools/call",
        "params": {"name": "add_task", "arguments": {"title": "By cookie"}}});
    let resp = http
        .post(format!("{}/mcp", served.base))
        .header("cookie", format!("better-auth.session_data={token}"))
        .header("accept", "application/json, text/event-stream")
        .json(&list)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    let body: Value = resp.json().await.unwrap();
    assert_eq!(
        body["result"]["structuredContent"]["status"], "created",
        "{body}"
    );
    let client = connect(&served, &token).await.unwrap();
    let listed = ok(&call(&client, "list_tasks", json!({})).await);
    assert_eq!(listed["tasks"][0]["user_id"], id.as_str());
    client.cancel().await.unwrap();

    let preflight = http
        .request(reqwest::Method::OPTIONS, format!("{}/mcp", served.base))
        .header("origin", origin)
        .header("access-control-request-method", "POST")
        .header(
            "access-control-request-headers",
            "authorization, content-type, mcp-protocol-version",
        )
        .send()
        .await
        .unwrap();
    assert!(preflight.status().is_success(), "{}", preflight.status());
    let allowed = preflight
        .headers()
        .get("access-control-allow-headers")
        .unwrap()
        .to_str()
        .unwrap()
        .to_ascii_lowercase();
    assert!(allowed.contains("mcp-protocol-version"), "{allowed}");
}

#[tokio::test]
async fn a_client_of_the_newest_revision_works_without_initialize() {
    use rmcp::model::ProtocolVersion;
    use rmcp::{ClientLifecycleMode, ClientServiceExt};
    let served = serve("sqlite::memory:", None).await;
    let (id, token) = user();
    let transport = StreamableHttpClientTransport::from_config(
        StreamableHttpClientTransportConfig::with_uri(format!("{}/mcp", served.base))
            .auth_header(token),
    );
    let client = ClientConfig::default()
        .serve_with_lifecycle(
            transport,
            ClientLifecycleMode::Discover {
                preferred_versions: vec![ProtocolVersion::V_2026_07_28],
            },
        )
        .await
        .unwrap();
    assert_eq!(
        client.peer_info().unwrap().protocol_version,
        ProtocolVersion::V_2026_07_28
    );
    assert_eq!(client.list_all_tools().await.unwrap().len(), 5);
    let created = ok(&call(&client, "add_task", json!({"title": "Modern"})).await);
    assert_eq!(created["status"], "created");
    let listed = ok(&call(&client, "list_tasks", json!({})).await);
    assert_eq!(listed["tasks"][0]["user_id"], id.as_str());
    client.cancel().await.unwrap();
}

const ACCEPT_BOTH: &str = "application/json, text/event-stream";

/// POSTs `body` (raw bytes) to `/mcp` as `token`'s user with these `Accept` and `Content-Type`:
/// the status, the content type and the body (as JSON when it is).
async fn post_raw(
    served: &Served,
    token: &str,
    body: Vec<u8>,
    accept: &str,
    content_type: &str,
) -> (u16, String, Value) {
    let resp = reqwest::Client::new()
        .post(format!("{}/mcp", served.base))
        .header("authorization", format!("Bearer {token}"))
        .header("content-type", content_type)
        .header("accept", accept)
        .body(body)
        .send()
        .await
        .unwrap();
    let status = resp.status().as_u16();
    let content_type = resp
        .headers()
        .get("content-type")
        .map(|v| v.to_str().unwrap().to_owned())
        .unwrap_or_default();
    let text = resp.text().await.unwrap();
    let body = serde_json::from_str(&text).unwrap_or(Value::String(text));
    (status, content_type, body)
}

/// Asserts `answer` is a JSON-RPC error response with `code`, and `id` (absent when `None`).
fn assert_jsonrpc_error(
    case: &str,
    answer: &(u16, String, Value),
    status: u16,
    code: i64,
    id: Option<Value>,
) {
    let (got_status, content_type, body) = answer;
    assert_eq!(*got_status, status, "{case}: {body}");
    assert!(
        content_type.starts_with("application/json"),
        "{case}: {content_type} {body}"
    );
    assert_eq!(body["jsonrpc"], "2.0", "{case}: {body}");
    assert_eq!(body["error"]["code"], code, "{case}: {body}");
    assert!(
        body["error"]["message"]
            .as_str()
            .is_some_and(|m| !m.is_empty()),
        "{case}: {body}"
    );
    assert_eq!(body.get("id").cloned(), id, "{case}: {body}");
}

#[tokio::test]
async fn a_malformed_or_unsupported_jsonrpc_message_gets_the_jsonrpc_error_the_spec_names() {
    let served = serve("sqlite::memory:", None).await;
    let (_, token) = user();
    let cases: Vec<(&str, Vec<u8>, i64, Option<Value>)> = vec![
        (
            "malformed JSON",
            br#"{"jsonrpc": "2.0", "id": 1, "method": "#.to_vec(),
            -32700,
            None,
        ),
        ("not JSON at all", b"ping".to_vec(), -32700, None),
        (
            "a batch",
            br#"[{"jsonrpc": "2.0", "id": 1, "method": "ping"}]"#.to_vec(),
            -32600,
            None,
        ),
        ("a bare string", br#""ping""#.to_vec(), -32600, None),
        (
            "a null id",
            br#"{"jsonrpc": "2.0", "id": null, "method": "ping"}"#.to_vec(),
            -32600,
            None,
        ),
        (
            "a fractional id",
            br#"{"jsonrpc": "2.0", "id": 1.5, "method": "ping"}"#.to_vec(),
            -32600,
            None,
        ),
        (
            "JSON-RPC 1.0",
            br#"{"jsonrpc": "1.0", "id": 7, "method": "ping"}"#.to_vec(),
            -32600,
            Some(json!(7)),
        ),
        (
            "no jsonrpc member",
            br#"{"id": "a", "method": "ping"}"#.to_vec(),
            -32600,
            Some(json!("a")),
        ),
        (
            "a method that is not a string",
            br#"{"jsonrpc": "2.0", "id": 8, "method": 3}"#.to_vec(),
            -32600,
            Some(json!(8)),
        ),
        (
            "arguments that are an array",
            br#"{"jsonrpc": "2.0", "id": 2, "method": "tools/call",
                 "params": {"name": "list_tasks", "arguments": [1]}}"#
                .to_vec(),
            -32602,
            Some(json!(2)),
        ),
        (
            "arguments that are a string",
            br#"{"jsonrpc": "2.0", "id": "s", "method": "tools/call",
                 "params": {"name": "list_tasks", "arguments": "x"}}"#
                .to_vec(),
            -32602,
            Some(json!("s")),
        ),
        (
            "params that are an array",
            br#"{"jsonrpc": "2.0", "id": 3, "method": "tools/call", "params": [1]}"#.to_vec(),
            -32602,
            Some(json!(3)),
        ),
    ];
    for (case, body, code, id) in cases {
        let answer = post_raw(&served, &token, body, ACCEPT_BOTH, "application/json").await;
        assert_jsonrpc_error(case, &answer, 400, code, id);
    }

    // Refusals of the HTTP exchange itself are JSON-RPC errors too, with their own status.
    let ping = br#"{"jsonrpc": "2.0", "id": 9, "method": "ping"}"#.to_vec();
    let mut big = br#"{"jsonrpc": "2.0", "id": 1, "method": "ping", "params": {"pad": ""#.to_vec();
    big.extend(std::iter::repeat_n(b'x', 70 * 1024));
    big.extend(br#""}}"#);
    let answer = post_raw(&served, &token, big, ACCEPT_BOTH, "application/json").await;
    assert_jsonrpc_error("too large", &answer, 413, -32600, None);
    let answer = post_raw(
        &served,
        &token,
        ping.clone(),
        "application/json",
        "application/json",
    )
    .await;
    assert_jsonrpc_error("not accepting SSE", &answer, 406, -32600, Some(json!(9)));
    let answer = post_raw(&served, &token, ping.clone(), ACCEPT_BOTH, "text/plain").await;
    assert_jsonrpc_error("not JSON", &answer, 415, -32600, None);
    let resp = reqwest::Client::new()
        .get(format!("{}/mcp", served.base))
        .header("authorization", format!("Bearer {token}"))
        .header("accept", "text/event-stream")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 405);
    assert_eq!(resp.headers()["allow"], "POST");
    let body: Value = resp.json().await.unwrap();
    assert_eq!(body["error"]["code"], -32600, "{body}");

    // A well-formed message is answered as before.
    let (status, _, answer) =
        post_raw(&served, &token, ping, ACCEPT_BOTH, "application/json").await;
    assert_eq!((status, &answer["id"]), (200, &json!(9)), "{answer}");
    assert_eq!(answer["result"], json!({}));
}

#[tokio::test]
async fn stdio_mode_ends_quietly_with_status_0_when_stdin_is_empty() {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}", dir.path().join("todo.db").display());
    let out = tokio::time::timeout(
        Duration::from_secs(60),
        tokio::process::Command::new(support::bin())
            .current_dir(dir.path())
            .env_clear()
            .env("DATABASE_URL", &url)
            .env("BETTER_AUTH_SECRET", support::SECRET)
            .env("RUST_LOG", "warn")
            .args(["mcp", "--user", "desk-user"])
            .stdin(std::process::Stdio::null())
            .kill_on_drop(true)
            .output(),
    )
    .await
    .expect("the server did not end on end of input")
    .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{}: {stderr}", out.status);
    assert!(
        out.stdout.is_empty(),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
    assert!(stderr.is_empty(), "{stderr}");
}

/// A valid value of `f` as a tool argument (read back the same) and an invalid one.
fn plain_samples(f: &todo_core::fields::Field) -> (Value, Value) {
    use todo_core::fields::Kind;
    match f.kind {
        Kind::Int => (
            json!(f.rules.minimum.unwrap_or(0)),
            f.rules.maximum.map_or(json!("7"), |n| json!(n + 1)),
        ),
        Kind::Text => (json!("a"), json!(7)),
        Kind::Instant => (json!("2030-01-31T08:00:00Z"), json!("not a time")),
    }
}

#[tokio::test]
async fn every_plain_field_is_in_the_tools_schemas_and_is_set_read_cleared_and_refused() {
    for (backend, served) in backends().await {
        let (_, token) = user();
        let client = connect(&served, &token).await.unwrap();
        let tools = client.list_all_tools().await.unwrap();
        let schema = |name: &str| {
            let tool = tools.iter().find(|t| t.name == name).unwrap();
            Value::Object((*tool.input_schema).clone())
        };
        let listed_schema = {
            let tool = tools.iter().find(|t| t.name == "list_tasks").unwrap();
            Value::Object((**tool.output_schema.as_ref().unwrap()).clone()).to_string()
        };
        for f in todo_core::FIELDS {
            let name = f.name;
            assert!(
                schema("add_task")["properties"][name].is_object(),
                "add_task {name}"
            );
            assert!(
                schema("update_task")["properties"][name].is_object(),
                "update_task {name}"
            );
            assert!(
                listed_schema.contains(&format!("\"{name}\"")),
                "list_tasks result {name}"
            );

            let (good, bad) = plain_samples(f);
            let created = ok(&call(&client, "add_task", json!({"title": name, name: good})).await);
            let id = created["task_id"].as_i64().unwrap();
            let find = |listed: Value| {
                listed["tasks"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .find(|t| t["id"] == id)
                    .unwrap()[name]
                    .clone()
            };
            let listed = ok(&call(&client, "list_tasks", json!({})).await);
            assert_eq!(find(listed), good, "{backend} {name}");
            ok(&call(&client, "update_task", json!({"task_id": id, name: null})).await);
            let listed = ok(&call(&client, "list_tasks", json!({})).await);
            assert_eq!(find(listed), Value::Null, "{backend} {name} cleared");
            let refused =
                failed(&call(&client, "add_task", json!({"title": "x", name: bad})).await);
            assert!(refused.contains(name), "{backend} {name}: {refused}");
        }
        client.cancel().await.unwrap();
    }
}
