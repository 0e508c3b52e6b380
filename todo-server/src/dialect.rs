//! A deployment's JSON dialect: how answers are shaped for a frontend written against another
//! backend. Envelopes around lists, single tasks and errors (`LIST_ENVELOPE`, `TASK_ENVELOPE`,
//! `ERROR_ENVELOPE`), the case of answer keys (`JSON_CASE`) and enum values (`ENUM_CASE`), and
//! the form of due dates (`DUE_DATE_FORMAT`). With nothing set, answers are as the contract has
//! always described them.
//!
//! Task and list bodies are written in the dialect directly by the task writer (`dto`), with
//! keys and enum words prepared once at start; a template is compiled once into literal bytes
//! and slots. Every other answer under `/api` (errors, counts, tags, tokens) is rewritten by
//! [`Rewrite`] when a setting asks for it. [`Dialect::contract`] rewrites the
//! generated OpenAPI document the same way, so a client generated from `/openapi.json` matches
//! what it receives.

use std::sync::Arc;

use poem::http::header;
use poem::{Endpoint, IntoResponse, Middleware, Request, Response};
use serde_json::{Map, Value, json};

/// The case of keys in answers.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, clap::ValueEnum)]
pub enum JsonCase {
    /// `due_date`, `created_at` (the API's own).
    #[default]
    Snake,
    /// `dueDate`, `createdAt`.
    Camel,
}

/// The case of enum values in answers (`priority`, `status`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, clap::ValueEnum)]
pub enum EnumCase {
    /// `high`, `pending` (the API's own).
    #[default]
    Lower,
    /// `High`, `Pending`.
    Capitalized,
    /// `HIGH`, `PENDING`.
    Upper,
}

/// How a task's `due_date` is written.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, clap::ValueEnum)]
pub enum DueDateFormat {
    /// An RFC 3339 instant in UTC (the API's own).
    #[default]
    Datetime,
    /// The UTC date alone, `YYYY-MM-DD`, as `<input type="date">` reads it.
    Date,
}

/// A value a template's placeholder stands for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Slot {
    /// The page's tasks, an array.
    Tasks,
    /// How many tasks the list's filters match, across all pages.
    Total,
    /// How many of those are completed.
    CompletedCount,
    /// How many of those are pending.
    PendingCount,
    /// The page's offset (`skip` or `offset`, 0 when not sent).
    Skip,
    /// The page size.
    Limit,
    /// Whether more tasks follow.
    HasMore,
    /// The cursor of the next page, or null.
    NextCursor,
    /// The task.
    Task,
    /// The HTTP status code.
    Status,
    /// The HTTP status phrase.
    Title,
    /// What went wrong, for humans.
    Detail,
    /// A stable snake_case code for the kind of error ([`ERROR_CODES`]).
    Code,
    /// Each invalid field (`[]` when the error is not about fields).
    Errors,
}

const SLOTS: [(Slot, &str); 14] = [
    (Slot::Tasks, "$tasks"),
    (Slot::Total, "$total"),
    (Slot::CompletedCount, "$completed_count"),
    (Slot::PendingCount, "$pending_count"),
    (Slot::Skip, "$skip"),
    (Slot::Limit, "$limit"),
    (Slot::HasMore, "$has_more"),
    (Slot::NextCursor, "$next_cursor"),
    (Slot::Task, "$task"),
    (Slot::Status, "$status"),
    (Slot::Title, "$title"),
    (Slot::Detail, "$detail"),
    (Slot::Code, "$code"),
    (Slot::Errors, "$errors"),
];

impl Slot {
    /// The placeholder's text, `"$tasks"`...
    pub fn placeholder(self) -> &'static str {
        SLOTS
            .iter()
            .find(|(s, _)| *s == self)
            .map_or("", |(_, name)| name)
    }

    fn parse(text: &str) -> Option<Self> {
        SLOTS.iter().find(|(_, n)| *n == text).map(|(s, _)| *s)
    }
}

/// The placeholders a list envelope may use.
pub const LIST_SLOTS: &[Slot] = &[
    Slot::Tasks,
    Slot::Total,
    Slot::CompletedCount,
    Slot::PendingCount,
    Slot::Skip,
    Slot::Limit,
    Slot::HasMore,
    Slot::NextCursor,
];
/// The placeholders a task envelope may use.
pub const TASK_SLOTS: &[Slot] = &[Slot::Task];
/// The placeholders an error envelope may use.
pub const ERROR_SLOTS: &[Slot] = &[
    Slot::Status,
    Slot::Title,
    Slot::Detail,
    Slot::Code,
    Slot::Errors,
];

/// The codes `"$code"` takes, by status: every status of the IANA HTTP status code registry
/// has its own, its RFC 9110 name in snake_case, except the few this API has always named
/// itself (`payload_too_large`, `validation_error`, `rate_limited`, `internal_error`,
/// `unavailable`). A status outside the registry is `client_error` or `server_error`
/// ([`error_code`]).
pub const ERROR_CODES: &[(u16, &str)] = &[
    (400, "bad_request"),
    (401, "unauthorized"),
    (402, "payment_required"),
    (403, "forbidden"),
    (404, "not_found"),
    (405, "method_not_allowed"),
    (406, "not_acceptable"),
    (407, "proxy_authentication_required"),
    (408, "request_timeout"),
    (409, "conflict"),
    (410, "gone"),
    (411, "length_required"),
    (412, "precondition_failed"),
    (413, "payload_too_large"),
    (414, "uri_too_long"),
    (415, "unsupported_media_type"),
    (416, "range_not_satisfiable"),
    (417, "expectation_failed"),
    (418, "im_a_teapot"),
    (421, "misdirected_request"),
    (422, "validation_error"),
    (423, "locked"),
    (424, "failed_dependency"),
    (425, "too_early"),
    (426, "upgrade_required"),
    (428, "precondition_required"),
    (429, "rate_limited"),
    (431, "request_header_fields_too_large"),
    (451, "unavailable_for_legal_reasons"),
    (500, "internal_error"),
    (501, "not_implemented"),
    (502, "bad_gateway"),
    (503, "unavailable"),
    (504, "gateway_timeout"),
    (505, "http_version_not_supported"),
    (506, "variant_also_negotiates"),
    (507, "insufficient_storage"),
    (508, "loop_detected"),
    (510, "not_extended"),
    (511, "network_authentication_required"),
];

/// The codes of statuses outside [`ERROR_CODES`], by class.
pub const CLASS_CODES: [&str; 2] = ["client_error", "server_error"];

/// The `"$code"` of a status: its own from [`ERROR_CODES`], else its class's.
pub fn error_code(status: u16) -> &'static str {
    ERROR_CODES.iter().find(|(s, _)| *s == status).map_or_else(
        || {
            if status >= 500 {
                CLASS_CODES[1]
            } else {
                CLASS_CODES[0]
            }
        },
        |(_, c)| c,
    )
}

/// A piece of a compiled template.
#[derive(Debug, Clone)]
enum Piece {
    Bytes(Box<[u8]>),
    Slot(Slot),
}

/// A JSON template compiled once: literal bytes between the placeholders' slots.
#[derive(Debug, Clone)]
pub struct Template {
    pieces: Vec<Piece>,
    value: Value,
}

/// Whether a string looks like a placeholder: `$` then lowercase letters and underscores.
fn looks_like_placeholder(s: &str) -> bool {
    s.strip_prefix('$').is_some_and(|rest| {
        !rest.is_empty() && rest.bytes().all(|b| b.is_ascii_lowercase() || b == b'_')
    })
}

/// The three envelopes a dialect may set: each is one setting, with the placeholders it may use
/// and the rules its template must follow.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Envelope {
    /// `LIST_ENVELOPE`, around a page of tasks.
    List,
    /// `TASK_ENVELOPE`, around a single task.
    Task,
    /// `ERROR_ENVELOPE`, around every error.
    Error,
}

impl Envelope {
    /// The setting's name, as an environment variable.
    pub fn setting(self) -> &'static str {
        match self {
            Self::List => "LIST_ENVELOPE",
            Self::Task => "TASK_ENVELOPE",
            Self::Error => "ERROR_ENVELOPE",
        }
    }

    /// The placeholders the template may use.
    pub fn slots(self) -> &'static [Slot] {
        match self {
            Self::List => LIST_SLOTS,
            Self::Task => TASK_SLOTS,
            Self::Error => ERROR_SLOTS,
        }
    }

    /// The placeholders of which the template must use at least one: a list envelope that
    /// drops the tasks, or an error envelope that says neither what went wrong nor its kind,
    /// would answer nothing.
    fn required(self) -> &'static [Slot] {
        match self {
            Self::List => &[Slot::Tasks],
            Self::Task => &[Slot::Task],
            Self::Error => &[Slot::Detail, Slot::Code],
        }
    }

    /// Whether the template must be a JSON object (an error answer must be one to be read as an
    /// error by the frontends that set this).
    fn must_be_object(self) -> bool {
        self == Self::Error
    }
}

impl Slot {
    /// Whether the slot may appear only once in a template: each copy of the tasks repeats the
    /// whole page (a hundred `"$tasks"` made one list answer 127 MB).
    fn at_most_once(self) -> bool {
        matches!(self, Self::Tasks | Self::Task)
    }
}

impl Template {
    /// Compiles `text` for `envelope`: it must be JSON with no key repeated in one object, use
    /// only the envelope's placeholders, each of the tasks or the task at most once, and the
    /// ones it requires. The error is one line naming the setting.
    pub fn compile(envelope: Envelope, text: &str) -> Result<Self, String> {
        let setting = envelope.setting();
        let allowed = envelope.slots();
        let may_use = || {
            let names: Vec<&str> = allowed.iter().map(|s| s.placeholder()).collect();
            names.join(", ")
        };
        let value = serde_json::from_str::<StrictValue>(text)
            .map_err(|e| match e.classify() {
                serde_json::error::Category::Data => format!("{setting} has {e}"),
                _ => format!("{setting} is not valid JSON ({e})"),
            })?
            .0;
        if envelope.must_be_object() && !value.is_object() {
            return Err(format!("{setting} must be a JSON object"));
        }
        let mut pieces = Vec::new();
        let mut bytes = Vec::new();
        let mut used = Vec::new();
        compile_value(&value, &mut bytes, &mut pieces, &mut used).map_err(|bad| {
            format!(
                "{setting} uses the unknown placeholder \"{bad}\" (it may use: {})",
                may_use()
            )
        })?;
        if !bytes.is_empty() {
            pieces.push(Piece::Bytes(bytes.into_boxed_slice()));
        }
        if let Some(bad) = used.iter().find(|s| !allowed.contains(s)) {
            return Err(format!(
                "{setting} uses the placeholder \"{}\", which it cannot fill (it may use: {})",
                bad.placeholder(),
                may_use()
            ));
        }
        for slot in allowed.iter().filter(|s| s.at_most_once()) {
            let n = used.iter().filter(|s| *s == slot).count();
            if n > 1 {
                return Err(format!(
                    "{setting} uses the placeholder \"{}\" {n} times (at most once)",
                    slot.placeholder()
                ));
            }
        }
        let required = envelope.required();
        if !required.iter().any(|s| used.contains(s)) {
            let names: Vec<String> = required
                .iter()
                .map(|s| format!("\"{}\"", s.placeholder()))
                .collect();
            return Err(format!(
                "{setting} must contain the placeholder {}",
                names.join(" or ")
            ));
        }
        Ok(Self { pieces, value })
    }

    /// Whether the template uses `slot`.
    pub fn uses(&self, slot: Slot) -> bool {
        self.pieces
            .iter()
            .any(|p| matches!(p, Piece::Slot(s) if *s == slot))
    }

    /// The literal bytes' length, for sizing a buffer.
    pub fn literal_len(&self) -> usize {
        self.pieces
            .iter()
            .map(|p| match p {
                Piece::Bytes(b) => b.len(),
                Piece::Slot(_) => 0,
            })
            .sum()
    }

    /// Writes the template to `out`, each slot by `fill`.
    pub fn write<E>(
        &self,
        out: &mut Vec<u8>,
        mut fill: impl FnMut(Slot, &mut Vec<u8>) -> Result<(), E>,
    ) -> Result<(), E> {
        for piece in &self.pieces {
            match piece {
                Piece::Bytes(b) => out.extend_from_slice(b),
                Piece::Slot(s) => fill(*s, out)?,
            }
        }
        Ok(())
    }

    /// The template's JSON Schema, each slot's from `slot`.
    fn schema(&self, slot: &impl Fn(Slot) -> Value) -> Value {
        schema_of(&self.value, slot)
    }
}

/// A JSON value read from a template, as `serde_json::Value` reads it, except that a key given
/// twice in one object is an error naming the key (`Value` keeps the last one silently, and the
/// template then lacks what the first one said).
struct StrictValue(Value);

impl<'de> serde::Deserialize<'de> for StrictValue {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_any(StrictVisitor).map(StrictValue)
    }
}

struct StrictVisitor;

impl<'de> serde::de::Visitor<'de> for StrictVisitor {
    type Value = Value;

    fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("a JSON value")
    }

    fn visit_bool<E>(self, v: bool) -> Result<Value, E> {
        Ok(Value::Bool(v))
    }

    fn visit_i64<E>(self, v: i64) -> Result<Value, E> {
        Ok(Value::from(v))
    }

    fn visit_u64<E>(self, v: u64) -> Result<Value, E> {
        Ok(Value::from(v))
    }

    fn visit_f64<E>(self, v: f64) -> Result<Value, E> {
        Ok(Value::from(v))
    }

    fn visit_str<E>(self, v: &str) -> Result<Value, E> {
        Ok(Value::String(v.to_owned()))
    }

    fn visit_unit<E>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }

    fn visit_seq<A: serde::de::SeqAccess<'de>>(self, mut seq: A) -> Result<Value, A::Error> {
        let mut items = Vec::new();
        while let Some(StrictValue(item)) = seq.next_element()? {
            items.push(item);
        }
        Ok(Value::Array(items))
    }

    fn visit_map<A: serde::de::MapAccess<'de>>(self, mut map: A) -> Result<Value, A::Error> {
        let mut out = Map::new();
        while let Some(key) = map.next_key::<String>()? {
            if out.contains_key(&key) {
                return Err(serde::de::Error::custom(format!(
                    "the key {} twice in one object",
                    Value::String(key)
                )));
            }
            let StrictValue(value) = map.next_value()?;
            out.insert(key, value);
        }
        Ok(Value::Object(out))
    }
}

/// Appends `value` to the literal `bytes`, closing a piece at each placeholder; a string that
/// looks like a placeholder but is none is returned as the error.
fn compile_value(
    value: &Value,
    bytes: &mut Vec<u8>,
    pieces: &mut Vec<Piece>,
    used: &mut Vec<Slot>,
) -> Result<(), String> {
    match value {
        Value::String(s) if looks_like_placeholder(s) => {
            let slot = Slot::parse(s).ok_or_else(|| s.clone())?;
            if !bytes.is_empty() {
                pieces.push(Piece::Bytes(std::mem::take(bytes).into_boxed_slice()));
            }
            pieces.push(Piece::Slot(slot));
            used.push(slot);
        }
        Value::Array(items) => {
            bytes.push(b'[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    bytes.push(b',');
                }
                compile_value(item, bytes, pieces, used)?;
            }
            bytes.push(b']');
        }
        Value::Object(map) => {
            bytes.push(b'{');
            for (i, (key, item)) in map.iter().enumerate() {
                if i > 0 {
                    bytes.push(b',');
                }
                bytes.extend_from_slice(Value::String(key.clone()).to_string().as_bytes());
                bytes.push(b':');
                compile_value(item, bytes, pieces, used)?;
            }
            bytes.push(b'}');
        }
        literal => bytes.extend_from_slice(literal.to_string().as_bytes()),
    }
    Ok(())
}

/// The schema of a template value: objects and arrays as they are, literals as themselves,
/// placeholders as their slot's schema.
fn schema_of(value: &Value, slot: &impl Fn(Slot) -> Value) -> Value {
    match value {
        Value::String(s) => match Slot::parse(s) {
            Some(s) => slot(s),
            None => json!({"type": "string", "enum": [s]}),
        },
        Value::Object(map) => {
            let properties: Map<String, Value> = map
                .iter()
                .map(|(k, v)| (k.clone(), schema_of(v, slot)))
                .collect();
            let required: Vec<&String> = map.keys().collect();
            json!({"type": "object", "properties": properties, "required": required})
        }
        Value::Array(items) => match items.first() {
            Some(first) if items.len() == 1 => {
                json!({"type": "array", "items": schema_of(first, slot)})
            }
            _ => json!({"type": "array", "items": {}}),
        },
        Value::Bool(b) => json!({"type": "boolean", "enum": [b]}),
        Value::Number(n) if n.is_i64() || n.is_u64() => json!({"type": "integer", "enum": [n]}),
        Value::Number(n) => json!({"type": "number", "enum": [n]}),
        Value::Null => json!({"nullable": true}),
    }
}

/// `snake_case` as `camelCase`.
pub fn camel(key: &str) -> String {
    let mut out = String::with_capacity(key.len());
    let mut upper = false;
    for c in key.chars() {
        if c == '_' && !out.is_empty() {
            upper = true;
        } else if upper {
            out.push(c.to_ascii_uppercase());
            upper = false;
        } else {
            out.push(c);
        }
    }
    out
}

/// A lowercase enum word in `case`.
pub fn enum_word(word: &str, case: EnumCase) -> String {
    match case {
        EnumCase::Lower => word.to_owned(),
        EnumCase::Upper => word.to_ascii_uppercase(),
        EnumCase::Capitalized => {
            let mut chars = word.chars();
            chars.next().map_or_else(String::new, |first| {
                first.to_ascii_uppercase().to_string() + chars.as_str()
            })
        }
    }
}

/// The settings of a dialect, as read from the configuration.
#[derive(Debug, Clone, Default)]
pub struct DialectSettings {
    /// `LIST_ENVELOPE`.
    pub list_envelope: Option<String>,
    /// `TASK_ENVELOPE`.
    pub task_envelope: Option<String>,
    /// `ERROR_ENVELOPE`.
    pub error_envelope: Option<String>,
    /// `JSON_CASE`.
    pub json_case: JsonCase,
    /// `ENUM_CASE`.
    pub enum_case: EnumCase,
    /// `DUE_DATE_FORMAT`.
    pub due_date_format: DueDateFormat,
}

/// A compiled dialect.
#[derive(Debug, Clone, Default)]
pub struct Dialect {
    /// The list envelope, if any.
    pub list: Option<Template>,
    /// The single-task envelope, if any.
    pub task: Option<Template>,
    /// The error envelope, if any.
    pub error: Option<Template>,
    /// The case of answer keys.
    pub json_case: JsonCase,
    /// The case of enum values in answers.
    pub enum_case: EnumCase,
    /// The form of due dates.
    pub due_date_format: DueDateFormat,
    /// The task writer's bytes for this dialect.
    pub format: crate::dto::TaskFormat,
}

impl Dialect {
    /// Compiles `settings`; an empty template means unset. The error is one line naming the
    /// setting that is wrong.
    pub fn new(settings: &DialectSettings) -> Result<Self, String> {
        let compile = |envelope: Envelope, text: &Option<String>| {
            text.as_deref()
                .map(str::trim)
                .filter(|t| !t.is_empty())
                .map(|t| Template::compile(envelope, t))
                .transpose()
        };
        Ok(Self {
            list: compile(Envelope::List, &settings.list_envelope)?,
            task: compile(Envelope::Task, &settings.task_envelope)?,
            error: compile(Envelope::Error, &settings.error_envelope)?,
            json_case: settings.json_case,
            enum_case: settings.enum_case,
            due_date_format: settings.due_date_format,
            format: crate::dto::TaskFormat::new(
                settings.json_case,
                settings.enum_case,
                settings.due_date_format,
            ),
        })
    }

    /// Whether answers other than tasks need rewriting (an error envelope, or camelCase keys):
    /// then [`Rewrite`] reads every answer, and the task writer marks its own.
    pub fn rewrites_answers(&self) -> bool {
        self.error.is_some() || self.json_case == JsonCase::Camel
    }

    /// Whether the list envelope shows counts (`$total`, `$completed_count`,
    /// `$pending_count`): only then does a list count what its filters match.
    pub fn list_shows_counts(&self) -> bool {
        self.list.as_ref().is_some_and(|t| {
            t.uses(Slot::Total) || t.uses(Slot::CompletedCount) || t.uses(Slot::PendingCount)
        })
    }

    /// Whether any setting differs from the API's own shape.
    pub fn is_default(&self) -> bool {
        self.list.is_none()
            && self.task.is_none()
            && self.error.is_none()
            && self.json_case == JsonCase::Snake
            && self.enum_case == EnumCase::Lower
            && self.due_date_format == DueDateFormat::Datetime
    }

    /// One answer in the dialect.
    async fn rewrite(&self, resp: Response) -> Response {
        if resp.extensions().get::<Written>().is_some() {
            return resp;
        }
        let content_type = crate::problem::content_type(&resp).to_owned();
        let problem = content_type.starts_with(crate::problem::PROBLEM_JSON);
        let json = problem || content_type.starts_with("application/json");
        if !json || (!problem && self.json_case == JsonCase::Snake) {
            return resp;
        }
        let (parts, body) = resp.into_parts();
        let Ok(bytes) = body.into_bytes().await else {
            return Response::from_parts(parts, poem::Body::empty());
        };
        let Ok(mut value) = serde_json::from_slice::<Value>(&bytes) else {
            return Response::from_parts(parts, bytes.into());
        };
        if self.json_case == JsonCase::Camel {
            camel_keys(&mut value);
        }
        let mut parts = parts;
        let out = match (&self.error, problem) {
            (Some(template), true) => {
                parts.headers.insert(
                    header::CONTENT_TYPE,
                    header::HeaderValue::from_static("application/json"),
                );
                let mut out = Vec::with_capacity(bytes.len() + template.literal_len());
                let field = |v: &Value, k: &str| v.get(k).cloned().unwrap_or(Value::Null);
                let status = parts.status.as_u16();
                let _ = template.write(&mut out, |slot, out| {
                    let v = match slot {
                        Slot::Status => json!(status),
                        Slot::Title => field(&value, "title"),
                        Slot::Detail => field(&value, "detail"),
                        Slot::Code => json!(error_code(status)),
                        Slot::Errors => value.get("errors").cloned().unwrap_or_else(|| json!([])),
                        _ => Value::Null,
                    };
                    serde_json::to_writer(out, &v)
                });
                out
            }
            _ => serde_json::to_vec(&value).unwrap_or_else(|_| bytes.to_vec()),
        };
        parts.headers.remove(header::CONTENT_LENGTH);
        Response::from_parts(parts, out.into())
    }

    /// The OpenAPI document `spec` as this dialect answers: envelopes around the task, list
    /// and error answers, keys and enum values in its cases, due dates in its form. Requests
    /// are described as they are: the API reads its own spelling and camelCase alike.
    pub fn contract(&self, spec: &str) -> String {
        if self.is_default() {
            return spec.to_owned();
        }
        let Ok(mut doc) = serde_json::from_str::<Value>(spec) else {
            return spec.to_owned();
        };
        let task_ref = json!({"$ref": "#/components/schemas/Task"});
        let list_schema = json!({"type": "array", "items": task_ref});
        let slot = |s: Slot| -> Value {
            match s {
                Slot::Tasks => list_schema.clone(),
                Slot::Task => task_ref.clone(),
                Slot::Total
                | Slot::CompletedCount
                | Slot::PendingCount
                | Slot::Skip
                | Slot::Limit => json!({"type": "integer", "format": "int64", "minimum": 0}),
                Slot::HasMore => json!({"type": "boolean"}),
                Slot::NextCursor => json!({"type": "string", "nullable": true}),
                Slot::Status => json!({"type": "integer", "format": "int32"}),
                Slot::Title | Slot::Detail => json!({"type": "string"}),
                Slot::Code => {
                    let mut codes: Vec<&str> = ERROR_CODES.iter().map(|(_, c)| *c).collect();
                    codes.extend(CLASS_CODES);
                    json!({"type": "string", "enum": codes})
                }
                Slot::Errors => json!({
                    "type": "array",
                    "items": {"$ref": "#/components/schemas/FieldProblem"}
                }),
            }
        };
        let response_schemas = response_components(&doc);
        if let Some(paths) = doc.get_mut("paths").and_then(Value::as_object_mut) {
            for op in paths.values_mut().filter_map(Value::as_object_mut) {
                for op in op.values_mut() {
                    let Some(responses) = op.get_mut("responses").and_then(Value::as_object_mut)
                    else {
                        continue;
                    };
                    for response in responses.values_mut() {
                        let Some(content) =
                            response.get_mut("content").and_then(Value::as_object_mut)
                        else {
                            continue;
                        };
                        if let Some(t) = &self.error
                            && let Some(problem) = content.remove(crate::problem::PROBLEM_JSON)
                        {
                            let mut media = problem;
                            media["schema"] = t.schema(&slot);
                            content.insert("application/json".to_owned(), media);
                        }
                        for media in content.values_mut() {
                            let Some(schema) = media.get_mut("schema") else {
                                continue;
                            };
                            if *schema == task_ref
                                && let Some(t) = &self.task
                            {
                                *schema = t.schema(&slot);
                            } else if *schema == list_schema
                                && let Some(t) = &self.list
                            {
                                *schema = t.schema(&slot);
                            }
                        }
                    }
                }
            }
        }
        if let Some(schemas) = doc
            .pointer_mut("/components/schemas")
            .and_then(Value::as_object_mut)
        {
            for (name, schema) in schemas.iter_mut() {
                if let Some(values) = schema.get_mut("enum").and_then(Value::as_array_mut) {
                    for v in values.iter_mut() {
                        if let Some(word) = v.as_str() {
                            *v = Value::String(enum_word(word, self.enum_case));
                        }
                    }
                }
                if name == "Task"
                    && self.due_date_format == DueDateFormat::Date
                    && let Some(due) = schema.pointer_mut("/properties/due_date")
                {
                    due["format"] = json!("date");
                }
                if self.json_case == JsonCase::Camel && response_schemas.contains(name) {
                    camel_schema(schema);
                }
            }
        }
        serde_json::to_string_pretty(&doc).unwrap_or_else(|_| spec.to_owned())
    }
}

/// The middleware for the `/api` routes that makes answers not written by the task writer
/// follow the dialect: errors in the error envelope (as `application/json`), keys in its case.
/// Mount it only when [`Dialect::rewrites_answers`]; without it, answers are not read again.
pub struct Rewrite(pub Arc<Dialect>);

impl<E: Endpoint> Middleware<E> for Rewrite {
    type Output = RewriteEndpoint<E>;

    fn transform(&self, inner: E) -> Self::Output {
        RewriteEndpoint {
            inner,
            dialect: self.0.clone(),
        }
    }
}

/// [`Rewrite`] around an endpoint.
pub struct RewriteEndpoint<E> {
    inner: E,
    dialect: Arc<Dialect>,
}

impl<E: Endpoint> Endpoint for RewriteEndpoint<E> {
    type Output = Response;

    async fn call(&self, req: Request) -> poem::Result<Response> {
        // Errors become problem documents here, so the envelope sees them.
        let resp = match self.inner.call(req).await {
            Ok(r) => r.into_response(),
            Err(e) => crate::problem::catch_all(e).await,
        };
        Ok(self.dialect.rewrite(resp).await)
    }
}

/// Marks an answer the task writer wrote in the dialect already.
#[derive(Debug, Clone, Copy)]
pub struct Written;

/// Renames every object key in `value` to camelCase.
fn camel_keys(value: &mut Value) {
    match value {
        Value::Object(map) => {
            let old = std::mem::take(map);
            for (k, mut v) in old {
                camel_keys(&mut v);
                map.insert(camel(&k), v);
            }
        }
        Value::Array(items) => items.iter_mut().for_each(camel_keys),
        _ => {}
    }
}

/// Renames an object schema's properties (and its `required` list) to camelCase.
fn camel_schema(schema: &mut Value) {
    if let Some(props) = schema.get_mut("properties").and_then(Value::as_object_mut) {
        let old = std::mem::take(props);
        for (k, v) in old {
            props.insert(camel(&k), v);
        }
    }
    if let Some(required) = schema.get_mut("required").and_then(Value::as_array_mut) {
        for r in required.iter_mut() {
            if let Some(k) = r.as_str() {
                *r = Value::String(camel(k));
            }
        }
    }
}

/// The component schemas that answers use and requests do not (their keys follow the
/// dialect's case; requests keep the API's spelling, which is always read).
fn response_components(doc: &Value) -> Vec<String> {
    fn refs(v: &Value, out: &mut Vec<String>) {
        match v {
            Value::Object(map) => {
                for (k, v) in map {
                    match (k.as_str(), v.as_str()) {
                        ("$ref", Some(r)) => {
                            let name = r.rsplit('/').next().unwrap_or(r).to_owned();
                            if !out.contains(&name) {
                                out.push(name);
                            }
                        }
                        _ => refs(v, out),
                    }
                }
            }
            Value::Array(items) => items.iter().for_each(|v| refs(v, out)),
            _ => {}
        }
    }
    let closure = |mut names: Vec<String>| {
        let mut i = 0;
        while i < names.len() {
            if let Some(schema) = doc.pointer(&format!("/components/schemas/{}", names[i])) {
                refs(schema, &mut names);
            }
            i += 1;
        }
        names
    };
    let (mut requests, mut responses) = (Vec::new(), Vec::new());
    if let Some(paths) = doc.get("paths").and_then(Value::as_object) {
        for op in paths
            .values()
            .filter_map(Value::as_object)
            .flat_map(|o| o.values())
        {
            if let Some(body) = op.get("requestBody") {
                refs(body, &mut requests);
            }
            if let Some(params) = op.get("parameters") {
                refs(params, &mut requests);
            }
            if let Some(answers) = op.get("responses") {
                refs(answers, &mut responses);
            }
        }
    }
    let requests = closure(requests);
    closure(responses)
        .into_iter()
        .filter(|n| !requests.contains(n))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn templates_compile_to_literals_and_slots_and_write_exact_json() {
        let t = Template::compile(
            Envelope::List,
            r#"{"data": {"tasks": "$tasks", "total": "$total"}, "ok": true, "price": "$5 off"}"#,
        )
        .unwrap();
        assert!(t.uses(Slot::Total) && !t.uses(Slot::PendingCount));
        let mut out = Vec::new();
        t.write(&mut out, |slot, out| {
            out.extend_from_slice(match slot {
                Slot::Tasks => b"[1,2]".as_slice(),
                _ => b"2",
            });
            Ok::<(), ()>(())
        })
        .unwrap();
        assert_eq!(
            String::from_utf8(out).unwrap(),
            r#"{"data":{"tasks":[1,2],"total":2},"ok":true,"price":"$5 off"}"#
        );
    }

    #[test]
    fn a_bad_template_is_one_line_naming_its_setting() {
        let bad = [
            (Envelope::List, "{\"items\": \"$tasks\"", "not valid JSON"),
            (
                Envelope::List,
                r#"{"items": "$taks"}"#,
                "unknown placeholder \"$taks\"",
            ),
            (
                Envelope::List,
                r#"{"items": []}"#,
                "must contain the placeholder \"$tasks\"",
            ),
            (Envelope::Task, r#"{"task": "$tasks"}"#, "cannot fill"),
            (Envelope::Error, r#"{"error": "$task"}"#, "cannot fill"),
        ];
        for (envelope, text, says) in bad {
            let e = Template::compile(envelope, text).unwrap_err();
            assert!(
                e.starts_with(envelope.setting()) && e.contains(says) && !e.contains('\n'),
                "{e}"
            );
        }
    }

    #[test]
    fn a_template_that_repeats_the_tasks_or_a_key_or_an_error_envelope_that_says_nothing_is_refused_with_its_reason()
     {
        let bad = [
            (
                Envelope::List,
                r#"{"items": "$tasks", "again": "$tasks"}"#,
                "uses the placeholder \"$tasks\" 2 times (at most once)",
            ),
            (
                Envelope::List,
                r#"["$tasks", ["$tasks", "$tasks"]]"#,
                "uses the placeholder \"$tasks\" 3 times (at most once)",
            ),
            (
                Envelope::Task,
                r#"{"data": "$task", "copy": {"task": "$task"}}"#,
                "uses the placeholder \"$task\" 2 times (at most once)",
            ),
            (
                Envelope::List,
                r#"{"items": "$tasks", "items": []}"#,
                "has the key \"items\" twice in one object",
            ),
            (
                Envelope::Error,
                r#"{"error": {"code": "$code", "code": "$detail"}}"#,
                "has the key \"code\" twice in one object",
            ),
            (Envelope::Error, "null", "must be a JSON object"),
            (Envelope::Error, r#"["$detail"]"#, "must be a JSON object"),
            (
                Envelope::Error,
                "{}",
                "must contain the placeholder \"$detail\" or \"$code\"",
            ),
            (
                Envelope::Error,
                r#"{"ok": false, "status": "$status"}"#,
                "must contain the placeholder \"$detail\" or \"$code\"",
            ),
        ];
        for (envelope, text, says) in bad {
            let e = Template::compile(envelope, text).unwrap_err();
            assert!(
                e.starts_with(envelope.setting()) && e.contains(says) && !e.contains('\n'),
                "{text}: {e}"
            );
        }
        // Small slots may repeat; an error envelope with either of its two words is enough.
        let total_twice = r#"{"items": "$tasks", "total": "$total", "count": "$total"}"#;
        assert!(Template::compile(Envelope::List, total_twice).is_ok());
        for ok in [r#"{"message": "$detail"}"#, r#"{"e": {"code": "$code"}}"#] {
            assert!(Template::compile(Envelope::Error, ok).is_ok(), "{ok}");
        }
    }

    #[test]
    fn every_status_has_its_own_code() {
        assert_eq!(error_code(405), "method_not_allowed");
        assert_eq!(error_code(406), "not_acceptable");
        assert_eq!(error_code(422), "validation_error");
        let mut seen = std::collections::HashSet::new();
        for status in 400..=599u16 {
            if poem::http::StatusCode::from_u16(status)
                .ok()
                .and_then(|s| s.canonical_reason())
                .is_some()
            {
                let code = error_code(status);
                assert_ne!(code, "error", "{status}");
                assert!(seen.insert(code), "{status} shares its code {code}");
            }
        }
    }

    #[test]
    fn keys_and_words_change_case() {
        assert_eq!(camel("due_date"), "dueDate");
        assert_eq!(camel("by_priority"), "byPriority");
        assert_eq!(camel("id"), "id");
        assert_eq!(enum_word("high", EnumCase::Capitalized), "High");
        assert_eq!(enum_word("pending", EnumCase::Upper), "PENDING");
        assert_eq!(enum_word("low", EnumCase::Lower), "low");
    }
}
