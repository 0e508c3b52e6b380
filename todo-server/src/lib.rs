//! # todo-server
//!
//! A thin HTTP layer over [`todo_core`]: a poem-openapi service that is a drop-in backend for
//! Next.js + Better Auth todo apps (`/api/{user_id}/tasks...`, same JSON as the FastAPI
//! backends), and that serves its own OpenAPI contract at `/openapi.json` and Swagger UI at
//! `/docs`. `main.rs` only boots; everything lives here so tests and embedders can build the app.
#![forbid(unsafe_code)]
// `ApiError` is the response enum poem-openapi documents; it is built at most once per request,
// so its size does not matter and boxing it would only obscure the contract.
#![allow(clippy::result_large_err)]

pub mod accounts_api;
pub mod api;
pub mod config;
pub mod dialect;
pub mod dto;
pub mod mcp;
pub mod net;
pub mod params;
pub mod payload;
pub mod plain;
pub mod problem;
pub mod ratelimit;
pub mod routes;
pub mod security;

use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use poem::middleware::{Cors, NormalizePath, TrailingSlash};
use poem::web::Json as PoemJson;
use poem::{
    Endpoint, EndpointExt, IntoEndpoint, IntoResponse, Request, Response, Route, get, handler,
};
use poem_openapi::OpenApiService;
use todo_core::{
    Authenticator, DynTaskStore, JwtAuthenticator, JwtRules, StoreOptions, TokenIssuer,
};

use crate::config::{Config, Secret};
use crate::problem::ApiError;

/// What every request handler shares.
pub struct AppState {
    /// The task store.
    pub store: DynTaskStore,
    /// Verifies bearer tokens.
    pub authenticator: Arc<dyn Authenticator>,
    /// Built-in accounts, when enabled.
    pub accounts: Option<Arc<dyn todo_core::AccountStore>>,
    /// Signs the built-in accounts' tokens.
    pub issuer: Arc<TokenIssuer>,
    /// Whether Better Auth's session cookie is accepted when there is no `Authorization` header.
    pub cookie_auth: bool,
    /// Deadline and memory budget for request bodies.
    pub bodies: payload::BodyLimits,
    /// Attempt limits on login and registration, when on.
    pub auth_limits: Option<ratelimit::AuthRateLimits>,
    /// How the client's address is told (socket, or a trusted proxy's `X-Forwarded-For`).
    pub client_address: ratelimit::ClientAddress,
    /// The issuer of the tokens accepted (`JWT_ISSUER`), named as the authorization server in
    /// `/mcp`'s protected resource metadata.
    pub authorization_server: Option<String>,
    /// How answers are shaped (`LIST_ENVELOPE`, `JSON_CASE`, ...); the API's own by default.
    pub dialect: Arc<dialect::Dialect>,
}

impl AppState {
    /// State for a store and an HS256 secret with default rules: what tests and embedders
    /// usually want. Built-in accounts are on.
    pub fn for_secret(store: todo_core::Store, secret: &[u8]) -> Self {
        Self {
            store: store.tasks,
            authenticator: Arc::new(JwtAuthenticator::shared_secret(
                secret,
                &JwtRules::default(),
            )),
            accounts: Some(store.accounts),
            issuer: Arc::new(TokenIssuer::hs256(
                secret,
                None,
                None,
                Duration::from_secs(24 * 60 * 60),
            )),
            cookie_auth: false,
            bodies: payload::BodyLimits::default(),
            auth_limits: None,
            client_address: ratelimit::ClientAddress::default(),
            authorization_server: None,
            dialect: Arc::default(),
        }
    }
}

/// The OpenAPI service, as mounted under `/api`: each operation at its own path; the aliases
/// ([`routes::ALIASES`]) reach them through [`routes::Aliases`] and are documented by
/// [`openapi_json`].
pub fn openapi(
    state: &Arc<AppState>,
) -> OpenApiService<(api::TasksApi, api::TagsApi, accounts_api::AuthApi), ()> {
    OpenApiService::new(
        (
            api::TasksApi {
                state: state.clone(),
            },
            api::TagsApi {
                state: state.clone(),
            },
            accounts_api::AuthApi {
                state: state.clone(),
            },
        ),
        "todo",
        env!("CARGO_PKG_VERSION"),
    )
    .description(
        "A fast, secure, multi-user task backend: a drop-in replacement for the FastAPI + \
         SQLModel backends of Next.js + Better Auth todo apps.",
    )
    .server("/api")
}

/// The OpenAPI contract as JSON (what `/openapi.json` serves): as the state's dialect answers.
pub fn openapi_json(state: &Arc<AppState>) -> String {
    contract(state, &openapi(state).spec())
}

/// The contract served for the `generated` one: every alias documented, as the dialect answers.
fn contract(state: &AppState, generated: &str) -> String {
    state.dialect.contract(&routes::document(generated))
}

#[handler]
fn healthz() -> PoemJson<serde_json::Value> {
    PoemJson(serde_json::json!({"status": "ok"}))
}

#[handler]
async fn readyz(req: &Request) -> Response {
    let Some(state) = req.data::<Arc<AppState>>() else {
        return ApiError::internal().into_poem().into_response();
    };
    match state.store.ping().await {
        Ok(()) => {
            PoemJson(serde_json::json!({"status": "ready", "database": state.store.backend()}))
                .into_response()
        }
        Err(e) => ApiError::from(e).into_poem().into_response(),
    }
}

/// The methods a path answers, for the `Allow` header of a 405 (RFC 9110 requires it).
fn allowed_methods(path: &str) -> Option<&'static str> {
    const COLLECTION: &str = "GET, POST";
    const ITEM: &str = "GET, PUT, PATCH, DELETE";
    let segments: Vec<&str> = path.trim_end_matches('/').split('/').skip(1).collect();
    match segments.as_slice() {
        ["api", "tasks"] | ["api", _, "tasks"] => Some(COLLECTION),
        ["api", "tasks", "tags" | "stats"] | ["api", _, "tasks", "tags" | "stats"] => Some("GET"),
        ["api", _, "stats"] => Some("GET"),
        ["api", "tasks", "tags", _] | ["api", _, "tasks", "tags", _] => Some("PATCH, DELETE"),
        ["api", "tasks", _] | ["api", _, "tasks", _] => Some(ITEM),
        ["api", "tasks", _, "complete"] | ["api", _, "tasks", _, "complete"] => Some("PATCH"),
        ["api", "auth", "register" | "login" | "signup"] => Some("POST"),
        ["api", "auth", "me"] => Some("GET"),
        ["healthz" | "health" | "readyz" | "openapi.json"] => Some("GET"),
        ["mcp"] => Some("POST"),
        _ => None,
    }
}

/// Logs one line per request (method, path, status, latency, request id; never headers, so never
/// a token), returns the request id in `X-Request-Id`, names the allowed methods on a 405, and
/// adds the security headers ([`security`]).
async fn log_requests<E: Endpoint>(ep: Arc<E>, req: Request) -> poem::Result<Response> {
    use std::sync::atomic::{AtomicU64, Ordering};
    static NEXT_ID: AtomicU64 = AtomicU64::new(1);
    let id = req
        .headers()
        .get("x-request-id")
        .and_then(|v| v.to_str().ok())
        .filter(|v| v.len() <= 64 && v.bytes().all(|b| b.is_ascii_graphic()))
        .map(str::to_owned)
        .unwrap_or_else(|| format!("{:x}", NEXT_ID.fetch_add(1, Ordering::Relaxed)));
    // Skip the bookkeeping entirely when request logs are filtered out (e.g. RUST_LOG=warn).
    let log = tracing::enabled!(tracing::Level::INFO);
    let what = log.then(|| {
        (
            req.method().clone(),
            req.uri().path().to_owned(),
            Instant::now(),
        )
    });
    // A cheap clone (reference-counted), kept to name the allowed methods on a 405.
    let uri = req.uri().clone();
    let mut resp = ep
        .call(req)
        .await
        .map(IntoResponse::into_response)
        .unwrap_or_else(|e| e.into_response());
    if resp.status() == poem::http::StatusCode::METHOD_NOT_ALLOWED
        && let Some(allow) = allowed_methods(uri.path())
    {
        resp.headers_mut().insert(
            poem::http::header::ALLOW,
            poem::http::HeaderValue::from_static(allow),
        );
    }
    security::apply(uri.path(), &mut resp).await;
    if let Some((method, path, started)) = what {
        let status = resp.status();
        let micros = started.elapsed().as_micros() as u64;
        if status.is_server_error() {
            tracing::warn!(request_id = %id, %method, %path, status = status.as_u16(), latency_us = micros, "request");
        } else {
            tracing::info!(request_id = %id, %method, %path, status = status.as_u16(), latency_us = micros, "request");
        }
    }
    if let Ok(v) = poem::http::HeaderValue::from_str(&id) {
        resp.headers_mut().insert("x-request-id", v);
    }
    Ok(resp)
}

/// Builds the whole application: API, contract, Swagger UI, health checks, CORS, error mapping.
pub fn app(state: Arc<AppState>, cors_origins: &[String]) -> impl Endpoint + use<> {
    let service = openapi(&state);
    // The contract with every alias (and as the dialect answers), served and shown in place of
    // the generated one.
    let (spec, ui) = {
        let generated = service.spec();
        let contract = contract(&state, &generated);
        let html = service.swagger_ui_html().replacen(&generated, &contract, 1);
        let spec = poem::endpoint::make_sync(move |_| {
            Response::builder()
                .content_type("application/json")
                .body(contract.clone())
        });
        let ui = poem::endpoint::make_sync(move |_| poem::web::Html(html.clone()));
        (
            spec.map_to_response().boxed(),
            Route::new().at("/", ui).map_to_response().boxed(),
        )
    };
    let service = service.into_endpoint().with(routes::Aliases).with_if(
        state.dialect.rewrites_answers(),
        dialect::Rewrite(state.dialect.clone()),
    );
    let cors = Cors::new()
        .allow_origins(cors_origins.iter().map(String::as_str))
        .allow_credentials(true)
        .allow_methods(["GET", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"])
        // No list of headers: a preflight from an allowed origin gets the headers it asks for
        // echoed, as FastAPI's CORS middleware does, so a frontend that sends `Cache-Control`
        // or `X-Requested-With` is not blocked. The origin list is what guards.
        .expose_headers([
            "etag",
            "location",
            "x-next-cursor",
            "link",
            "x-request-id",
            "mcp-session-id",
            "www-authenticate",
        ])
        .max_age(600);
    Route::new()
        .nest("/api", service)
        .at("/openapi.json", spec)
        .nest("/docs", ui)
        .at("/healthz", get(healthz))
        .at("/health", get(healthz))
        .at("/readyz", get(readyz))
        .at("/mcp", mcp::endpoint(state.clone()))
        .at(
            "/.well-known/oauth-protected-resource",
            get(mcp::resource_metadata),
        )
        .at(
            "/.well-known/oauth-protected-resource/mcp",
            get(mcp::resource_metadata),
        )
        .catch_all_error(problem::catch_all)
        .with_if(!cors_origins.is_empty(), cors)
        .catch_all_error(problem::catch_all)
        .with(NormalizePath::new(TrailingSlash::Trim))
        .around(log_requests)
        .data(state)
}

/// Sends JWTs (three dot-separated parts) to the JWT authenticator and anything else (Better
/// Auth's opaque session tokens) to the session-table authenticator. Without a session table,
/// the JWT authenticator is used alone.
pub struct CredentialRouter {
    /// Verifies JWTs.
    pub jwt: Arc<dyn Authenticator>,
    /// Checks opaque session tokens.
    pub sessions: Arc<dyn Authenticator>,
}

#[async_trait::async_trait]
impl Authenticator for CredentialRouter {
    async fn authenticate(
        &self,
        token: &str,
    ) -> Result<todo_core::Principal, todo_core::AuthError> {
        if token.split('.').count() == 3 {
            self.jwt.authenticate(token).await
        } else {
            self.sessions.authenticate(token).await
        }
    }
}

/// Why the server could not start. Each is one clear line for the operator.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    /// A setting is invalid.
    #[error("configuration error: {0}")]
    Config(String),
    /// The database could not be opened.
    #[error("cannot open the database: {0}")]
    Database(String),
    /// The address could not be bound.
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        /// The address.
        addr: String,
        /// Why.
        source: std::io::Error,
    },
}

/// Minimum length of a shared secret.
pub const MIN_SECRET_BYTES: usize = 32;

/// The configured secret, or the one kept in `file` (created with a random value if missing).
pub fn load_or_create_secret(
    configured: Option<&Secret>,
    file: &Path,
) -> Result<Secret, StartError> {
    if let Some(s) = configured {
        if s.expose().len() < MIN_SECRET_BYTES {
            return Err(StartError::Config(format!(
                "BETTER_AUTH_SECRET must be at least {MIN_SECRET_BYTES} bytes"
            )));
        }
        return Ok(s.clone());
    }
    if let Ok(existing) = std::fs::read_to_string(file) {
        let existing = existing.trim();
        if existing.len() >= MIN_SECRET_BYTES {
            return Ok(Secret::new(existing));
        }
    }
    let secret = random_hex(32);
    write_private(file, &secret).map_err(|e| {
        StartError::Config(format!(
            "cannot write the generated secret to {}: {e}",
            file.display()
        ))
    })?;
    Ok(Secret::new(secret))
}

/// `n` random bytes as lowercase hex.
fn random_hex(n: usize) -> String {
    use rand::RngCore;
    let mut bytes = vec![0u8; n];
    rand::thread_rng().fill_bytes(&mut bytes);
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn write_private(path: &Path, contents: &str) -> std::io::Result<()> {
    use std::io::Write;
    let mut opts = std::fs::OpenOptions::new();
    opts.write(true).create(true).truncate(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        opts.mode(0o600);
    }
    let mut f = opts.open(path)?;
    f.write_all(contents.as_bytes())?;
    f.sync_all()
}

/// The validation rules for tokens from the configuration.
pub fn jwt_rules(config: &Config) -> JwtRules {
    JwtRules {
        issuer: config.issuer().map(|i| vec![i.to_owned()]),
        audience: config.audience().map(|a| vec![a.to_owned()]),
        leeway: Duration::from_secs(config.jwt_leeway_seconds),
    }
}

/// Opens the store and builds the shared state from the configuration.
pub async fn build_state(config: &Config) -> Result<(Arc<AppState>, Secret), StartError> {
    let url = config.database_url();
    if matches!(url.split('?').next(), Some("sqlite:" | "sqlite://")) {
        return Err(StartError::Config(
            "DATABASE_URL names no SQLite file (use e.g. sqlite://todo.db or sqlite::memory:)"
                .into(),
        ));
    }
    let dialect = dialect::Dialect::new(&config.dialect_settings()).map_err(StartError::Config)?;
    let secret = load_or_create_secret(config.better_auth_secret.as_ref(), &config.secret_file())?;
    let options = StoreOptions {
        max_connections: config.database_max_connections,
        read_connections: config.database_read_connections,
        cursor_secret: Some(secret.expose().to_vec()),
        sqlite_synchronous_full: config.sqlite_synchronous != "normal",
        sqlite_max_size_bytes: (config.sqlite_max_size_mb > 0)
            .then(|| config.sqlite_max_size_mb.saturating_mul(1 << 20)),
        password_hash_concurrency: config
            .password_hash_concurrency
            .and_then(|n| usize::try_from(n).ok()),
        max_tasks_per_user: (config.max_tasks_per_user > 0).then_some(config.max_tasks_per_user),
        max_idempotency_keys_per_user: (config.max_idempotency_keys_per_user > 0)
            .then_some(config.max_idempotency_keys_per_user),
        max_concurrent_scans_per_user: usize::try_from(config.max_concurrent_searches_per_user)
            .ok(),
        pooler: config.database_pooler,
        direct_url: config
            .database_direct_url
            .as_ref()
            .map(|url| url.expose_str().to_owned())
            .filter(|url| !url.is_empty()),
        ..StoreOptions::default()
    };
    let store = todo_core::open_store(config.database_url(), options)
        .await
        .map_err(|e| match e {
            todo_core::Error::Config(m) => StartError::Config(m),
            todo_core::Error::Unavailable(src) | todo_core::Error::Storage(src) => {
                StartError::Database(src.to_string())
            }
            other => StartError::Database(other.to_string()),
        })?;
    let mut builder = JwtAuthenticator::builder(jwt_rules(config)).shared_secret(secret.expose());
    if let Some(url) = config.jwks_url.as_deref().filter(|u| !u.is_empty()) {
        builder = builder.jwks_url(url);
    }
    let jwt: Arc<dyn Authenticator> = Arc::new(
        builder
            .build()
            .map_err(|e| StartError::Config(e.to_string()))?,
    );
    let authenticator: Arc<dyn Authenticator> = match session_authenticator(config).await? {
        Some(sessions) => Arc::new(CredentialRouter { jwt, sessions }),
        None => jwt,
    };
    let trusted = config
        .trusted_proxies
        .iter()
        .map(|p| p.trim())
        .filter(|p| !p.is_empty())
        .map(ratelimit::IpNet::parse)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| StartError::Config(format!("TRUSTED_PROXIES: {e}")))?;
    let issuer = Arc::new(token_issuer(
        config,
        &secret,
        Duration::from_secs(config.token_ttl_minutes.saturating_mul(60)),
    ));
    let accounts = config.builtin_accounts_enabled().then_some(store.accounts);
    Ok((
        Arc::new(AppState {
            store: store.tasks,
            authenticator,
            accounts,
            issuer,
            cookie_auth: config.cookie_auth,
            bodies: payload::BodyLimits::new(
                Duration::from_secs(config.body_read_timeout_secs),
                config.body_memory_budget_mib.saturating_mul(1 << 20),
            ),
            auth_limits: ratelimit::AuthRateLimits::new(
                config.auth_rate_per_ip,
                config.auth_rate_per_account,
            ),
            client_address: ratelimit::ClientAddress::new(trusted),
            authorization_server: config.issuer().map(str::to_owned),
            dialect: Arc::new(dialect),
        }),
        secret,
    ))
}

/// The session-table authenticator, when `SESSION_DATABASE_URL` is set: connected, and its table
/// and columns checked, so a wrong setting stops the start with a message naming it. Behind a
/// transaction pooler ([`todo_core::Pooler::beside`]: its URL names one, or it has the host and
/// port of a `DATABASE_URL` that is behind one) its lookups are unnamed statements, each in a
/// transaction of its own.
async fn session_authenticator(
    config: &Config,
) -> Result<Option<Arc<dyn Authenticator>>, StartError> {
    let Some(url) = config
        .session_database_url
        .as_deref()
        .filter(|u| !u.is_empty())
    else {
        return Ok(None);
    };
    let table = todo_core::SessionTable {
        table: config.session_table.clone(),
        token_column: config.session_token_column.clone(),
        user_id_column: config.session_user_id_column.clone(),
        expires_at_column: config.session_expires_at_column.clone(),
    };
    // Name the setting that is wrong: each identifier is checked on its own first.
    for (setting, name) in [
        ("SESSION_TABLE", &table.table),
        ("SESSION_TOKEN_COLUMN", &table.token_column),
        ("SESSION_USER_ID_COLUMN", &table.user_id_column),
        ("SESSION_EXPIRES_AT_COLUMN", &table.expires_at_column),
    ] {
        todo_core::SessionTable::check_identifier(name)
            .map_err(|e| StartError::Config(format!("{setting}: {e}")))?;
    }
    // Better Auth's tables usually share the task database and its address.
    let tasks_url = config.database_url();
    let tasks_pooler = config
        .database_pooler
        .unwrap_or_else(|| todo_core::Pooler::detect(tasks_url));
    let pooler = todo_core::Pooler::beside(url, tasks_url, tasks_pooler);
    let sessions = todo_core::SessionTableAuthenticator::connect_behind(url, &table, pooler)
        .await
        .map_err(|e| StartError::Config(format!("SESSION_DATABASE_URL: {}", start_reason(&e))))?;
    sessions.check().await.map_err(|e| {
        StartError::Config(format!(
            "SESSION_TABLE {:?} with columns {:?}, {:?}, {:?} cannot be read: {}",
            table.table,
            table.token_column,
            table.user_id_column,
            table.expires_at_column,
            start_reason(&e)
        ))
    })?;
    Ok(Some(Arc::new(sessions)))
}

/// A core error as one line for the operator, with its cause (the database's own message).
fn start_reason(e: &todo_core::Error) -> String {
    use std::error::Error as _;
    match e.source() {
        Some(cause) => format!("{e}: {cause}"),
        None => e.to_string(),
    }
}

/// Signs a token for `user` with the configured (or generated) secret.
pub fn demo_token(config: &Config, user: &str, lifetime: Duration) -> Result<String, StartError> {
    let secret = load_or_create_secret(config.better_auth_secret.as_ref(), &config.secret_file())?;
    let user = todo_core::UserId::parse(user).map_err(|e| StartError::Config(e.to_string()))?;
    token_issuer(config, &secret, lifetime)
        .issue(&user, None, None)
        .map_err(|e| StartError::Config(e.to_string()))
}

/// Signs tokens the server itself accepts: its secret, and the configured issuer and audience.
fn token_issuer(config: &Config, secret: &Secret, lifetime: Duration) -> TokenIssuer {
    TokenIssuer::hs256(
        secret.expose(),
        config.issuer().map(str::to_owned),
        config.audience().map(str::to_owned),
        lifetime,
    )
}

/// `todo-server mcp --user <id>`: the MCP tools over stdio for `user`, on the configured
/// database, until the client closes stdin. Nothing but MCP messages goes to stdout.
pub async fn serve_mcp_stdio(config: &Config, user: &str) -> Result<(), StartError> {
    let user =
        todo_core::UserId::parse(user).map_err(|e| StartError::Config(format!("--user: {e}")))?;
    let (state, _secret) = build_state(config).await?;
    let store = state.store.clone();
    let outcome = mcp::serve_stdio(state, todo_core::Principal::assume_authenticated(user)).await;
    store.close().await;
    outcome.map_err(StartError::Config)
}

/// Resolves when the process is asked to stop (SIGINT or SIGTERM).
pub async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => {},
        () = term => {},
    }
}

/// The connection limits from the configuration.
pub fn connection_limits(config: &Config) -> net::ConnectionLimits {
    net::ConnectionLimits {
        header_read_timeout: Duration::from_secs(config.header_read_timeout_secs),
        idle_timeout: Duration::from_secs(config.idle_timeout_secs),
        max_connections: config
            .max_open_connections
            .and_then(|n| usize::try_from(n).ok())
            .unwrap_or_else(net::default_max_connections),
        shutdown_grace: Duration::from_secs(10),
    }
}

/// Runs the server until SIGINT/SIGTERM: in-flight requests finish, then the pool closes.
pub async fn serve(config: Config) -> Result<(), StartError> {
    let (state, _secret) = build_state(&config).await?;
    let addr = format!("{}:{}", config.host, config.port);
    let listener = tokio::net::TcpListener::bind(addr.as_str())
        .await
        .map_err(|source| StartError::Bind {
            addr: addr.clone(),
            source,
        })?;
    let local = listener.local_addr().map(|a| a.to_string()).unwrap_or(addr);
    let url = format!("http://{local}");
    let limits = connection_limits(&config);
    tracing::info!(
        database = state.store.backend(),
        max_connections = limits.max_connections,
        "todo-server listening on {url} (Swagger UI: {url}/docs, contract: {url}/openapi.json)"
    );
    println!("todo-server listening on {url}");
    println!("  Swagger UI:  {url}/docs");
    if state.accounts.is_some() {
        println!(
            "  get a token: curl -X POST {url}/api/auth/register -H 'Content-Type: application/json' \\\n               -d '{{\"email\":\"you@example.com\",\"password\":\"correct horse\"}}'"
        );
    }
    println!("          or:  cargo run -p todo-server -- token --user demo-user");
    let store = state.store.clone();
    let origins: Vec<String> = config
        .cors_allowed_origins
        .iter()
        .map(|o| o.trim().to_owned())
        .filter(|o| !o.is_empty())
        .collect();
    let app = app(state, &origins);
    net::serve(listener, app, limits, shutdown_signal()).await;
    store.close().await;
    Ok(())
}
