//! The task routes, as two thin `#[OpenApi]` impls (with and without the `{user_id}` path
//! segment) over one shared implementation.

use std::sync::Arc;

use chrono::{DateTime, Utc};
use poem::{Request, RequestBody};
use poem_openapi::auth::Bearer;
use poem_openapi::param::{Header, Path, Query};
use poem_openapi::registry::Registry;
use poem_openapi::{
    ApiExtractor, ApiExtractorType, ApiResponse, ExtractParamOptions, OpenApi, SecurityScheme, Tags,
};
use todo_core::{
    AuthError, IdempotencyKey, Limit, ListQuery, Offset, Principal, SearchText, SortField,
    SortOrder, StatusFilter, Tag, Task, TaskId, ValidationError, check_instant,
};

use crate::AppState;
use crate::dto::{
    CompleteDoc, Deleted, ListMeta, TagCountDto, TagRenameDoc, TaskCreateDoc, TaskJson,
    TaskListJson, TaskStatsDto, TaskUpdateDoc, parse_complete, parse_create, parse_instant_text,
    parse_rename, parse_update,
};
use crate::params::{Flag, Parsed, Priorities, Status, TaskIdParam};
use crate::payload::{JsonBody, JsonOut, OptionalJsonBody, is_json};
use crate::problem::ApiError;
use crate::routes::PathUser;

/// API groups in the contract.
#[derive(Tags)]
pub enum ApiTags {
    /// Tasks of the authenticated user.
    Tasks,
    /// The authenticated user's tags, across their tasks.
    Tags,
}

/// A JWT bearer token: from Better Auth's JWT plugin (EdDSA/RS256/... via `JWKS_URL`), signed
/// with the shared `BETTER_AUTH_SECRET` (HS256), or issued by the built-in accounts
/// (`/api/auth/login`).
#[derive(SecurityScheme)]
#[oai(ty = "bearer", bearer_format = "JWT")]
pub struct BearerAuth(pub Bearer);

/// Better Auth's cookie-cache cookie, read when there is no `Authorization` header and the
/// cookie switch is on.
pub const SESSION_COOKIES: [&str; 2] = [
    "better-auth.session_data",
    "__Secure-better-auth.session_data",
];

/// The authenticated caller of a task route, and the user its path names when it came through
/// `/api/{user_id}/...` ([`PathUser`], set by [`crate::routes::Aliases`]). Documented as the
/// bearer scheme; extracted from `Authorization: Bearer` first and, when enabled, from Better
/// Auth's session cookie.
pub struct Auth(pub Principal, pub Option<PathUser>);

/// The first of the cookies `names` the request's `Cookie` headers carry (the `cookie`
/// crate's parser), its value without surrounding quotes.
fn cookie_value<'a>(req: &'a Request, names: &[&str]) -> Option<&'a str> {
    req.headers()
        .get_all(poem::http::header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(cookie::Cookie::split_parse)
        .filter_map(Result::ok)
        .find(|c| names.contains(&c.name()))
        .and_then(|c| c.value_raw())
        .map(|value| value.trim_matches('"'))
}

impl<'a> ApiExtractor<'a> for Auth {
    const TYPES: &'static [ApiExtractorType] = <BearerAuth as ApiExtractor<'a>>::TYPES;
    type ParamType = ();
    type ParamRawType = ();

    fn register(registry: &mut Registry) {
        <BearerAuth as ApiExtractor<'a>>::register(registry);
    }

    fn security_schemes() -> Vec<&'static str> {
        <BearerAuth as ApiExtractor<'a>>::security_schemes()
    }

    async fn from_request(
        req: &'a Request,
        _body: &mut RequestBody,
        _param_opts: ExtractParamOptions<Self::ParamType>,
    ) -> poem::Result<Self> {
        let state = req
            .data::<Arc<AppState>>()
            .ok_or_else(|| ApiError::internal().into_poem())?;
        let path_user = req.extensions().get::<PathUser>().cloned();
        authenticate(req, state)
            .await
            .map(|who| Auth(who, path_user))
            .map_err(ApiError::into_poem)
    }
}

/// The caller of `req`: its `Authorization: Bearer` token or, when the cookie switch is on and
/// there is no `Authorization` header, Better Auth's session cookie (on JSON requests only),
/// verified by the configured authenticator. The REST routes and `/mcp` both use it.
pub async fn authenticate(req: &Request, state: &AppState) -> Result<Principal, ApiError> {
    let header = req
        .headers()
        .get(poem::http::header::AUTHORIZATION)
        .map(|v| v.to_str().unwrap_or(""));
    let token = match header {
        Some(h) => {
            let (scheme, token) = h.split_once(' ').unwrap_or((h, ""));
            if !scheme.eq_ignore_ascii_case("bearer") || token.trim().is_empty() {
                return Err(ApiError::unauthorized(&AuthError::Missing));
            }
            token.trim()
        }
        None => {
            let cookie = state
                .cookie_auth
                .then(|| cookie_value(req, &SESSION_COOKIES))
                .flatten()
                .ok_or_else(|| ApiError::unauthorized(&AuthError::Missing))?;
            // A cookie rides along on cross-site requests: only ever let it authorise JSON,
            // so an HTML form (urlencoded, multipart or text/plain) cannot act for the user.
            if let Some(ct) = req.content_type()
                && !is_json(ct)
            {
                return Err(ApiError::unsupported_media_type(
                    "requests authenticated by cookie must send JSON",
                ));
            }
            cookie
        }
    };
    state.authenticator.authenticate(token).await.map_err(|e| {
        tracing::debug!(reason = %e, "credential rejected");
        match e {
            AuthError::Unavailable => ApiError::unavailable(),
            e => ApiError::unauthorized(&e),
        }
    })
}

/// A task with its ETag.
#[derive(ApiResponse)]
pub enum TaskResponse {
    /// The task.
    #[oai(status = 200)]
    Ok(TaskJson, #[oai(header = "ETag")] String),
}

/// A created task.
#[derive(ApiResponse)]
pub enum CreateResponse {
    /// Created.
    #[oai(status = 201)]
    Created(
        TaskJson,
        #[oai(header = "Location")] String,
        #[oai(header = "ETag")] String,
    ),
    /// A retry with the same `Idempotency-Key` and body: the task the first request created.
    #[oai(status = 200)]
    Replayed(
        TaskJson,
        #[oai(header = "Location")] String,
        #[oai(header = "ETag")] String,
    ),
}

/// A page of tasks.
#[derive(ApiResponse)]
pub enum ListResponse {
    /// The tasks (a bare array). When more follow, `X-Next-Cursor` and `Link: <...>; rel="next"`
    /// say how to get them.
    #[oai(status = 200)]
    Ok(
        TaskListJson,
        #[oai(header = "X-Next-Cursor")] Option<String>,
        #[oai(header = "Link")] Option<String>,
    ),
}

/// The user's tags.
#[derive(ApiResponse)]
pub enum TagsResponse {
    /// The user's tags with how many tasks carry each, sorted by name (case-insensitively).
    #[oai(status = 200)]
    Ok(JsonOut<Vec<TagCountDto>>),
}

/// A tag renamed or removed across the user's tasks.
#[derive(ApiResponse)]
pub enum TagResponse {
    /// The tag's (new) name and how many tasks changed.
    #[oai(status = 200)]
    Ok(JsonOut<TagCountDto>),
}

/// The user's task counts.
#[derive(ApiResponse)]
pub enum StatsResponse {
    /// How many tasks the user has, by state, overdue and priority.
    #[oai(status = 200)]
    Ok(JsonOut<TaskStatsDto>),
}

/// A deletion.
#[derive(ApiResponse)]
pub enum DeleteResponse {
    /// Deleted.
    #[oai(status = 200)]
    Ok(JsonOut<Deleted>),
}

/// The ETag of a task version.
pub fn etag(task: &Task) -> String {
    format!("\"{}-{}\"", task.id, task.version)
}

/// Reads `If-Match`: `None` when absent or `*`; the expected version when it names this task;
/// 412 when it names another version of nothing we know, or cannot be read (a precondition that
/// cannot be checked fails closed).
fn expected_version(
    id: TaskId,
    if_match: &Result<Option<String>, Unreadable>,
) -> Result<Option<i64>, ApiError> {
    let if_match = if_match.as_ref().map_err(|Unreadable| {
        ApiError::precondition_failed("If-Match cannot be read (it must be visible ASCII)")
    })?;
    let Some(raw) = if_match.as_deref().map(str::trim).filter(|s| !s.is_empty()) else {
        return Ok(None);
    };
    if raw == "*" {
        return Ok(None);
    }
    for tag in raw.split(',') {
        let tag = tag.trim();
        let tag = tag.strip_prefix("W/").unwrap_or(tag);
        let tag = tag.trim_matches('"');
        if let Some((tid, version)) = tag.split_once('-')
            && tid.parse::<TaskId>() == Ok(id)
            && let Ok(v) = version.parse::<i64>()
        {
            return Ok(Some(v));
        }
    }
    Err(ApiError::precondition_failed(
        "If-Match does not match the task's current ETag",
    ))
}

/// A header whose value is not visible ASCII: it cannot be read, and must not be ignored.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Unreadable;

/// A header's values joined with `", "` (a list header may be split over several lines), or
/// `None` when absent. Any value with a byte outside visible ASCII (and space, tab) makes the
/// whole header [`Unreadable`]. The operations also declare these headers as `Header` parameters,
/// but only so that the contract documents them: poem-openapi's `Header` silently drops a value
/// it cannot read, so the handlers read the request's own headers through this instead.
fn header_text(req: &Request, name: &str) -> Result<Option<String>, Unreadable> {
    let mut joined: Option<String> = None;
    for value in req.headers().get_all(name) {
        // `to_str` accepts exactly visible ASCII, space and tab.
        let text = value.to_str().map_err(|_| Unreadable)?;
        match &mut joined {
            Some(all) => {
                all.push_str(", ");
                all.push_str(text);
            }
            None => joined = Some(text.to_owned()),
        }
    }
    Ok(joined)
}

/// The request's `If-Match`, as [`header_text`] reads it.
fn if_match(req: &Request) -> Result<Option<String>, Unreadable> {
    header_text(req, "if-match")
}

fn parse_id(id: &TaskIdParam) -> Result<TaskId, ApiError> {
    id.id().map_err(|e| ApiError::validation(&e))
}

/// Every byte but RFC 3986's unreserved characters (letters, digits, `-`, `.`, `_`, `~`).
const NOT_UNRESERVED: &percent_encoding::AsciiSet = &percent_encoding::NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'.')
    .remove(b'_')
    .remove(b'~');

/// Percent-encodes everything but RFC 3986 unreserved characters.
fn encode(s: &str) -> String {
    percent_encoding::utf8_percent_encode(s, NOT_UNRESERVED).to_string()
}

/// The list parameters, as received and parsed ([`Parsed`]).
struct ListParams {
    status: Option<Parsed<Status>>,
    completed: Option<Parsed<Flag>>,
    q: Option<String>,
    sort: Option<Parsed<SortField>>,
    order: Option<Parsed<SortOrder>>,
    limit: Option<Parsed<Limit>>,
    cursor: Option<String>,
    tag: Vec<String>,
    priority: Vec<Parsed<Priorities>>,
    due_before: Option<String>,
    due_after: Option<String>,
    overdue: Option<Parsed<Flag>>,
    /// `q` as many FastAPI backends name it.
    search: Option<String>,
    /// `sort` as many FastAPI backends name it (`created_at`, `due_date`, ...).
    sort_by: Option<Parsed<SortField>>,
    /// `order` as many FastAPI backends name it.
    sort_order: Option<Parsed<SortOrder>>,
    /// Tasks to skip (offset paging).
    offset: Option<Parsed<Offset>>,
    /// `offset` as many FastAPI backends name it.
    skip: Option<Parsed<Offset>>,
    /// One tag, as frontends with a single category send it.
    category: Option<String>,
    /// Tags, comma-separated.
    tags: Option<String>,
}

/// The first of `values` that is set and not empty, with the name it came by.
fn first_set<'a>(
    values: [(&'static str, &'a Option<String>); 2],
) -> Option<(&'static str, &'a str)> {
    values.into_iter().find_map(|(name, v)| {
        v.as_deref()
            .filter(|v| !v.trim().is_empty())
            .map(|v| (name, v))
    })
}

/// The value of the first of `params` that is set and not blank; its error, renamed to the
/// name it came by, goes into `errors`.
fn first_parsed<T: Clone>(
    params: [(&'static str, &Option<Parsed<T>>); 2],
    errors: &mut ValidationError,
) -> Option<T> {
    let (name, p) = params.into_iter().find_map(|(name, p)| {
        p.as_ref()
            .filter(|p| !p.raw.trim().is_empty())
            .map(|p| (name, p))
    })?;
    errors
        .collect(p.value.clone().map_err(|e| named(name, e)))
        .flatten()
}

/// The text of an optional parsed parameter, for the links that repeat it.
fn raw<T>(p: &Option<Parsed<T>>) -> Option<String> {
    p.as_ref().map(|p| p.raw.clone())
}

/// Renames the field of every error to `name` (an alias reports the name the client used).
fn named(name: &str, mut e: ValidationError) -> ValidationError {
    for f in &mut e.errors {
        f.field = name.to_owned();
    }
    e
}

/// A due-date bound: an instant, or a date meaning its start in UTC.
fn parse_bound(
    name: &'static str,
    raw: Option<&str>,
) -> Result<Option<DateTime<Utc>>, ValidationError> {
    match raw.map(str::trim).filter(|s| !s.is_empty()) {
        Some(text) => parse_instant_text(name, text)
            .and_then(|t| check_instant(name, t))
            .map(Some),
        None => Ok(None),
    }
}

impl ListParams {
    fn parse(&self) -> Result<ListQuery, ValidationError> {
        let mut errors = ValidationError::default();
        let (status, overdue_status) =
            match first_parsed([("status", &self.status), ("status", &None)], &mut errors) {
                Some(Status(filter, overdue)) => (filter, overdue),
                None => match first_parsed(
                    [("completed", &self.completed), ("completed", &None)],
                    &mut errors,
                ) {
                    Some(Flag(true)) => (StatusFilter::Completed, false),
                    Some(Flag(false)) => (StatusFilter::Pending, false),
                    None => (StatusFilter::All, false),
                },
            };
        let search = match first_set([("q", &self.q), ("search", &self.search)]) {
            Some((name, text)) => errors
                .collect(SearchText::parse(text).map_err(|e| named(name, e)))
                .flatten(),
            None => None,
        };
        let sort = first_parsed(
            [("sort", &self.sort), ("sort_by", &self.sort_by)],
            &mut errors,
        );
        let order = first_parsed(
            [("order", &self.order), ("sort_order", &self.sort_order)],
            &mut errors,
        );
        let limit = first_parsed([("limit", &self.limit), ("limit", &None)], &mut errors);
        let offset = first_parsed(
            [("offset", &self.offset), ("skip", &self.skip)],
            &mut errors,
        );
        let mut tags = Vec::with_capacity(self.tag.len());
        let listed = self.tags.iter().flat_map(|t| t.split(','));
        let named_tags = self
            .tag
            .iter()
            .map(|t| ("tag", t.as_str()))
            .chain(self.category.iter().map(|t| ("category", t.as_str())))
            .chain(listed.map(|t| ("tags", t)));
        for (name, raw) in named_tags {
            if name != "tag" && raw.trim().is_empty() {
                continue;
            }
            // A filter names tags that may be stored already, whatever rules came later.
            if let Some(tag) = errors.collect(Tag::parse_stored(name, raw)) {
                tags.push(tag);
            }
        }
        let mut priorities = Vec::new();
        for p in &self.priority {
            if let Some(Priorities(each)) = errors.collect(p.value.clone()).flatten() {
                priorities.extend(each);
            }
        }
        let due_before = errors
            .collect(parse_bound("due_before", self.due_before.as_deref()))
            .flatten();
        let due_after = errors
            .collect(parse_bound("due_after", self.due_after.as_deref()))
            .flatten();
        let overdue = first_parsed(
            [("overdue", &self.overdue), ("overdue", &None)],
            &mut errors,
        )
        .is_some_and(|Flag(on)| on)
            || overdue_status;
        errors.into_result()?;
        Ok(ListQuery {
            status,
            search,
            sort: sort.unwrap_or_default(),
            order: order.unwrap_or_default(),
            limit: limit.unwrap_or_default(),
            cursor: self.cursor.clone().filter(|c| !c.is_empty()),
            offset: offset.unwrap_or_default(),
            tags,
            priorities,
            due_after,
            due_before,
            overdue,
        })
    }

    /// The query string of the next page.
    fn next_query(&self, cursor: &str) -> String {
        let mut parts = Vec::new();
        for (name, value) in [
            ("status", raw(&self.status)),
            ("completed", raw(&self.completed)),
            ("q", self.q.clone()),
            ("sort", raw(&self.sort)),
            ("order", raw(&self.order)),
            ("limit", raw(&self.limit)),
            ("due_before", self.due_before.clone()),
            ("due_after", self.due_after.clone()),
            ("overdue", raw(&self.overdue)),
            ("search", self.search.clone()),
            ("sort_by", raw(&self.sort_by)),
            ("sort_order", raw(&self.sort_order)),
            ("category", self.category.clone()),
            ("tags", self.tags.clone()),
        ] {
            if let Some(v) = value.filter(|v| !v.is_empty()) {
                parts.push(format!("{name}={}", encode(&v)));
            }
        }
        for v in &self.tag {
            parts.push(format!("tag={}", encode(v)));
        }
        for p in &self.priority {
            parts.push(format!("priority={}", encode(&p.raw)));
        }
        parts.push(format!("cursor={}", encode(cursor)));
        parts.join("&")
    }
}

/// The operations, for the caller (and the path's user, when the request came by `/api/{user_id}/...`).
struct Ops<'a> {
    state: &'a AppState,
    who: Principal,
    /// Whether the request came through `/api/{user_id}/...` (links then keep that shape).
    user_in_path: bool,
}

impl<'a> Ops<'a> {
    /// The operations for `auth`'s caller; 403 when the path names another user.
    fn scoped(state: &'a AppState, auth: Auth) -> Result<Self, ApiError> {
        let Auth(who, path_user) = auth;
        if path_user
            .as_ref()
            .is_some_and(|PathUser(user)| user != who.user_id().as_str())
        {
            return Err(ApiError::forbidden());
        }
        Ok(Self {
            state,
            who,
            user_in_path: path_user.is_some(),
        })
    }

    /// The collection's path, for `Location` and `Link` (built only when one is sent). A user
    /// id made only of dots (`.`, `..`) is a dot-segment to every URL resolver, even
    /// percent-encoded (the WHATWG URL standard decodes `%2e`), so such a user's links take the
    /// equivalent `/api/tasks` shape.
    fn base(&self) -> String {
        let user = self.who.user_id().as_str();
        if self.user_in_path && !user.bytes().all(|b| b == b'.') {
            format!("/api/{}/tasks", encode(user))
        } else {
            "/api/tasks".to_owned()
        }
    }

    async fn list(&self, params: ListParams) -> Result<ListResponse, ApiError> {
        let query = params.parse().map_err(|e| ApiError::validation(&e))?;
        let dialect = &self.state.dialect;
        let counts = if dialect.list_shows_counts() {
            Some(self.state.store.count(&self.who, &query).await?)
        } else {
            None
        };
        let page = self.state.store.list(&self.who, &query).await?;
        let link = page
            .next_cursor
            .as_deref()
            .map(|c| format!("<{}?{}>; rel=\"next\"", self.base(), params.next_query(c)));
        let meta = match &dialect.list {
            Some(_) => ListMeta {
                counts,
                skip: query.offset.get(),
                limit: query.limit.get(),
                next_cursor: page.next_cursor.clone(),
            },
            None => ListMeta::default(),
        };
        Ok(ListResponse::Ok(
            TaskListJson {
                tasks: page.tasks,
                dialect: dialect.clone(),
                meta,
            },
            page.next_cursor,
            link,
        ))
    }

    /// A task as an answer body, in the deployment's dialect.
    fn json(&self, task: Task) -> TaskJson {
        TaskJson {
            task,
            dialect: self.state.dialect.clone(),
        }
    }

    fn ok(&self, task: Task) -> TaskResponse {
        let tag = etag(&task);
        TaskResponse::Ok(self.json(task), tag)
    }

    async fn create(
        &self,
        body: JsonBody<TaskCreateDoc>,
        idempotency_key: Result<Option<String>, Unreadable>,
    ) -> Result<CreateResponse, ApiError> {
        let key = idempotency_key
            .map_err(|Unreadable| {
                ValidationError::field("Idempotency-Key", "must be visible ASCII")
            })
            .and_then(|k| {
                k.as_deref()
                    .filter(|k| !k.is_empty())
                    .map(IdempotencyKey::parse)
                    .transpose()
            })
            .map_err(|mut e| {
                // Name the header, as the conflict answer does.
                for f in &mut e.errors {
                    f.field = "Idempotency-Key".to_owned();
                }
                e
            });
        let new = parse_create(&body.fields);
        let (key, new) = match (key, new) {
            (Ok(k), Ok(n)) => (k, n),
            (k, n) => {
                let mut errors = ValidationError::default();
                errors.collect(n);
                errors.collect(k);
                return Err(ApiError::validation(&errors));
            }
        };
        let created = self
            .state
            .store
            .create(&self.who, new, key.as_ref())
            .await?;
        let location = format!("{}/{}", self.base(), created.task.id);
        let tag = etag(&created.task);
        let dto = self.json(created.task);
        Ok(if created.replayed {
            CreateResponse::Replayed(dto, location, tag)
        } else {
            CreateResponse::Created(dto, location, tag)
        })
    }

    async fn get(&self, id: &TaskIdParam) -> Result<TaskResponse, ApiError> {
        let task = self.state.store.get(&self.who, parse_id(id)?).await?;
        Ok(self.ok(task))
    }

    async fn update(
        &self,
        id: &TaskIdParam,
        body: JsonBody<TaskUpdateDoc>,
        if_match: Result<Option<String>, Unreadable>,
    ) -> Result<TaskResponse, ApiError> {
        let id = parse_id(id)?;
        let patch = parse_update(&body.fields).map_err(|e| ApiError::validation(&e))?;
        let expected = expected_version(id, &if_match)?;
        let task = self
            .state
            .store
            .patch(&self.who, id, patch, expected)
            .await?;
        Ok(self.ok(task))
    }

    async fn complete(
        &self,
        id: &TaskIdParam,
        body: OptionalJsonBody<CompleteDoc>,
        if_match: Result<Option<String>, Unreadable>,
    ) -> Result<TaskResponse, ApiError> {
        let id = parse_id(id)?;
        let completed = parse_complete(body.0.as_ref().map(|b| &b.fields))
            .map_err(|e| ApiError::validation(&e))?;
        let expected = expected_version(id, &if_match)?;
        let task = self
            .state
            .store
            .set_completed(&self.who, id, completed, expected)
            .await?;
        Ok(self.ok(task))
    }

    async fn delete(
        &self,
        id: &TaskIdParam,
        if_match: Result<Option<String>, Unreadable>,
    ) -> Result<DeleteResponse, ApiError> {
        let id = parse_id(id)?;
        let expected = expected_version(id, &if_match)?;
        self.state.store.delete(&self.who, id, expected).await?;
        Ok(DeleteResponse::Ok(JsonOut(Deleted {
            message: "Task deleted successfully".to_owned(),
            id,
        })))
    }
}

impl Ops<'_> {
    async fn stats(&self) -> Result<StatsResponse, ApiError> {
        let stats = self.state.store.stats(&self.who).await?;
        Ok(StatsResponse::Ok(JsonOut(stats.into())))
    }

    async fn tags(&self) -> Result<TagsResponse, ApiError> {
        let tags = self.state.store.tags(&self.who).await?;
        Ok(TagsResponse::Ok(JsonOut(
            tags.into_iter().map(TagCountDto::from).collect(),
        )))
    }

    async fn rename_tag(
        &self,
        name: &str,
        body: JsonBody<TagRenameDoc>,
    ) -> Result<TagResponse, ApiError> {
        let mut errors = ValidationError::default();
        let from = errors.collect(Tag::parse_stored("name", name));
        let to = errors.collect(parse_rename(&body.fields));
        errors.into_result().map_err(|e| ApiError::validation(&e))?;
        let (Some(from), Some(to)) = (from, to) else {
            return Err(ApiError::invalid_field("name", "is invalid"));
        };
        let count = self
            .state
            .store
            .rename_tag(&self.who, &from, &to)
            .await
            .map_err(tag_error)?;
        Ok(TagResponse::Ok(JsonOut(TagCountDto {
            name: to.as_str().to_owned(),
            count,
        })))
    }

    async fn delete_tag(&self, name: &str) -> Result<TagResponse, ApiError> {
        let tag = Tag::parse_stored("name", name).map_err(|e| ApiError::validation(&e))?;
        let count = self
            .state
            .store
            .delete_tag(&self.who, &tag)
            .await
            .map_err(tag_error)?;
        Ok(TagResponse::Ok(JsonOut(TagCountDto {
            name: tag.as_str().to_owned(),
            count,
        })))
    }
}

/// A store error of a tag operation: not found means no task carries the tag.
fn tag_error(e: todo_core::Error) -> ApiError {
    match e {
        todo_core::Error::NotFound => ApiError::tag_not_found(),
        e => e.into(),
    }
}

/// Tag routes under `/api/tags`, scoped to the token's user.
pub struct TagsApi {
    /// Shared state.
    pub state: Arc<AppState>,
}

/// Routes under `/api/tasks`, scoped to the token's user.
pub struct TasksApi {
    /// Shared state.
    pub state: Arc<AppState>,
}

#[OpenApi(tag = "ApiTags::Tags")]
impl TagsApi {
    /// The user's tags with how many of their tasks carry each, sorted by name
    /// (case-insensitively); at most 1000.
    #[oai(path = "/tags", method = "get", operation_id = "list_tags")]
    async fn tags(&self, auth: Auth) -> Result<TagsResponse, ApiError> {
        Ops::scoped(&self.state, auth)?.tags().await
    }

    /// Rename a tag on every task of the user that carries it (compared case-insensitively);
    /// a task that already carries the new name keeps one. 404 when no task carries it.
    #[oai(path = "/tags/:name", method = "patch", operation_id = "rename_tag")]
    async fn rename(
        &self,
        auth: Auth,
        name: Path<String>,
        body: JsonBody<TagRenameDoc>,
    ) -> Result<TagResponse, ApiError> {
        Ops::scoped(&self.state, auth)?
            .rename_tag(&name.0, body)
            .await
    }

    /// Remove a tag from every task of the user that carries it (compared
    /// case-insensitively). 404 when no task carries it.
    #[oai(path = "/tags/:name", method = "delete", operation_id = "delete_tag")]
    async fn delete(&self, auth: Auth, name: Path<String>) -> Result<TagResponse, ApiError> {
        Ops::scoped(&self.state, auth)?.delete_tag(&name.0).await
    }

    /// How many tasks the user has: in all, completed, pending, overdue (not completed and due
    /// before now) and by priority, for a dashboard.
    #[oai(path = "/tasks/stats", method = "get", operation_id = "task_stats")]
    async fn stats(&self, auth: Auth) -> Result<StatsResponse, ApiError> {
        Ops::scoped(&self.state, auth)?.stats().await
    }
}

#[OpenApi(tag = "ApiTags::Tasks")]
impl TasksApi {
    /// List the user's tasks.
    ///
    /// Filter with `status` (`all`, `pending`, `completed`; or `completed=true|false`), search
    /// with `q`, sort with `sort` (`created`, `updated`, `title`, `due_date`, `priority`) and
    /// `order` (`asc`, `desc`; default newest first), page with `limit` (1 to 1000, default 100)
    /// and the `cursor` from `X-Next-Cursor`. The FastAPI backends' names are accepted too:
    /// `search` for `q`, `sort_by` (`created_at`, `due_date`, ...) for `sort`, `sort_order` for
    /// `order`, and `status` values `active`, `incomplete`, `open`, `done`, `complete`,
    /// `overdue`; when both names are sent, `q`, `sort` and `order` win.
    #[allow(clippy::too_many_arguments)]
    #[oai(path = "/tasks", method = "get", operation_id = "list_tasks")]
    async fn list(
        &self,
        auth: Auth,
        status: Query<Option<Parsed<Status>>>,
        completed: Query<Option<Parsed<Flag>>>,
        q: Query<Option<String>>,
        sort: Query<Option<Parsed<SortField>>>,
        order: Query<Option<Parsed<SortOrder>>>,
        limit: Query<Option<Parsed<Limit>>>,
        cursor: Query<Option<String>>,
        tag: Query<Option<Vec<String>>>,
        priority: Query<Option<Vec<Parsed<Priorities>>>>,
        due_before: Query<Option<String>>,
        due_after: Query<Option<String>>,
        overdue: Query<Option<Parsed<Flag>>>,
        search: Query<Option<String>>,
        sort_by: Query<Option<Parsed<SortField>>>,
        sort_order: Query<Option<Parsed<SortOrder>>>,
        offset: Query<Option<Parsed<Offset>>>,
        skip: Query<Option<Parsed<Offset>>>,
        category: Query<Option<String>>,
        tags: Query<Option<String>>,
    ) -> Result<ListResponse, ApiError> {
        let params = ListParams {
            status: status.0,
            completed: completed.0,
            q: q.0,
            sort: sort.0,
            order: order.0,
            limit: limit.0,
            cursor: cursor.0,
            tag: tag.0.unwrap_or_default(),
            priority: priority.0.unwrap_or_default(),
            due_before: due_before.0,
            due_after: due_after.0,
            overdue: overdue.0,
            search: search.0,
            sort_by: sort_by.0,
            sort_order: sort_order.0,
            offset: offset.0,
            skip: skip.0,
            category: category.0,
            tags: tags.0,
        };
        Ops::scoped(&self.state, auth)?.list(params).await
    }

    /// Create a task. A retry with the same `Idempotency-Key` returns the first task (200).
    #[oai(path = "/tasks", method = "post", operation_id = "create_task")]
    async fn create(
        &self,
        auth: Auth,
        req: &Request,
        #[oai(name = "Idempotency-Key")] _idempotency_key: Header<Option<String>>,
        body: JsonBody<TaskCreateDoc>,
    ) -> Result<CreateResponse, ApiError> {
        Ops::scoped(&self.state, auth)?
            .create(body, header_text(req, "idempotency-key"))
            .await
    }

    /// Get one task.
    #[oai(path = "/tasks/:id", method = "get", operation_id = "get_task")]
    async fn get(&self, auth: Auth, id: Path<TaskIdParam>) -> Result<TaskResponse, ApiError> {
        Ops::scoped(&self.state, auth)?.get(&id.0).await
    }

    /// Update the fields sent (absent fields are unchanged; `null` clears `description` and
    /// `due_date`). Honours `If-Match`.
    #[oai(path = "/tasks/:id", method = "put", operation_id = "put_task")]
    async fn put(
        &self,
        auth: Auth,
        id: Path<TaskIdParam>,
        req: &Request,
        #[oai(name = "If-Match")] _if_match: Header<Option<String>>,
        body: JsonBody<TaskUpdateDoc>,
    ) -> Result<TaskResponse, ApiError> {
        Ops::scoped(&self.state, auth)?
            .update(&id.0, body, if_match(req))
            .await
    }

    /// Partially update a task (absent = unchanged, `null` = clear). Honours `If-Match`.
    #[oai(path = "/tasks/:id", method = "patch", operation_id = "patch_task")]
    async fn patch(
        &self,
        auth: Auth,
        id: Path<TaskIdParam>,
        req: &Request,
        #[oai(name = "If-Match")] _if_match: Header<Option<String>>,
        body: JsonBody<TaskUpdateDoc>,
    ) -> Result<TaskResponse, ApiError> {
        Ops::scoped(&self.state, auth)?
            .update(&id.0, body, if_match(req))
            .await
    }

    /// Delete a task. Honours `If-Match`.
    #[oai(path = "/tasks/:id", method = "delete", operation_id = "delete_task")]
    async fn delete(
        &self,
        auth: Auth,
        id: Path<TaskIdParam>,
        req: &Request,
        #[oai(name = "If-Match")] _if_match: Header<Option<String>>,
    ) -> Result<DeleteResponse, ApiError> {
        Ops::scoped(&self.state, auth)?
            .delete(&id.0, if_match(req))
            .await
    }

    /// Toggle `completed`, or set it with a body `{"completed": bool}`. Honours `If-Match`.
    #[oai(
        path = "/tasks/:id/complete",
        method = "patch",
        operation_id = "complete_task"
    )]
    async fn complete(
        &self,
        auth: Auth,
        id: Path<TaskIdParam>,
        req: &Request,
        #[oai(name = "If-Match")] _if_match: Header<Option<String>>,
        body: OptionalJsonBody<CompleteDoc>,
    ) -> Result<TaskResponse, ApiError> {
        Ops::scoped(&self.state, auth)?
            .complete(&id.0, body, if_match(req))
            .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn if_match_accepts_star_weak_and_lists() {
        assert_eq!(expected_version(7, &Ok(None)).ok(), Some(None));
        assert_eq!(
            expected_version(7, &Ok(Some("*".to_owned()))).ok(),
            Some(None)
        );
        assert_eq!(
            expected_version(7, &Ok(Some("\"7-3\"".to_owned()))).ok(),
            Some(Some(3))
        );
        assert_eq!(
            expected_version(7, &Ok(Some("W/\"7-4\"".to_owned()))).ok(),
            Some(Some(4))
        );
        assert_eq!(
            expected_version(7, &Ok(Some("\"1-1\", \"7-5\"".to_owned()))).ok(),
            Some(Some(5))
        );
        assert!(expected_version(7, &Ok(Some("\"8-3\"".to_owned()))).is_err());
        assert!(expected_version(7, &Ok(Some("garbage".to_owned()))).is_err());
        assert!(expected_version(7, &Err(Unreadable)).is_err());
    }

    #[test]
    fn encode_keeps_unreserved_characters_only() {
        assert_eq!(encode("a-b_c.d~e"), "a-b_c.d~e");
        assert_eq!(encode("a b/é"), "a%20b%2F%C3%A9");
    }
}
