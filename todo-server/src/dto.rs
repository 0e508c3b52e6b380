//! The JSON shapes of the API, and the parsing of request bodies into validated core input.
//!
//! Request bodies are read as JSON objects and each known field is checked here, so every invalid
//! field is reported by name in one 422; unknown fields are ignored (frontends send extras).

use std::borrow::Cow;
use std::sync::{Arc, LazyLock};

use chrono::{DateTime, Utc};
use poem_openapi::payload::Payload;
use poem_openapi::registry::{MetaSchemaRef, Registry};
use poem_openapi::types::{MaybeUndefined, Type};
use poem_openapi::{Enum, Object};
use serde_json::{Map, Value};
use todo_core::{
    Description, FIELDS, NewTask, Priority, Recurrence, Tags, Task, TaskPatch, Title,
    ValidationError,
};

use crate::dialect::{Dialect, DueDateFormat, EnumCase, JsonCase, Slot, Written, camel, enum_word};
use crate::payload::json_response;
use crate::plain::{self, PlainInputDoc, PlainValues};

/// Task priority.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Enum, serde::Serialize)]
#[oai(rename_all = "lowercase")]
#[serde(rename_all = "lowercase")]
pub enum PriorityDto {
    /// Low.
    Low,
    /// Medium (the default).
    Medium,
    /// High.
    High,
}

impl From<Priority> for PriorityDto {
    fn from(p: Priority) -> Self {
        match p {
            Priority::Low => Self::Low,
            Priority::Medium => Self::Medium,
            Priority::High => Self::High,
        }
    }
}

/// How many of the user's tasks there are.
#[derive(Debug, Clone, Object, serde::Serialize)]
#[oai(rename = "TaskStats")]
pub struct TaskStatsDto {
    /// All of the user's tasks.
    pub total: u64,
    /// Those completed.
    pub completed: u64,
    /// Those not completed.
    pub pending: u64,
    /// Those not completed and due before now.
    pub overdue: u64,
    /// How many have each priority.
    pub by_priority: PriorityCountsDto,
}

/// Task counts by priority.
#[derive(Debug, Clone, Object, serde::Serialize)]
#[oai(rename = "PriorityCounts")]
pub struct PriorityCountsDto {
    /// Low priority.
    pub low: u64,
    /// Medium priority.
    pub medium: u64,
    /// High priority.
    pub high: u64,
}

impl From<todo_core::TaskStats> for TaskStatsDto {
    fn from(s: todo_core::TaskStats) -> Self {
        Self {
            total: s.total,
            completed: s.completed,
            pending: s.pending,
            overdue: s.overdue,
            by_priority: PriorityCountsDto {
                low: s.by_priority.low,
                medium: s.by_priority.medium,
                high: s.by_priority.high,
            },
        }
    }
}

/// A task's status as a word.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Enum, serde::Serialize)]
#[oai(rename_all = "lowercase")]
#[serde(rename_all = "lowercase")]
pub enum TaskStatusDto {
    /// Not done.
    Pending,
    /// Done.
    Completed,
}

// The contract's schema for a task. Bodies are written by `TaskJson` and `TaskListJson`; this
// type's serde serialisation is what they are tested against.
/// A task as the API returns it.
#[derive(Debug, Clone, Object, serde::Serialize)]
#[oai(rename = "Task")]
pub struct TaskDto {
    /// Task id.
    pub id: i64,
    /// The owner's user id.
    pub user_id: String,
    /// Title (1 to 200 characters).
    pub title: String,
    /// Description, or null.
    #[oai(nullable)]
    pub description: Option<String>,
    /// Whether the task is done.
    pub completed: bool,
    /// `completed` as a word (`pending` or `completed`), for frontends that read a status.
    /// Read-only.
    pub status: TaskStatusDto,
    /// Priority.
    pub priority: PriorityDto,
    /// Due date (RFC 3339, UTC), or null.
    #[oai(nullable)]
    #[serde(serialize_with = "rfc3339::serialize_opt")]
    pub due_date: Option<DateTime<Utc>>,
    /// Creation time (RFC 3339, UTC).
    #[serde(serialize_with = "rfc3339::serialize")]
    pub created_at: DateTime<Utc>,
    /// Last update time (RFC 3339, UTC).
    #[serde(serialize_with = "rfc3339::serialize")]
    pub updated_at: DateTime<Utc>,
    /// When the task became completed (RFC 3339, UTC), or null while it is pending. Read-only:
    /// set by the write that completes the task, cleared when it is reopened.
    #[oai(nullable)]
    #[serde(serialize_with = "rfc3339::serialize_opt")]
    pub completed_at: Option<DateTime<Utc>>,
    /// Tags, in the order given (`[]` when none).
    pub tags: Vec<String>,
    /// The recurrence rule (an RFC 5545 RRULE, canonical form), or null.
    #[oai(nullable)]
    pub recurrence: Option<String>,
    /// The plain fields ([`todo_core::FIELDS`]), in their order.
    #[oai(flatten)]
    #[serde(flatten)]
    pub fields: PlainValues,
}

/// Times as the API writes them: `2026-11-24T06:02:24.998244Z`, UTC, with six fractional digits
/// when the microseconds are not zero and none when they are (what Pydantic writes for an aware
/// UTC time). Written digit by digit into a stack buffer: a list of 50 tasks writes 100 of them,
/// and going through `fmt` cost a tenth of the list's CPU time.
pub(crate) mod rfc3339 {
    use chrono::{DateTime, Datelike, Timelike, Utc};
    use serde::Serializer;

    /// `YYYY-MM-DDTHH:MM:SS.ffffffZ`.
    const MAX_LEN: usize = 27;

    fn digits(out: &mut [u8], mut value: u32) {
        for slot in out.iter_mut().rev() {
            // `value % 10` is below 10, so the cast cannot truncate.
            *slot = b'0' + (value % 10) as u8;
            value /= 10;
        }
    }

    /// The text of `t`; years outside 0..=9999 (which the store never holds) fall back to
    /// chrono's own formatting.
    pub(super) fn format(t: &DateTime<Utc>, buf: &mut [u8; MAX_LEN]) -> Option<usize> {
        let year = u32::try_from(t.year()).ok().filter(|y| *y <= 9999)?;
        digits(&mut buf[0..4], year);
        buf[4] = b'-';
        digits(&mut buf[5..7], t.month());
        buf[7] = b'-';
        digits(&mut buf[8..10], t.day());
        buf[10] = b'T';
        digits(&mut buf[11..13], t.hour());
        buf[13] = b':';
        digits(&mut buf[14..16], t.minute());
        buf[16] = b':';
        digits(&mut buf[17..19], t.second());
        let micros = t.timestamp_subsec_micros();
        let end = if micros == 0 {
            19
        } else {
            buf[19] = b'.';
            digits(&mut buf[20..26], micros.min(999_999));
            26
        };
        buf[end] = b'Z';
        Some(end + 1)
    }

    /// Calls `f` with the text of `t`: [`format`]'s, or chrono's own outside the years it
    /// writes.
    pub(crate) fn with_text<R>(t: &DateTime<Utc>, f: impl FnOnce(&str) -> R) -> R {
        let mut buf = [0u8; MAX_LEN];
        match format(t, &mut buf).and_then(|n| std::str::from_utf8(&buf[..n]).ok()) {
            Some(text) => f(text),
            None => f(&t.to_rfc3339_opts(chrono::SecondsFormat::AutoSi, true)),
        }
    }

    pub(super) fn serialize<S: Serializer>(t: &DateTime<Utc>, s: S) -> Result<S::Ok, S::Error> {
        with_text(t, |text| s.serialize_str(text))
    }

    pub(super) fn serialize_opt<S: Serializer>(
        t: &Option<DateTime<Utc>>,
        s: S,
    ) -> Result<S::Ok, S::Error> {
        match t {
            Some(t) => serialize(t, s),
            None => s.serialize_none(),
        }
    }
}

impl From<Task> for TaskDto {
    fn from(t: Task) -> Self {
        let fields = PlainValues::from(&t);
        Self {
            id: t.id,
            user_id: t.user_id,
            title: t.title,
            description: t.description,
            completed: t.completed,
            status: if t.completed {
                TaskStatusDto::Completed
            } else {
                TaskStatusDto::Pending
            },
            priority: t.priority.into(),
            due_date: t.due_date,
            created_at: t.created_at,
            updated_at: t.updated_at,
            completed_at: t.completed_at,
            tags: t.tags,
            recurrence: t.recurrence,
            fields,
        }
    }
}

/// Writes tasks in the shape of [`TaskDto`] straight from core tasks: keys are literal bytes,
/// values go through serde_json's own escaping and number formatting, and the buffer is sized
/// once. Serialising through [`TaskDto`] escaped every key of every task and grew the buffer
/// from 128 bytes by doubling, about a tenth of a list's CPU time (docs/benchmarks.md). With
/// the default [`TaskFormat`], the output is byte for byte what serde writes for [`TaskDto`]
/// (tested).
mod task_json {
    use std::sync::LazyLock;

    use todo_core::fields::ValueRef;
    use todo_core::{FIELDS, Task};

    use super::{Fragments, plain, rfc3339};

    /// At least the bytes of a task's JSON besides its strings' text and its plain fields:
    /// keys, punctuation, a 20-character id, four quoted 27-character times, the status word and
    /// the strings' quotes (in the API's own spelling, the longest of the dialects').
    const FIXED_BYTES: usize = 335;

    /// At least the bytes of the plain fields' keys and values besides their texts' characters.
    fn plain_fixed_bytes() -> usize {
        static BYTES: LazyLock<usize> = LazyLock::new(|| {
            FIELDS
                .iter()
                .map(|f| f.name.len() + 4 + plain::fixed_bytes(f.kind))
                .sum()
        });
        *BYTES
    }

    /// An upper estimate of `task`'s JSON length without escapes.
    pub(super) fn size_hint(task: &Task) -> usize {
        let plain_texts: usize = FIELDS
            .iter()
            .map(|f| match f.get(task) {
                ValueRef::Text(Some(s)) => s.len(),
                _ => 0,
            })
            .sum();
        FIXED_BYTES
            + plain_fixed_bytes()
            + plain_texts
            + task.user_id.len()
            + task.title.len()
            + task.description.as_ref().map_or(0, String::len)
            + task.tags.iter().map(|t| t.len() + 3).sum::<usize>()
            + task.recurrence.as_ref().map_or(0, String::len)
    }

    fn string(out: &mut Vec<u8>, s: &str) -> serde_json::Result<()> {
        serde_json::to_writer(&mut *out, s)
    }

    /// A time's text holds digits, `-`, `+`, `:`, `T`, `.` and `Z`: nothing JSON escapes.
    fn time(out: &mut Vec<u8>, t: &chrono::DateTime<chrono::Utc>) {
        rfc3339::with_text(t, |text| {
            out.push(b'"');
            out.extend_from_slice(text.as_bytes());
            out.push(b'"');
        });
    }

    /// Appends `task`'s JSON object to `out`, keys and words as `f` has them.
    pub(super) fn write<F: Fragments>(
        out: &mut Vec<u8>,
        task: &Task,
        f: &F,
    ) -> serde_json::Result<()> {
        out.extend_from_slice(f.key(0));
        serde_json::to_writer(&mut *out, &task.id)?;
        out.extend_from_slice(f.key(1));
        string(out, &task.user_id)?;
        out.extend_from_slice(f.key(2));
        string(out, &task.title)?;
        out.extend_from_slice(f.key(3));
        match &task.description {
            Some(d) => string(out, d)?,
            None => out.extend_from_slice(b"null"),
        }
        out.extend_from_slice(f.completed(task.completed));
        out.extend_from_slice(f.priority(task.priority));
        out.extend_from_slice(f.key(4));
        match &task.due_date {
            Some(t) if f.date_only_due() => {
                out.push(b'"');
                out.extend_from_slice(t.format("%Y-%m-%d").to_string().as_bytes());
                out.push(b'"');
            }
            Some(t) => time(out, t),
            None => out.extend_from_slice(b"null"),
        }
        out.extend_from_slice(f.key(5));
        time(out, &task.created_at);
        out.extend_from_slice(f.key(6));
        time(out, &task.updated_at);
        out.extend_from_slice(f.key(7));
        match &task.completed_at {
            Some(t) => time(out, t),
            None => out.extend_from_slice(b"null"),
        }
        out.extend_from_slice(f.key(8));
        for (i, tag) in task.tags.iter().enumerate() {
            if i > 0 {
                out.push(b',');
            }
            string(out, tag)?;
        }
        out.push(b']');
        out.extend_from_slice(f.key(9));
        match &task.recurrence {
            Some(r) => string(out, r)?,
            None => out.extend_from_slice(b"null"),
        }
        for (i, field) in FIELDS.iter().enumerate() {
            out.extend_from_slice(f.plain_key(i));
            plain::write(out, field.get(task))?;
        }
        out.push(b'}');
        Ok(())
    }
}

/// The bytes of a task's JSON a dialect may change: each key with its punctuation, the
/// `completed`/`status` pair and the priority word for each value, and whether a due date is
/// written as a date alone. The writer is monomorphised for each implementation, so the API's
/// own spelling ([`ApiSpelling`]) is written from constants.
trait Fragments {
    /// Key `i` of [`KEYS`] with the punctuation before it (and `[` after `tags`).
    fn key(&self, i: usize) -> &[u8];
    /// Plain field `i`'s key ([`FIELDS`]) with the comma before it.
    fn plain_key(&self, i: usize) -> &[u8];
    /// `,"completed":...,"status":"..."` for `done`.
    fn completed(&self, done: bool) -> &[u8];
    /// `,"priority":"..."` for `p`.
    fn priority(&self, p: todo_core::Priority) -> &[u8];
    /// Whether `due_date` is written as `YYYY-MM-DD`.
    fn date_only_due(&self) -> bool;
}

/// The keys of a task's JSON, in order, with the punctuation before them (`{` or `,`) and after
/// them (`[` for `tags`), in the API's own spelling.
const KEYS: [(&str, &str, &str); 10] = [
    ("{", "id", ""),
    (",", "user_id", ""),
    (",", "title", ""),
    (",", "description", ""),
    (",", "due_date", ""),
    (",", "created_at", ""),
    (",", "updated_at", ""),
    (",", "completed_at", ""),
    (",", "tags", "["),
    (",", "recurrence", ""),
];

/// The API's own spelling, from constants.
struct ApiSpelling;

impl Fragments for ApiSpelling {
    fn key(&self, i: usize) -> &[u8] {
        const BYTES: [&[u8]; 10] = [
            b"{\"id\":",
            b",\"user_id\":",
            b",\"title\":",
            b",\"description\":",
            b",\"due_date\":",
            b",\"created_at\":",
            b",\"updated_at\":",
            b",\"completed_at\":",
            b",\"tags\":[",
            b",\"recurrence\":",
        ];
        BYTES[i]
    }

    fn plain_key(&self, i: usize) -> &[u8] {
        static KEYS: LazyLock<Vec<Box<[u8]>>> = LazyLock::new(|| {
            FIELDS
                .iter()
                .map(|f| format!(",\"{}\":", f.name).into_bytes().into_boxed_slice())
                .collect()
        });
        &KEYS[i]
    }

    fn completed(&self, done: bool) -> &[u8] {
        if done {
            b",\"completed\":true,\"status\":\"completed\""
        } else {
            b",\"completed\":false,\"status\":\"pending\""
        }
    }

    fn priority(&self, p: todo_core::Priority) -> &[u8] {
        match p {
            todo_core::Priority::Low => b",\"priority\":\"low\"",
            todo_core::Priority::Medium => b",\"priority\":\"medium\"",
            todo_core::Priority::High => b",\"priority\":\"high\"",
        }
    }

    fn date_only_due(&self) -> bool {
        false
    }
}

/// A dialect's task bytes, prepared once at start.
#[derive(Debug, Clone)]
pub struct TaskFormat {
    /// Whether this is the API's own spelling (then the writer uses [`ApiSpelling`]).
    own: bool,
    keys: [Box<[u8]>; 10],
    /// Each plain field's key, with the comma before it.
    plain_keys: Vec<Box<[u8]>>,
    /// For `completed` false, then true.
    completed: [Box<[u8]>; 2],
    /// By priority rank (low, medium, high).
    priority: [Box<[u8]>; 3],
    date_only_due: bool,
}

impl Fragments for TaskFormat {
    fn key(&self, i: usize) -> &[u8] {
        &self.keys[i]
    }

    fn plain_key(&self, i: usize) -> &[u8] {
        &self.plain_keys[i]
    }

    fn completed(&self, done: bool) -> &[u8] {
        &self.completed[usize::from(done)]
    }

    fn priority(&self, p: todo_core::Priority) -> &[u8] {
        &self.priority[p.rank() as usize]
    }

    fn date_only_due(&self) -> bool {
        self.date_only_due
    }
}

impl TaskFormat {
    /// The bytes for keys in `case`, enum words in `enums`, and due dates in `due`.
    pub fn new(case: JsonCase, enums: EnumCase, due: DueDateFormat) -> Self {
        let key = |lead: &str, name: &str, tail: &str| -> Box<[u8]> {
            let name = match case {
                JsonCase::Snake => name.to_owned(),
                JsonCase::Camel => camel(name),
            };
            format!("{lead}\"{name}\":{tail}")
                .into_bytes()
                .into_boxed_slice()
        };
        let word = |w: &str| enum_word(w, enums);
        let completed = |done: bool, status: &str| -> Box<[u8]> {
            let mut b = key(",", "completed", if done { "true" } else { "false" }).into_vec();
            b.extend_from_slice(&key(",", "status", &format!("\"{}\"", word(status))));
            b.into_boxed_slice()
        };
        let priority = |w: &str| key(",", "priority", &format!("\"{}\"", word(w)));
        Self {
            own: case == JsonCase::Snake
                && enums == EnumCase::Lower
                && due == DueDateFormat::Datetime,
            keys: KEYS.map(|(lead, name, tail)| key(lead, name, tail)),
            plain_keys: FIELDS.iter().map(|f| key(",", f.name, "")).collect(),
            completed: [completed(false, "pending"), completed(true, "completed")],
            priority: [priority("low"), priority("medium"), priority("high")],
            date_only_due: due == DueDateFormat::Date,
        }
    }

    /// Appends `task`'s JSON object to `out` in this format.
    fn write(&self, out: &mut Vec<u8>, task: &Task) -> serde_json::Result<()> {
        if self.own {
            task_json::write(out, task, &ApiSpelling)
        } else {
            task_json::write(out, task, self)
        }
    }
}

impl Default for TaskFormat {
    /// The API's own spelling: snake_case keys, lowercase words, RFC 3339 due dates.
    fn default() -> Self {
        Self::new(JsonCase::Snake, EnumCase::Lower, DueDateFormat::Datetime)
    }
}

/// One task as a response body, written in [`TaskDto`]'s shape (which the contract documents)
/// as the deployment's dialect has it.
pub struct TaskJson {
    /// The task.
    pub task: Task,
    /// The dialect it is written in.
    pub dialect: Arc<Dialect>,
}

impl TaskJson {
    /// The body's bytes.
    pub fn to_bytes(&self) -> serde_json::Result<Vec<u8>> {
        let d = &*self.dialect;
        let mut out = Vec::with_capacity(task_json::size_hint(&self.task));
        match &d.task {
            None => d.format.write(&mut out, &self.task)?,
            Some(t) => t.write(&mut out, |_, out| d.format.write(out, &self.task))?,
        }
        Ok(out)
    }
}

/// Documents `$body` in the contract with `$schema`'s schema, and answers with its bytes.
macro_rules! written_payload {
    ($body:ty, $schema:ty) => {
        impl Payload for $body {
            const CONTENT_TYPE: &'static str = "application/json; charset=utf-8";

            fn schema_ref() -> MetaSchemaRef {
                <$schema>::schema_ref()
            }

            fn register(registry: &mut Registry) {
                <$schema>::register(registry);
            }
        }

        impl poem::IntoResponse for $body {
            fn into_response(self) -> poem::Response {
                let marks = self.dialect.rewrites_answers();
                let mut resp = json_response(self.to_bytes());
                if marks {
                    resp.extensions_mut().insert(Written);
                }
                resp
            }
        }
    };
}

written_payload!(TaskJson, TaskDto);
written_payload!(TaskListJson, Vec<TaskDto>);

/// What a list envelope may say besides the tasks.
#[derive(Debug, Clone, Default)]
pub struct ListMeta {
    /// The counts of the list's filters, when the envelope asks for them.
    pub counts: Option<todo_core::ListCounts>,
    /// The page's offset.
    pub skip: u32,
    /// The page size.
    pub limit: u32,
    /// The next page's cursor.
    pub next_cursor: Option<String>,
}

/// A page of tasks as a response body: a JSON array of [`TaskDto`]s, in the dialect's list
/// envelope when it has one.
pub struct TaskListJson {
    /// The tasks.
    pub tasks: Vec<Task>,
    /// The dialect they are written in.
    pub dialect: Arc<Dialect>,
    /// The rest of the page, for an envelope.
    pub meta: ListMeta,
}

impl TaskListJson {
    fn write_tasks(&self, out: &mut Vec<u8>) -> serde_json::Result<()> {
        out.push(b'[');
        for (i, task) in self.tasks.iter().enumerate() {
            if i > 0 {
                out.push(b',');
            }
            self.dialect.format.write(out, task)?;
        }
        out.push(b']');
        Ok(())
    }

    /// The body's bytes.
    pub fn to_bytes(&self) -> serde_json::Result<Vec<u8>> {
        let size = self
            .tasks
            .iter()
            .map(|t| task_json::size_hint(t) + 1)
            .sum::<usize>()
            + 2;
        let Some(template) = &self.dialect.list else {
            let mut out = Vec::with_capacity(size);
            self.write_tasks(&mut out)?;
            return Ok(out);
        };
        let mut out = Vec::with_capacity(size + template.literal_len() + 64);
        let counts = self.meta.counts.unwrap_or_default();
        template.write(&mut out, |slot, out| match slot {
            Slot::Tasks => self.write_tasks(out),
            Slot::Total => serde_json::to_writer(out, &counts.total),
            Slot::CompletedCount => serde_json::to_writer(out, &counts.completed),
            Slot::PendingCount => serde_json::to_writer(out, &counts.pending),
            Slot::Skip => serde_json::to_writer(out, &self.meta.skip),
            Slot::Limit => serde_json::to_writer(out, &self.meta.limit),
            Slot::HasMore => serde_json::to_writer(out, &self.meta.next_cursor.is_some()),
            Slot::NextCursor => serde_json::to_writer(out, &self.meta.next_cursor),
            _ => {
                out.extend_from_slice(b"null");
                Ok(())
            }
        })?;
        Ok(out)
    }
}

/// The body of a create. Keys are read in camelCase too (`dueDate`, `remindAt`).
#[derive(Debug, Clone, Object)]
#[oai(rename = "TaskCreate")]
pub struct TaskCreateDoc {
    /// Title: 1 to 200 characters after trimming.
    #[oai(validator(min_length = 1, max_length = 200))]
    pub title: String,
    /// Description: at most 1000 characters; `""` is none.
    #[oai(validator(max_length = 1000))]
    pub description: Option<String>,
    /// Priority (default `medium`).
    pub priority: Option<PriorityDto>,
    /// Due date (RFC 3339); `""` is none, as an empty date input sends it.
    pub due_date: Option<DateTime<Utc>>,
    /// Tags: each 1 to 50 characters after trimming, no control characters; at most 20
    /// different ones. Tags that differ only in case are one tag, kept as first spelled.
    pub tags: Option<Vec<String>>,
    /// How the task repeats: an iCalendar (RFC 5545) RRULE with `FREQ` `DAILY`, `WEEKLY`,
    /// `MONTHLY` or `YEARLY`, and optionally `INTERVAL`, `BYDAY` (weekly), `BYMONTHDAY`
    /// (monthly), `COUNT` or `UNTIL`. Needs a `due_date`. Completing the task creates its next
    /// occurrence. `""` is none.
    #[oai(validator(max_length = 500))]
    pub recurrence: Option<String>,
    /// One tag, for frontends that have a category; `tags` wins when both are sent.
    #[oai(validator(min_length = 1, max_length = 50))]
    pub category: Option<String>,
    /// The plain fields ([`todo_core::FIELDS`]).
    #[oai(flatten)]
    pub fields: PlainInputDoc<false>,
}

/// The body of an update: absent fields are unchanged; `null` clears `description`,
/// `due_date`, `tags`, `recurrence` and the plain fields, and so does `""` for all of them but
/// `tags`.
#[derive(Debug, Clone, Object)]
#[oai(rename = "TaskUpdate")]
pub struct TaskUpdateDoc {
    /// New title: 1 to 200 characters after trimming.
    #[oai(validator(min_length = 1, max_length = 200))]
    pub title: Option<String>,
    /// New description (at most 1000 characters), or null (or `""`) to clear it.
    #[oai(nullable, validator(max_length = 1000))]
    pub description: MaybeUndefined<String>,
    /// New completion state.
    pub completed: Option<bool>,
    /// New priority.
    pub priority: Option<PriorityDto>,
    /// New due date (RFC 3339), or null (or `""`) to clear it.
    #[oai(nullable)]
    pub due_date: MaybeUndefined<DateTime<Utc>>,
    /// New tags, replacing all of them (`[]` or null clears them); the rules of a create.
    #[oai(nullable)]
    pub tags: MaybeUndefined<Vec<String>>,
    /// New recurrence rule (as for a create), or null (or `""`) to stop the task repeating.
    #[oai(nullable, validator(max_length = 500))]
    pub recurrence: MaybeUndefined<String>,
    /// The completion state as a word, for frontends that send a status; `completed` wins when
    /// both are sent. (`done`, `complete`, `active`, `incomplete`, `open` are read too.)
    pub status: Option<TaskStatusDto>,
    /// One tag, for frontends that have a category; `tags` wins when both are sent.
    #[oai(validator(min_length = 1, max_length = 50))]
    pub category: Option<String>,
    /// The plain fields ([`todo_core::FIELDS`]).
    #[oai(flatten)]
    pub fields: PlainInputDoc<true>,
}

/// The optional body of `/complete`: without it the task is toggled.
#[derive(Debug, Clone, Object)]
#[oai(rename = "TaskComplete")]
pub struct CompleteDoc {
    /// The completion state to set.
    pub completed: Option<bool>,
}

/// One of the user's tags and how many of the user's tasks carry it; after a rename or a
/// removal, how many tasks changed.
#[derive(Debug, Clone, Object, serde::Serialize)]
#[oai(rename = "TagCount")]
pub struct TagCountDto {
    /// The tag.
    pub name: String,
    /// How many tasks.
    pub count: u64,
}

impl From<todo_core::TagCount> for TagCountDto {
    fn from(t: todo_core::TagCount) -> Self {
        Self {
            name: t.name,
            count: t.count,
        }
    }
}

/// The body of a tag rename.
#[derive(Debug, Clone, Object)]
#[oai(rename = "TagRename")]
pub struct TagRenameDoc {
    /// The new name: 1 to 50 characters after trimming, no control characters.
    #[oai(validator(min_length = 1, max_length = 50))]
    pub name: String,
}

/// Parses a tag rename body: the new name.
pub fn parse_rename(map: &Map<String, Value>) -> Result<todo_core::Tag, ValidationError> {
    match field(map, "name") {
        Field::Present(v) => todo_core::Tag::parse_for("name", expect_str("name", v)?),
        _ => Err(ValidationError::field("name", "is required")),
    }
}

/// The answer to a delete.
#[derive(Debug, Clone, Object, serde::Serialize)]
pub struct Deleted {
    /// A human sentence.
    pub message: String,
    /// The deleted task's id.
    pub id: i64,
}

/// A field as found in a JSON object: absent, null, or a value.
enum Field<'a> {
    Absent,
    Null,
    Present(&'a Value),
}

/// The optional fields where `""` means no value, as `null` does: an HTML form's empty date or
/// text input sends `""`, and the FastAPI backends these frontends were written for read it as
/// `None`.
/// The plain fields read `""` the same way ([`plain::read_new`]).
const EMPTY_IS_NULL: [&str; 3] = ["description", "due_date", "recurrence"];

fn field<'a>(map: &'a Map<String, Value>, name: &str) -> Field<'a> {
    match map.get(name) {
        None => Field::Absent,
        Some(Value::Null) => Field::Null,
        Some(Value::String(s)) if s.is_empty() && EMPTY_IS_NULL.contains(&name) => Field::Null,
        Some(v) => Field::Present(v),
    }
}

fn expect_str<'a>(name: &str, v: &'a Value) -> Result<&'a str, ValidationError> {
    v.as_str()
        .ok_or_else(|| ValidationError::field(name, "must be a string"))
}

fn parse_due(v: &Value) -> Result<DateTime<Utc>, ValidationError> {
    parse_instant("due_date", v)
}

/// An instant field: RFC 3339, a date, or a naive date-time (read as UTC), in years 1 to 9999.
fn parse_instant(field: &'static str, v: &Value) -> Result<DateTime<Utc>, ValidationError> {
    parse_instant_text(field, expect_str(field, v)?)
        .and_then(|t| todo_core::check_instant(field, t))
}

/// An instant in a query parameter or body: RFC 3339, a date (its start in UTC), or a naive
/// date-time (read as UTC); the error names `field`.
pub fn parse_instant_text(field: &str, s: &str) -> Result<DateTime<Utc>, ValidationError> {
    if let Ok(t) = DateTime::parse_from_rfc3339(s) {
        return Ok(t.with_timezone(&Utc));
    }
    // Frontends often send `<input type="date">` or naive datetime values; read them as UTC.
    if let Ok(d) = chrono::NaiveDate::parse_from_str(s, "%Y-%m-%d") {
        return Ok(d.and_time(chrono::NaiveTime::MIN).and_utc());
    }
    for fmt in ["%Y-%m-%dT%H:%M:%S%.f", "%Y-%m-%dT%H:%M"] {
        if let Ok(t) = chrono::NaiveDateTime::parse_from_str(s, fmt) {
            return Ok(t.and_utc());
        }
    }
    Err(ValidationError::field(
        field,
        "must be an RFC 3339 date-time (e.g. 2030-01-31T17:00:00Z) or a date (2030-01-31)",
    ))
}

/// A `recurrence` field: an RRULE string ([`Recurrence::parse`]).
fn parse_recurrence(v: &Value) -> Result<Recurrence, ValidationError> {
    Recurrence::parse(expect_str("recurrence", v)?)
}

/// A `tags` field: an array of strings ([`Tags::parse`]).
fn parse_tags(v: &Value) -> Result<Tags, ValidationError> {
    let items = v
        .as_array()
        .ok_or_else(|| ValidationError::field("tags", "must be an array of strings"))?;
    let mut names = Vec::with_capacity(items.len());
    for item in items {
        names.push(
            item.as_str()
                .ok_or_else(|| ValidationError::field("tags", "must be an array of strings"))?,
        );
    }
    Tags::parse(names)
}

fn parse_priority(v: &Value) -> Result<Priority, ValidationError> {
    Priority::parse(expect_str("priority", v)?)
}

/// `snake_case` for a `camelCase` key (`dueDate` → `due_date`).
fn snake_case(key: &str) -> String {
    let mut out = String::with_capacity(key.len() + 4);
    for c in key.chars() {
        if c.is_ascii_uppercase() {
            out.push('_');
            out.push(c.to_ascii_lowercase());
        } else {
            out.push(c);
        }
    }
    out
}

/// Whether a body's `status` word means completed (`completed`, `done`, `complete`) or not
/// (`pending`, `active`, `incomplete`, `open`), any case, trimmed: the list's
/// [`STATUS_WORDS`](crate::params::STATUS_WORDS) but `all` and `overdue`. Anything else is no
/// status word.
pub fn status_word(word: &str) -> Option<bool> {
    let word = word.trim();
    crate::params::STATUS_WORDS
        .iter()
        .find(|(w, filter, overdue)| {
            !overdue && *filter != todo_core::StatusFilter::All && w.eq_ignore_ascii_case(word)
        })
        .map(|(_, filter, _)| *filter == todo_core::StatusFilter::Completed)
}

/// A body's `status` word as `completed` ([`status_word`]).
fn completed_from_status(v: &Value) -> Result<bool, ValidationError> {
    status_word(expect_str("status", v)?)
        .ok_or_else(|| ValidationError::field("status", "must be pending or completed"))
}

/// A request body's fields under the names the API reads, accepting the other spellings real
/// frontends send: camelCase keys (`dueDate`, `remindAt`) for snake_case ones; `status`
/// (`pending` or `completed`, and their aliases) for `completed`; `category` (one name) for
/// `tags`. A field sent under both spellings keeps the API's own. Borrowed, with no copy, when
/// there is nothing to translate.
pub fn canonical_fields(
    map: &Map<String, Value>,
) -> Result<Cow<'_, Map<String, Value>>, ValidationError> {
    let translates =
        |k: &String| k == "status" || k == "category" || k.bytes().any(|b| b.is_ascii_uppercase());
    if !map.keys().any(translates) {
        return Ok(Cow::Borrowed(map));
    }
    let mut out = Map::with_capacity(map.len());
    let mut aliases = Vec::new();
    for (k, v) in map {
        if translates(k) {
            aliases.push((k, v));
        } else {
            out.insert(k.clone(), v.clone());
        }
    }
    for (k, v) in aliases {
        let (name, value) = match k.as_str() {
            "status" => (
                "completed".to_owned(),
                Value::Bool(completed_from_status(v)?),
            ),
            "category" => match v {
                Value::Null => continue,
                Value::String(c) if c.trim().is_empty() => continue,
                Value::String(c) => (
                    "tags".to_owned(),
                    Value::Array(vec![Value::String(c.clone())]),
                ),
                _ => return Err(ValidationError::field("category", "must be a string")),
            },
            other => (snake_case(other), v.clone()),
        };
        out.entry(name).or_insert(value);
    }
    Ok(Cow::Owned(out))
}

/// Parses a create body (in any spelling [`canonical_fields`] reads).
pub fn parse_create(map: &Map<String, Value>) -> Result<NewTask, ValidationError> {
    let map = &*canonical_fields(map)?;
    let mut errors = ValidationError::default();
    let title = match field(map, "title") {
        Field::Present(v) => errors.collect(expect_str("title", v).and_then(Title::parse)),
        _ => errors.collect(Err(ValidationError::field("title", "is required"))),
    };
    let description = match field(map, "description") {
        Field::Present(v) => errors
            .collect(expect_str("description", v).and_then(Description::parse))
            .map(Some),
        _ => Some(None),
    };
    let priority = match field(map, "priority") {
        Field::Present(v) => errors.collect(parse_priority(v)),
        _ => Some(Priority::default()),
    };
    let due_date = match field(map, "due_date") {
        Field::Present(v) => errors.collect(parse_due(v)).map(Some),
        _ => Some(None),
    };
    let tags = match field(map, "tags") {
        Field::Present(v) => errors.collect(parse_tags(v)),
        _ => Some(Tags::default()),
    };
    let recurrence = match field(map, "recurrence") {
        Field::Present(v) => errors.collect(parse_recurrence(v)).map(Some),
        _ => Some(None),
    };
    if let (Some(Some(_)), Some(None)) = (&recurrence, &due_date) {
        errors.errors.extend(Recurrence::needs_due_date().errors);
    }
    let mut task = match (title, description, priority, due_date, tags, recurrence) {
        (
            Some(title),
            Some(description),
            Some(priority),
            Some(due_date),
            Some(tags),
            Some(recurrence),
        ) => Some(NewTask {
            description,
            priority,
            due_date,
            tags,
            recurrence,
            ..NewTask::new(title)
        }),
        _ => None,
    };
    plain::read_new(map, task.as_mut(), &mut errors);
    errors.into_result()?;
    match task {
        Some(task) => Ok(task),
        _ => Err(ValidationError::field("body", "is invalid")),
    }
}

/// Parses an update body (PUT and PATCH; in any spelling [`canonical_fields`] reads): absent
/// fields are unchanged, `null` clears the nullable ones and is an error for the others.
pub fn parse_update(map: &Map<String, Value>) -> Result<TaskPatch, ValidationError> {
    let map = &*canonical_fields(map)?;
    let mut errors = ValidationError::default();
    let mut patch = TaskPatch::default();
    let not_null = |name: &str| ValidationError::field(name, "must not be null");
    match field(map, "title") {
        Field::Absent => {}
        Field::Null => errors.errors.extend(not_null("title").errors),
        Field::Present(v) => {
            patch.title = errors.collect(expect_str("title", v).and_then(Title::parse));
        }
    }
    match field(map, "description") {
        Field::Absent => {}
        Field::Null => patch.description = Some(None),
        Field::Present(v) => {
            patch.description = errors
                .collect(expect_str("description", v).and_then(Description::parse))
                .map(Some);
        }
    }
    match field(map, "completed") {
        Field::Absent => {}
        Field::Null => errors.errors.extend(not_null("completed").errors),
        Field::Present(v) => match v.as_bool() {
            Some(b) => patch.completed = Some(b),
            None => errors
                .errors
                .extend(ValidationError::field("completed", "must be true or false").errors),
        },
    }
    match field(map, "priority") {
        Field::Absent => {}
        Field::Null => errors.errors.extend(not_null("priority").errors),
        Field::Present(v) => patch.priority = errors.collect(parse_priority(v)),
    }
    match field(map, "due_date") {
        Field::Absent => {}
        Field::Null => patch.due_date = Some(None),
        Field::Present(v) => patch.due_date = errors.collect(parse_due(v)).map(Some),
    }
    match field(map, "tags") {
        Field::Absent => {}
        Field::Null => patch.tags = Some(Tags::default()),
        Field::Present(v) => patch.tags = errors.collect(parse_tags(v)),
    }
    match field(map, "recurrence") {
        Field::Absent => {}
        Field::Null => patch.recurrence = Some(None),
        Field::Present(v) => {
            patch.recurrence = errors.collect(parse_recurrence(v)).map(Some);
        }
    }
    // A rule sent with a due date cleared in the same body; a rule on a task that has no due
    // date otherwise is refused by the store.
    if let (Some(Some(_)), Some(None)) = (&patch.recurrence, &patch.due_date) {
        errors.errors.extend(Recurrence::needs_due_date().errors);
    }
    plain::read_change(map, &mut patch, &mut errors);
    errors.into_result()?;
    Ok(patch)
}

/// Parses the optional `/complete` body: `Some(b)` sets, `None` toggles.
pub fn parse_complete(map: Option<&Map<String, Value>>) -> Result<Option<bool>, ValidationError> {
    let Some(map) = map else { return Ok(None) };
    let map = &*canonical_fields(map)?;
    match field(map, "completed") {
        Field::Absent | Field::Null => Ok(None),
        Field::Present(v) => v
            .as_bool()
            .map(Some)
            .ok_or_else(|| ValidationError::field("completed", "must be true or false")),
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn times_are_written_as_utc_with_microseconds_only_when_not_zero() {
        use chrono::{SecondsFormat, TimeZone};
        let whole = Utc.with_ymd_and_hms(2030, 1, 31, 17, 0, 0).unwrap();
        let cases = [
            (whole, "2030-01-31T17:00:00Z"),
            (
                whole + chrono::Duration::microseconds(998_244),
                "2030-01-31T17:00:00.998244Z",
            ),
            (
                whole + chrono::Duration::milliseconds(5),
                "2030-01-31T17:00:00.005000Z",
            ),
            (
                Utc.with_ymd_and_hms(1, 1, 1, 0, 0, 0).unwrap(),
                "0001-01-01T00:00:00Z",
            ),
            (
                Utc.with_ymd_and_hms(9999, 12, 31, 23, 59, 59).unwrap()
                    + chrono::Duration::microseconds(999_999),
                "9999-12-31T23:59:59.999999Z",
            ),
        ];
        for (t, text) in cases {
            let json = serde_json::to_value(super::TaskDto {
                id: 1,
                user_id: "u".into(),
                title: "t".into(),
                description: None,
                completed: false,
                status: super::TaskStatusDto::Pending,
                priority: PriorityDto::Medium,
                due_date: Some(t),
                created_at: t,
                updated_at: t,
                completed_at: Some(t),
                tags: vec!["a\"b".into(), "é".into()],
                recurrence: Some("FREQ=DAILY".into()),
                fields: super::PlainValues::from(&Task {
                    remind_at: Some(t),
                    ..Task::default()
                }),
            })
            .unwrap();
            for key in [
                "due_date",
                "created_at",
                "updated_at",
                "completed_at",
                "remind_at",
            ] {
                assert_eq!(json[key], text);
            }
        }
        // Every second of a day across a leap year, at odd microseconds, against chrono.
        let start = Utc.with_ymd_and_hms(2024, 2, 28, 0, 0, 0).unwrap();
        for step in 0..200_000i64 {
            let t = start + chrono::Duration::microseconds(step * 1_234_567_891);
            let mut buf = [0u8; 27];
            let n = super::rfc3339::format(&t, &mut buf).unwrap();
            let expected = t.to_rfc3339_opts(SecondsFormat::Micros, true);
            let expected = expected.replace(".000000Z", "Z");
            assert_eq!(std::str::from_utf8(&buf[..n]).unwrap(), expected);
        }
    }

    use super::*;
    use serde_json::json;

    mod written {
        use chrono::{DateTime, Utc};
        use proptest::prelude::*;
        use todo_core::{Priority, Task};

        use super::super::{TaskDto, TaskJson, TaskListJson};

        /// Any instant chrono can hold, at microsecond precision: years 0 to 9999 take the
        /// digit-by-digit path, the rest chrono's own formatting.
        fn instant() -> impl Strategy<Value = DateTime<Utc>> {
            let (min, max) = (
                DateTime::<Utc>::MIN_UTC.timestamp_micros(),
                DateTime::<Utc>::MAX_UTC.timestamp_micros(),
            );
            prop_oneof![
                -62_135_596_800_000_000i64..253_402_300_799_999_999i64,
                min..=max,
                Just(0i64),
                (0i64..1_000_000).prop_map(|s| s * 1_000_000),
            ]
            .prop_filter_map("outside chrono's range", DateTime::from_timestamp_micros)
        }

        /// Any text, including quotes, backslashes, control characters and non-BMP characters.
        fn text() -> impl Strategy<Value = String> {
            prop_oneof![
                any::<String>(),
                "[\"\\\\\u{0}-\u{1f}\u{7f}a\u{e9}\u{1f600}]{0,12}"
            ]
        }

        // The literal ends with `..Task::default()`, so a new plain field does not touch it.
        #[allow(clippy::needless_update)]
        fn task() -> impl Strategy<Value = Task> {
            (
                any::<i64>(),
                text(),
                text(),
                proptest::option::of(text()),
                any::<bool>(),
                prop_oneof![
                    Just(Priority::Low),
                    Just(Priority::Medium),
                    Just(Priority::High)
                ],
                proptest::option::of(instant()),
                instant(),
                instant(),
                any::<i64>(),
                proptest::option::of(instant()),
                (
                    proptest::collection::vec(text(), 0..4),
                    proptest::option::of(instant()),
                    proptest::option::of(text()),
                ),
            )
                .prop_map(|t| Task {
                    id: t.0,
                    user_id: t.1,
                    title: t.2,
                    description: t.3,
                    completed: t.4,
                    priority: t.5,
                    due_date: t.6,
                    created_at: t.7,
                    updated_at: t.8,
                    version: t.9,
                    completed_at: t.10,
                    tags: t.11.0,
                    remind_at: t.11.1,
                    recurrence: t.11.2,
                    ..Task::default()
                })
        }

        proptest! {
            #![proptest_config(ProptestConfig::with_cases(2_000))]

            /// Both sides write times with `rfc3339::format` (checked against chrono by
            /// `times_are_written_as_utc_with_microseconds_only_when_not_zero`); this checks the
            /// rest: keys, their order, escaping, numbers, nulls and punctuation.
            ///
            /// The hand-written body is byte for byte what serde writes for the documented
            /// schema type, so the contract and the wire cannot drift apart.
            #[test]
            fn a_written_task_is_exactly_its_serde_serialisation(task in task()) {
                let written = TaskJson { task: task.clone(), dialect: Default::default() }.to_bytes().unwrap();
                let serde = serde_json::to_vec(&TaskDto::from(task)).unwrap();
                prop_assert_eq!(String::from_utf8(written).unwrap(), String::from_utf8(serde).unwrap());
            }

            #[test]
            fn a_written_page_is_exactly_its_serde_serialisation(tasks in proptest::collection::vec(task(), 0..6)) {
                let written = TaskListJson { tasks: tasks.clone(), dialect: Default::default(), meta: Default::default() }.to_bytes().unwrap();
                let dtos: Vec<TaskDto> = tasks.into_iter().map(TaskDto::from).collect();
                let serde = serde_json::to_vec(&dtos).unwrap();
                prop_assert_eq!(String::from_utf8(written).unwrap(), String::from_utf8(serde).unwrap());
            }

            /// In any dialect, a written task is serde's with the dialect's keys, words and
            /// due date.
            #[test]
            fn a_task_in_a_dialect_is_its_serde_serialisation_so_changed(
                task in task(),
                camel_case in any::<bool>(),
                enums in 0..3usize,
                date in any::<bool>(),
            ) {
                use std::sync::Arc;
                use serde_json::{Map, Value};
                use crate::dialect::{
                    Dialect, DialectSettings, DueDateFormat, EnumCase, JsonCase, camel, enum_word,
                };
                let enum_case = [EnumCase::Lower, EnumCase::Capitalized, EnumCase::Upper][enums];
                let settings = DialectSettings {
                    json_case: if camel_case { JsonCase::Camel } else { JsonCase::Snake },
                    enum_case,
                    due_date_format: if date { DueDateFormat::Date } else { DueDateFormat::Datetime },
                    task_envelope: Some(r#"{"task": "$task", "ok": 1}"#.to_owned()),
                    ..DialectSettings::default()
                };
                let dialect = Arc::new(Dialect::new(&settings).unwrap());
                let written: Value = serde_json::from_slice(
                    &TaskJson { task: task.clone(), dialect }.to_bytes().unwrap(),
                ).unwrap();
                let mut want = serde_json::to_value(TaskDto::from(task.clone())).unwrap();
                for k in ["priority", "status"] {
                    let w = enum_word(want[k].as_str().unwrap(), enum_case);
                    want[k] = Value::String(w);
                }
                if date && let Some(d) = task.due_date {
                    want["due_date"] = Value::String(d.format("%Y-%m-%d").to_string());
                }
                let want: Map<String, Value> = want
                    .as_object()
                    .unwrap()
                    .iter()
                    .map(|(k, v)| (if camel_case { camel(k) } else { k.clone() }, v.clone()))
                    .collect();
                prop_assert_eq!(written, serde_json::json!({"task": want, "ok": 1}));
            }
        }
    }

    /// The constants the default writer uses are the bytes a dialect's format makes for the
    /// API's own spelling, so the two writers cannot drift apart.
    #[test]
    fn the_api_spelling_constants_are_the_default_formats_bytes() {
        use super::{ApiSpelling, Fragments, KEYS, TaskFormat};
        use todo_core::Priority;
        let f = TaskFormat::default();
        for i in 0..KEYS.len() {
            assert_eq!(ApiSpelling.key(i), f.key(i), "key {i}");
        }
        for done in [false, true] {
            assert_eq!(ApiSpelling.completed(done), f.completed(done));
        }
        for p in [Priority::Low, Priority::Medium, Priority::High] {
            assert_eq!(ApiSpelling.priority(p), f.priority(p));
        }
        assert!(!f.date_only_due() && f.own);
    }

    fn obj(v: Value) -> Map<String, Value> {
        v.as_object().cloned().unwrap()
    }

    #[test]
    fn create_reports_every_bad_field_by_name() {
        let err = parse_create(&obj(json!({"title": 5, "description": "x".repeat(1001),
            "priority": "urgent", "due_date": "tomorrow"})))
        .unwrap_err();
        let fields: Vec<_> = err.errors.iter().map(|e| e.field.as_str()).collect();
        assert_eq!(fields, ["title", "description", "priority", "due_date"]);
        let missing = parse_create(&obj(json!({"description": "d"}))).unwrap_err();
        assert_eq!(missing.errors[0].field, "title");
    }

    #[test]
    fn create_ignores_unknown_fields_and_reads_dates() {
        let t = parse_create(&obj(
            json!({"title": " a ", "user_id": "ignored", "completed": true,
            "due_date": "2030-01-31"}),
        ))
        .unwrap();
        assert_eq!(t.title.as_str(), "a");
        assert_eq!(
            t.due_date.unwrap().to_rfc3339(),
            "2030-01-31T00:00:00+00:00"
        );
    }

    #[test]
    fn update_distinguishes_absent_null_and_value() {
        let p = parse_update(&obj(json!({"description": null, "completed": true}))).unwrap();
        assert_eq!(p.description, Some(None));
        assert_eq!(p.completed, Some(true));
        assert_eq!(p.title, None);
        assert_eq!(p.due_date, None);
        assert!(parse_update(&obj(json!({"title": null}))).is_err());
        assert!(parse_update(&obj(json!({"completed": "yes"}))).is_err());
    }
}
