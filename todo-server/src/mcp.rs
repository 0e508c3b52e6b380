//! The Model Context Protocol server: the five task tools an AI assistant calls, over the same
//! store and the same credentials as the REST routes.
//!
//! - Over HTTP ([`endpoint`], mounted at `/mcp`): the Streamable HTTP transport of rmcp, run
//!   stateless with plain JSON answers, so a client can make the server hold nothing between
//!   requests. Every request is authenticated like a REST request (bearer token, or the session
//!   cookie when that is on); without a valid credential the answer is 401 with a
//!   `WWW-Authenticate: Bearer` challenge naming the protected resource metadata
//!   ([`resource_metadata`], at `/.well-known/oauth-protected-resource`). Each tool call acts
//!   for the principal of its own HTTP request, whatever the arguments say.
//! - Over stdio ([`serve_stdio`], `todo-server mcp --user <id>`): for a desktop assistant on one
//!   machine, acting for the one user named on the command line. Whoever can start the binary
//!   with access to the database is trusted as that user.
//!
//! A tool's failure (not found, invalid input, a `user_id` that is not the caller) is a tool
//! result with `isError: true` and a sentence the model can act on, never a protocol error.
//! Another user's task is "not found", as in REST.
//!
//! A message that is not one JSON-RPC 2.0 message MCP allows is a protocol error, answered over
//! HTTP with the JSON-RPC error the specification names and status 400 (`check_message`):
//! `-32700` for a body that is not JSON, `-32600` for a batch, a null or fractional `id`, a
//! `jsonrpc` other than `"2.0"`, `-32602` for params a method cannot take (tool arguments that
//! are not an object). The transport's own refusals (405, 406, 413, 415) carry a JSON-RPC error
//! body too (`as_jsonrpc`).

use std::sync::Arc;

use poem::http::{HeaderValue, Method, StatusCode, header};
use poem::web::Json as PoemJson;
use poem::{Endpoint, EndpointExt, IntoResponse, Request, RequestBody, Response, handler};
use rmcp::handler::server::common::schema_for_type;
use rmcp::handler::server::router::tool::ToolRouter;
use rmcp::model::{
    CallToolRequestMethod, CallToolResult, ClientJsonRpcMessage, ClientRequest, ConstString,
    ContentBlock, DiscoverRequestMethod, ErrorData, Implementation, InitializeResultMethod,
    JsonObject, JsonRpcError, ListToolsRequestMethod, PingRequestMethod, RequestId,
    ServerCapabilities, ServerConfig,
};
use rmcp::service::RequestContext;
use rmcp::transport::streamable_http_server::session::never::NeverSessionManager;
use rmcp::transport::streamable_http_server::{StreamableHttpServerConfig, StreamableHttpService};
use rmcp::{
    Json, RoleServer, ServerHandler, ServiceExt, schemars, tool, tool_handler, tool_router,
};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use todo_core::{
    Limit, ListQuery, Principal, SearchText, StatusFilter, Tag, TaskId, ValidationError,
};

use crate::AppState;
use crate::dto::{TaskDto, parse_create, parse_update};
use crate::plain;
use crate::problem::ApiError;

/// The most tasks `list_tasks` returns at once, and how many when `limit` is not given.
pub const LIST_MAX: i64 = 100;
/// How many tasks `list_tasks` returns when `limit` is not given.
pub const LIST_DEFAULT: i64 = 50;
/// The largest MCP request body accepted (tool arguments are small: a title, a description of
/// at most 1000 characters, at most 20 tags).
pub const MAX_BODY_BYTES: usize = 64 * 1024;

/// The tool server: the store, and who it acts for on stdio (over HTTP, each request's own
/// principal).
#[derive(Clone)]
pub struct TodoMcp {
    state: Arc<AppState>,
    stdio_user: Option<Principal>,
    tool_router: ToolRouter<Self>,
}

/// The principal the `/mcp` middleware authenticated, carried to the tools in the HTTP
/// request's extensions.
#[derive(Clone, Debug)]
struct Caller(Principal);

/// Arguments of `add_task` (for the schema; the arguments are read by the REST body parser).
#[derive(schemars::JsonSchema)]
#[allow(dead_code)]
struct AddTaskArgs {
    /// The task's title, 1 to 200 characters.
    title: String,
    /// Longer notes, at most 1000 characters.
    description: Option<String>,
    /// `low`, `medium` (the default) or `high`.
    priority: Option<PriorityArg>,
    /// When it is due: RFC 3339 (`2030-01-31T17:00:00Z`) or a date (`2030-01-31`, its start in
    /// UTC).
    due_date: Option<String>,
    /// Labels, at most 20, each 1 to 50 characters; repeats that differ in case are merged.
    tags: Option<Vec<String>>,
    /// Repeat rule, an iCalendar RRULE such as `FREQ=WEEKLY;BYDAY=MO` (needs a due_date);
    /// completing the task then creates the next one.
    recurrence: Option<String>,
    /// Optional; if given, it must be the signed-in user's id.
    user_id: Option<String>,
    /// The plain fields.
    #[serde(flatten)]
    fields: PlainToolFields<1>,
}

/// Arguments of `update_task`.
#[derive(schemars::JsonSchema)]
#[allow(dead_code)]
struct UpdateTaskArgs {
    /// The task's id (from `list_tasks` or `add_task`).
    task_id: i64,
    /// New title, 1 to 200 characters.
    title: Option<String>,
    /// New description; null clears it.
    description: Option<String>,
    /// `low`, `medium` or `high`.
    priority: Option<PriorityArg>,
    /// New due date (RFC 3339 or a date); null clears it.
    due_date: Option<String>,
    /// The new full list of tags (replaces the old ones); `[]` removes all.
    tags: Option<Vec<String>>,
    /// New repeat rule (RRULE); null stops the repetition.
    recurrence: Option<String>,
    /// `true` marks the task done, `false` reopens it.
    completed: Option<bool>,
    /// Optional; if given, it must be the signed-in user's id.
    user_id: Option<String>,
    /// The plain fields.
    #[serde(flatten)]
    fields: PlainToolFields<2>,
}

/// Arguments of `complete_task` and `delete_task`.
#[derive(Deserialize, schemars::JsonSchema)]
#[allow(dead_code)]
struct TaskIdArgs {
    /// The task's id (from `list_tasks` or `add_task`).
    task_id: i64,
    /// Optional; if given, it must be the signed-in user's id.
    user_id: Option<String>,
}

/// Arguments of `list_tasks`.
#[derive(Deserialize, schemars::JsonSchema)]
#[allow(dead_code)]
struct ListTasksArgs {
    /// `all` (the default), `pending` or `completed`.
    status: Option<StatusArg>,
    /// Only tasks whose title or description contains this text (any case).
    q: Option<String>,
    /// Only tasks carrying this tag (any case).
    tag: Option<String>,
    /// How many tasks at most, 1 to 100 (default 50), newest first.
    limit: Option<i64>,
    /// Optional; if given, it must be the signed-in user's id.
    user_id: Option<String>,
}

#[derive(Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "lowercase")]
#[allow(dead_code)]
enum PriorityArg {
    Low,
    Medium,
    High,
}

#[derive(Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "lowercase")]
#[allow(dead_code)]
enum StatusArg {
    All,
    Pending,
    Completed,
}

/// What a tool did to a task.
#[derive(Debug, Serialize, Deserialize, schemars::JsonSchema, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum Action {
    /// `add_task` created it.
    Created,
    /// `complete_task` marked it done.
    Completed,
    /// `delete_task` removed it.
    Deleted,
    /// `update_task` changed it.
    Updated,
}

/// The result of `add_task`, `complete_task`, `delete_task` and `update_task`.
#[derive(Debug, Serialize, Deserialize, schemars::JsonSchema)]
pub struct TaskAction {
    /// The task's id.
    pub task_id: i64,
    /// What was done.
    pub status: Action,
    /// The task's title.
    pub title: String,
}

/// The structured result of `list_tasks` (its text is the bare array of tasks).
#[derive(Debug, Serialize, schemars::JsonSchema)]
pub struct TaskList {
    /// The tasks, newest first.
    pub tasks: Vec<McpTask>,
}

/// A task as the tools return it: the REST API's task JSON.
#[derive(Debug, Serialize, schemars::JsonSchema)]
#[schemars(transparent)]
#[serde(transparent)]
pub struct McpTask(#[schemars(with = "TaskSchema")] TaskDto);

/// The schema of a task (the fields of the REST API's task JSON).
#[derive(schemars::JsonSchema)]
#[allow(dead_code)]
struct TaskSchema {
    /// Task id.
    id: i64,
    /// The owner's user id.
    user_id: String,
    /// Title.
    title: String,
    /// Description, or null.
    description: Option<String>,
    /// Whether the task is done.
    completed: bool,
    /// `pending` or `completed`.
    status: String,
    /// `low`, `medium` or `high`.
    priority: String,
    /// Due date (RFC 3339, UTC), or null.
    due_date: Option<String>,
    /// Creation time (RFC 3339, UTC).
    created_at: String,
    /// Last update time (RFC 3339, UTC).
    updated_at: String,
    /// When the task was completed (RFC 3339, UTC), or null.
    completed_at: Option<String>,
    /// Tags.
    tags: Vec<String>,
    /// Repeat rule (RRULE), or null.
    recurrence: Option<String>,
    /// The plain fields.
    #[serde(flatten)]
    fields: PlainToolFields<0>,
}

/// A tool's failure: a sentence for the model (becomes `isError: true`). The tools spell out
/// `Result<Json<_>, String>`, which rmcp's macro reads to publish their output schemas.
type ToolResult<T> = Result<T, String>;

impl TodoMcp {
    /// A tool server over `state`. `stdio_user` is who it acts for when there is no HTTP request
    /// to take the caller from (stdio); over HTTP it is `None` and each call acts for its
    /// request's authenticated caller.
    pub fn new(state: Arc<AppState>, stdio_user: Option<Principal>) -> Self {
        Self {
            state,
            stdio_user,
            tool_router: Self::tool_router(),
        }
    }

    /// Who this call acts for: the HTTP request's authenticated caller, or the stdio user; and
    /// the `user_id` argument, when given, must name them.
    fn caller(&self, ctx: &RequestContext<RoleServer>, args: &JsonObject) -> ToolResult<Principal> {
        let from_http = ctx
            .extensions
            .get::<poem::http::request::Parts>()
            .and_then(|p| p.extensions.get::<Caller>())
            .map(|c| c.0.clone());
        let who = from_http
            .or_else(|| self.stdio_user.clone())
            .ok_or_else(|| "not signed in".to_owned())?;
        match args.get("user_id") {
            None | Some(Value::Null) => Ok(who),
            Some(Value::String(u)) if u == who.user_id().as_str() => Ok(who),
            Some(_) => Err(
                "user_id is not the signed-in user: tools act only for the signed-in user; \
                 leave user_id out"
                    .to_owned(),
            ),
        }
    }
}

/// Refuses arguments the tool does not take (a misspelt field would otherwise be ignored):
/// `allowed`, and the plain fields ([`todo_core::FIELDS`]) for the tools that write a task.
fn only(args: &JsonObject, allowed: &[&'static str], plain_fields: bool) -> ToolResult<()> {
    let takes = |k: &str| allowed.contains(&k) || (plain_fields && plain::names().any(|n| n == k));
    match args.keys().find(|k| !takes(k)) {
        Some(k) => {
            let mut all: Vec<&str> = allowed.to_vec();
            if plain_fields {
                all.extend(plain::names());
            }
            Err(format!(
                "unknown argument `{k}`; this tool takes: {}",
                all.join(", ")
            ))
        }
        None => Ok(()),
    }
}

/// The plain fields ([`todo_core::FIELDS`]) in a tool's schema, as the contract documents them
/// on `SURFACE` (0: a task returned, 1: a create, 2: an update); flattened into the argument
/// and result types.
struct PlainToolFields<const SURFACE: u8>;

impl<const SURFACE: u8> schemars::JsonSchema for PlainToolFields<SURFACE> {
    fn schema_name() -> std::borrow::Cow<'static, str> {
        std::borrow::Cow::Owned(format!("PlainToolFields{SURFACE}"))
    }

    fn inline_schema() -> bool {
        true
    }

    fn json_schema(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
        let surface = match SURFACE {
            0 => plain::Surface::Read,
            1 => plain::Surface::Create,
            _ => plain::Surface::Update,
        };
        let mut schema = serde_json::Map::new();
        schema.insert("type".into(), "object".into());
        schema.insert("properties".into(), serde_json::Map::new().into());
        plain::add_to_tool_schema(&mut schema, surface);
        schema.into()
    }
}

/// The `task_id` argument.
fn task_id(args: &JsonObject) -> ToolResult<TaskId> {
    match args.get("task_id") {
        Some(v) => v
            .as_i64()
            .or_else(|| v.as_str().and_then(|s| s.trim().parse().ok()))
            .filter(|id| *id > 0)
            .ok_or_else(|| "task_id must be a positive integer".to_owned()),
        None => Err("task_id is required".to_owned()),
    }
}

/// The arguments that are task fields, for the REST body parser.
fn fields(args: &JsonObject) -> Map<String, Value> {
    args.iter()
        .filter(|(k, _)| !matches!(k.as_str(), "task_id" | "user_id"))
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect()
}

/// A validation failure as one sentence naming each field.
fn invalid(e: &ValidationError) -> String {
    let parts: Vec<String> = e
        .errors
        .iter()
        .map(|f| format!("{} {}", f.field, f.message))
        .collect();
    format!("invalid input: {}", parts.join("; "))
}

/// A store failure as a sentence; server-side causes are logged, never sent.
fn store_error(e: todo_core::Error, id: Option<TaskId>) -> String {
    use todo_core::Error as E;
    match e {
        E::NotFound => match id {
            Some(id) => format!("task {id} not found (list_tasks shows the user's tasks)"),
            None => "not found".to_owned(),
        },
        E::Validation(v) => invalid(&v),
        E::QuotaExceeded { what, limit } => {
            format!("quota reached: at most {limit} {what} per user")
        }
        E::Busy => "too many searches are running for this user; retry shortly".to_owned(),
        other => {
            // Logs the cause the way the REST routes do; the model gets a sentence.
            let status = match ApiError::from(other) {
                ApiError::Unavailable(..) => "temporarily unavailable",
                ApiError::InsufficientStorage(..) => "out of storage space; nothing was changed",
                _ => "failed on the server",
            };
            format!("the task store is {status}; try again later")
        }
    }
}

fn action(task: &todo_core::Task, status: Action) -> Json<TaskAction> {
    Json(TaskAction {
        task_id: task.id,
        status,
        title: task.title.clone(),
    })
}

#[tool_router]
impl TodoMcp {
    /// Creates a task.
    #[tool(
        description = "Create a task for the signed-in user. Returns its task_id.",
        input_schema = schema_for_type::<AddTaskArgs>()
    )]
    async fn add_task(
        &self,
        ctx: RequestContext<RoleServer>,
        args: JsonObject,
    ) -> Result<Json<TaskAction>, String> {
        only(
            &args,
            &[
                "title",
                "description",
                "priority",
                "due_date",
                "tags",
                "recurrence",
                "user_id",
            ],
            true,
        )?;
        let who = self.caller(&ctx, &args)?;
        let new = parse_create(&fields(&args)).map_err(|e| invalid(&e))?;
        let created = self
            .state
            .store
            .create(&who, new, None)
            .await
            .map_err(|e| store_error(e, None))?;
        Ok(action(&created.task, Action::Created))
    }

    /// Lists tasks.
    #[tool(
        description = "List the signed-in user's tasks, newest first, as an array of tasks.",
        input_schema = schema_for_type::<ListTasksArgs>(),
        output_schema = rmcp::handler::server::tool::schema_for_output::<TaskList>(),
        annotations(read_only_hint = true)
    )]
    async fn list_tasks(
        &self,
        ctx: RequestContext<RoleServer>,
        args: JsonObject,
    ) -> ToolResult<CallToolResult> {
        only(&args, &["status", "q", "tag", "limit", "user_id"], false)?;
        let who = self.caller(&ctx, &args)?;
        let mut query = ListQuery {
            limit: Limit::new(LIST_DEFAULT).map_err(|e| invalid(&e))?,
            ..ListQuery::default()
        };
        let text = |name: &str| -> ToolResult<Option<&str>> {
            match args.get(name) {
                None | Some(Value::Null) => Ok(None),
                Some(Value::String(s)) => Ok(Some(s.as_str())),
                Some(_) => Err(format!("invalid input: {name} must be a string")),
            }
        };
        if let Some(s) = text("status")? {
            query.status = StatusFilter::parse(s).map_err(|e| invalid(&e))?;
        }
        if let Some(q) = text("q")? {
            query.search = SearchText::parse(q).map_err(|e| invalid(&e))?;
        }
        if let Some(t) = text("tag")? {
            query.tags = vec![Tag::parse_stored("tag", t).map_err(|e| invalid(&e))?];
        }
        match args.get("limit") {
            None | Some(Value::Null) => {}
            Some(v) => {
                let n = v
                    .as_i64()
                    .filter(|n| (1..=LIST_MAX).contains(n))
                    .ok_or_else(|| {
                        format!("invalid input: limit must be an integer from 1 to {LIST_MAX}")
                    })?;
                query.limit = Limit::new(n).map_err(|e| invalid(&e))?;
            }
        }
        let page = self
            .state
            .store
            .list(&who, &query)
            .await
            .map_err(|e| store_error(e, None))?;
        let tasks: Vec<McpTask> = page
            .tasks
            .into_iter()
            .map(|t| McpTask(TaskDto::from(t)))
            .collect();
        let array = serde_json::to_string(&tasks).map_err(|e| e.to_string())?;
        let structured = serde_json::to_value(TaskList { tasks }).map_err(|e| e.to_string())?;
        let mut result = CallToolResult::structured(structured);
        result.content = vec![ContentBlock::text(array)];
        Ok(result)
    }

    /// Completes a task.
    #[tool(
        description = "Mark a task done. A repeating task then gets its next occurrence.",
        input_schema = schema_for_type::<TaskIdArgs>(),
        annotations(idempotent_hint = true)
    )]
    async fn complete_task(
        &self,
        ctx: RequestContext<RoleServer>,
        args: JsonObject,
    ) -> Result<Json<TaskAction>, String> {
        only(&args, &["task_id", "user_id"], false)?;
        let who = self.caller(&ctx, &args)?;
        let id = task_id(&args)?;
        let task = self
            .state
            .store
            .set_completed(&who, id, Some(true), None)
            .await
            .map_err(|e| store_error(e, Some(id)))?;
        Ok(action(&task, Action::Completed))
    }

    /// Deletes a task.
    #[tool(
        description = "Delete a task for good.",
        input_schema = schema_for_type::<TaskIdArgs>(),
        annotations(destructive_hint = true)
    )]
    async fn delete_task(
        &self,
        ctx: RequestContext<RoleServer>,
        args: JsonObject,
    ) -> Result<Json<TaskAction>, String> {
        only(&args, &["task_id", "user_id"], false)?;
        let who = self.caller(&ctx, &args)?;
        let id = task_id(&args)?;
        // The title is part of the answer: read it first (a task deleted in between is not
        // found by the delete, so the answer never names a task that was not deleted).
        let task = self
            .state
            .store
            .get(&who, id)
            .await
            .map_err(|e| store_error(e, Some(id)))?;
        self.state
            .store
            .delete(&who, id, Some(task.version))
            .await
            .map_err(|e| match e {
                todo_core::Error::VersionMismatch { .. } => {
                    "the task changed while it was being deleted; try again".to_owned()
                }
                e => store_error(e, Some(id)),
            })?;
        Ok(action(&task, Action::Deleted))
    }

    /// Updates a task.
    #[tool(
        description = "Change a task: only the fields given change; null clears description, \
                       due_date, recurrence or any other field that may be empty.",
        input_schema = schema_for_type::<UpdateTaskArgs>()
    )]
    async fn update_task(
        &self,
        ctx: RequestContext<RoleServer>,
        args: JsonObject,
    ) -> Result<Json<TaskAction>, String> {
        only(
            &args,
            &[
                "task_id",
                "title",
                "description",
                "priority",
                "due_date",
                "tags",
                "recurrence",
                "completed",
                "user_id",
            ],
            true,
        )?;
        let who = self.caller(&ctx, &args)?;
        let id = task_id(&args)?;
        let patch = parse_update(&fields(&args)).map_err(|e| invalid(&e))?;
        let task = self
            .state
            .store
            .patch(&who, id, patch, None)
            .await
            .map_err(|e| store_error(e, Some(id)))?;
        Ok(action(&task, Action::Updated))
    }
}

#[tool_handler(router = self.tool_router)]
impl ServerHandler for TodoMcp {
    fn get_info(&self) -> ServerConfig {
        ServerConfig::new(ServerCapabilities::builder().enable_tools().build())
            .with_server_info(Implementation::new("todo", env!("CARGO_PKG_VERSION")))
            .with_instructions(
                "The signed-in user's task list. Tools act only for that user; task ids come \
                 from list_tasks or add_task.",
            )
    }
}

/// The `/mcp` endpoint: rmcp's Streamable HTTP service (stateless, JSON answers), behind the
/// same authentication as the REST routes.
pub fn endpoint(state: Arc<AppState>) -> impl Endpoint {
    let template = TodoMcp::new(state, None);
    let service = StreamableHttpService::new(
        move || Ok(template.clone()),
        Arc::new(NeverSessionManager::default()),
        StreamableHttpServerConfig::default()
            .with_legacy_session_mode(false)
            .with_json_response(true)
            .with_max_request_body_bytes(MAX_BODY_BYTES)
            // rmcp's Host allow-list guards servers that trust any local caller (DNS
            // rebinding); here every request must carry the user's own credential, and the
            // server runs under real host names behind proxies.
            .disable_allowed_hosts(),
    );
    poem::endpoint::TowerCompatExt::compat(service)
        .around(jsonrpc_guard)
        .around(authenticate)
}

/// The methods this server answers whose params rmcp reads into its own types. A request for
/// one of them whose params do not fit those types falls through rmcp to a custom request,
/// answered "method not found"; [`check_message`] answers it as the invalid params it is.
const METHODS: [&str; 5] = [
    InitializeResultMethod::VALUE,
    PingRequestMethod::VALUE,
    DiscoverRequestMethod::VALUE,
    ListToolsRequestMethod::VALUE,
    CallToolRequestMethod::VALUE,
];

/// A message refused before rmcp reads it: the HTTP status, the request's id when it could be
/// read, and the JSON-RPC error.
#[derive(Debug)]
struct Refusal {
    status: StatusCode,
    id: Option<RequestId>,
    error: ErrorData,
}

impl Refusal {
    fn new(id: Option<RequestId>, error: ErrorData) -> Self {
        Self {
            status: StatusCode::BAD_REQUEST,
            id,
            error,
        }
    }

    fn into_response(self) -> Response {
        jsonrpc_error(self.status, self.id, self.error)
    }
}

/// A JSON-RPC error response with `status`; no `id` when it could not be read (as MCP writes
/// such errors).
fn jsonrpc_error(status: StatusCode, id: Option<RequestId>, error: ErrorData) -> Response {
    let body = serde_json::to_vec(&JsonRpcError::new(id, error)).unwrap_or_default();
    Response::builder()
        .status(status)
        .content_type("application/json")
        .body(body)
}

/// Checks that `body` is one JSON-RPC 2.0 message MCP allows: JSON (else `-32700`), one object
/// rather than a batch, an `id` that is a string or an integer (MCP forbids null),
/// `"jsonrpc": "2.0"`, a string `method` (else `-32600`), `params` an object, and for a method
/// this server answers, params rmcp can read (else `-32602`). Returns the message's id.
fn check_message(body: &[u8]) -> Result<Option<RequestId>, Refusal> {
    let invalid = |id: Option<RequestId>, message: String| {
        Refusal::new(id, ErrorData::invalid_request(message, None))
    };
    let value: Value = serde_json::from_slice(body).map_err(|e| {
        Refusal::new(
            None,
            ErrorData::parse_error(format!("the body is not JSON: {e}"), None),
        )
    })?;
    let message = match value {
        Value::Object(message) => message,
        Value::Array(_) => {
            return Err(invalid(
                None,
                "JSON-RPC batches are not supported: send one message per request".to_owned(),
            ));
        }
        _ => {
            return Err(invalid(
                None,
                "the body must be one JSON-RPC message, an object".to_owned(),
            ));
        }
    };
    let id = match message.get("id") {
        None => None,
        Some(v) => Some(
            v.as_str()
                .map(|s| RequestId::String(s.into()))
                .or_else(|| v.as_i64().map(RequestId::Number))
                .ok_or_else(|| invalid(None, "id must be a string or an integer".to_owned()))?,
        ),
    };
    if message.get("jsonrpc").and_then(Value::as_str) != Some("2.0") {
        return Err(invalid(id, "jsonrpc must be \"2.0\"".to_owned()));
    }
    let params = message.get("params").filter(|p| !p.is_null()).cloned();
    match message.get("method") {
        Some(Value::String(method)) if params.as_ref().is_some_and(|p| !p.is_object()) => {
            return Err(Refusal::new(
                id,
                ErrorData::invalid_params(
                    format!("the params of {method} must be an object"),
                    None,
                ),
            ));
        }
        Some(Value::String(_)) | None => {}
        Some(_) => return Err(invalid(id, "method must be a string".to_owned())),
    }
    let parsed: ClientJsonRpcMessage =
        serde_json::from_value(Value::Object(message)).map_err(|e| {
            invalid(
                id.clone(),
                format!("not a JSON-RPC message MCP defines: {e}"),
            )
        })?;
    if let ClientJsonRpcMessage::Request(request) = &parsed
        && let ClientRequest::CustomRequest(custom) = &request.request
        && METHODS.contains(&custom.method.as_str())
    {
        let why = params_problem(&custom.method, params.as_ref());
        return Err(Refusal::new(id, ErrorData::invalid_params(why, None)));
    }
    Ok(id)
}

/// What is wrong with the params of a request for one of [`METHODS`] that rmcp could not read.
fn params_problem(method: &str, params: Option<&Value>) -> String {
    if method == CallToolRequestMethod::VALUE {
        let name = params.and_then(|p| p.get("name"));
        let arguments = params.and_then(|p| p.get("arguments"));
        if !name.is_some_and(Value::is_string) {
            return "tools/call needs params.name, the tool's name".to_owned();
        }
        if arguments.is_some_and(|a| !a.is_object() && !a.is_null()) {
            return "tools/call arguments must be an object".to_owned();
        }
    }
    format!("the params of {method} do not match its schema")
}

/// In front of rmcp: a POST with a JSON body has it read within the body limits (64 KiB) and
/// checked as one JSON-RPC message ([`check_message`]); and every refusal is a JSON-RPC error
/// ([`as_jsonrpc`]).
async fn jsonrpc_guard<E: Endpoint>(next: Arc<E>, mut req: Request) -> poem::Result<Response> {
    let mut id = None;
    let mut _share = None;
    if req.method() == Method::POST && req.content_type().is_some_and(crate::payload::is_json) {
        let mut body = RequestBody::new(req.take_body());
        let (bytes, share) = match crate::payload::read_bytes(&req, &mut body, MAX_BODY_BYTES).await
        {
            Ok(read) => read,
            Err(e) => return Ok(as_jsonrpc(e.into_response(), None).await),
        };
        match check_message(&bytes) {
            Ok(found) => id = found,
            Err(refusal) => return Ok(refusal.into_response()),
        }
        // Held until rmcp has answered (it parses the bytes again).
        _share = share;
        req.set_body(bytes);
    }
    let resp = next.call(req).await?.into_response();
    Ok(as_jsonrpc(resp, id).await)
}

/// `resp` unchanged unless it is a refusal without a JSON body (rmcp's plain-text 405, 406,
/// 415 or 500, or a problem document from the body limits: 408, 413, 503); then the same
/// status and headers with a JSON-RPC error: `-32600` for a 4xx, `-32603` for a 5xx (whose
/// cause is logged, never sent).
async fn as_jsonrpc(resp: Response, id: Option<RequestId>) -> Response {
    let status = resp.status();
    let content_type = crate::problem::content_type(&resp).to_owned();
    if !(status.is_client_error() || status.is_server_error())
        || content_type.starts_with("application/json")
    {
        return resp;
    }
    let (mut parts, body) = resp.into_parts();
    let text = body.into_string().await.unwrap_or_default();
    let problem = content_type
        .starts_with(crate::problem::PROBLEM_JSON)
        .then(|| serde_json::from_str::<Value>(&text).ok())
        .flatten();
    let error = if status == StatusCode::PAYLOAD_TOO_LARGE {
        ErrorData::invalid_request(
            format!("the request body is larger than {MAX_BODY_BYTES} bytes"),
            None,
        )
    } else if let Some(detail) = problem.as_ref().and_then(|p| p["detail"].as_str()) {
        if status.is_server_error() {
            ErrorData::internal_error(detail.to_owned(), None)
        } else {
            ErrorData::invalid_request(detail.to_owned(), None)
        }
    } else if status.is_server_error() {
        ErrorData::internal_error("an unexpected error occurred", None)
    } else if text.trim().is_empty() {
        let reason = status
            .canonical_reason()
            .unwrap_or("the request was refused");
        ErrorData::invalid_request(reason, None)
    } else {
        ErrorData::invalid_request(text.trim().to_owned(), None)
    };
    parts.headers.remove(header::CONTENT_LENGTH);
    let mut out = jsonrpc_error(status, id, error);
    let content_type = out.headers().get(header::CONTENT_TYPE).cloned();
    for (name, value) in parts.headers.iter() {
        out.headers_mut().insert(name.clone(), value.clone());
    }
    if let Some(content_type) = content_type {
        out.headers_mut().insert(header::CONTENT_TYPE, content_type);
    }
    out
}

/// Authenticates an `/mcp` request like a REST request; the caller rides in the request's
/// extensions to the tools. A 401 also names the protected resource metadata (RFC 9728), as the
/// MCP authorization spec asks.
async fn authenticate<E: Endpoint>(next: Arc<E>, mut req: Request) -> poem::Result<Response> {
    let Some(state) = req.data::<Arc<AppState>>().cloned() else {
        return Ok(ApiError::internal().into_poem().into_response());
    };
    match crate::api::authenticate(&req, &state).await {
        Ok(who) => {
            req.extensions_mut().insert(Caller(who));
            Ok(next.call(req).await?.into_response())
        }
        Err(ApiError::Unauthorized(body, challenge)) => {
            let metadata = format!("{}/.well-known/oauth-protected-resource", origin(&req));
            let mut resp = ApiError::Unauthorized(body, challenge.clone())
                .into_poem()
                .into_response();
            let value = format!("{challenge}, resource_metadata=\"{metadata}\"");
            if let Ok(v) = HeaderValue::from_str(&value) {
                resp.headers_mut().insert(header::WWW_AUTHENTICATE, v);
            }
            Ok(resp)
        }
        Err(e) => Ok(e.into_poem().into_response()),
    }
}

/// `scheme://host` the client used: `X-Forwarded-Proto` (set by the TLS-terminating proxy) or
/// `http`, and the `Host` header.
fn origin(req: &Request) -> String {
    let proto = req
        .headers()
        .get("x-forwarded-proto")
        .and_then(|v| v.to_str().ok())
        .filter(|p| *p == "https")
        .unwrap_or("http");
    let host = req
        .headers()
        .get(header::HOST)
        .and_then(|v| v.to_str().ok())
        .filter(|h| {
            !h.is_empty()
                && h.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b".-:[]".contains(&b))
        })
        .unwrap_or("localhost");
    format!("{proto}://{host}")
}

/// OAuth 2.0 protected resource metadata (RFC 9728) for `/mcp`: where MCP clients learn which
/// authorization server issues the tokens it accepts (the configured `JWT_ISSUER`, when there
/// is one) and that tokens go in the `Authorization` header.
#[handler]
pub fn resource_metadata(req: &Request) -> Response {
    let issuer = req
        .data::<Arc<AppState>>()
        .and_then(|s| s.authorization_server.clone());
    let mut doc = serde_json::json!({
        "resource": format!("{}/mcp", origin(req)),
        "bearer_methods_supported": ["header"],
        "resource_name": "todo",
    });
    if let (Some(issuer), Some(map)) = (issuer, doc.as_object_mut()) {
        map.insert("authorization_servers".into(), serde_json::json!([issuer]));
    }
    let mut resp = PoemJson(doc).into_response();
    resp.set_status(StatusCode::OK);
    resp
}

/// Serves the tools over stdin/stdout for `user` until the client closes stdin; a client that
/// closes it before the handshake ends (or an empty stdin) is a quiet end, not an error.
pub async fn serve_stdio(state: Arc<AppState>, user: Principal) -> Result<(), String> {
    let running = match TodoMcp::new(state, Some(user))
        .serve(rmcp::transport::stdio())
        .await
    {
        Ok(running) => running,
        Err(rmcp::service::ServerInitializeError::ConnectionClosed(_)) => return Ok(()),
        Err(e) => return Err(format!("MCP over stdio could not start: {e}")),
    };
    running
        .waiting()
        .await
        .map(|_| ())
        .map_err(|e| format!("MCP over stdio stopped: {e}"))
}
