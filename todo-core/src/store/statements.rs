//! SQL text both backends run verbatim. The task column list and the insert's column and value
//! lists are written once, as macros, and joined into each statement with `concat!`, so a new
//! column is one edit here rather than one per statement (and the statements stay `&'static str`).
//! The argument lists of the statements that carry a task's fields are here too, written once
//! for both backends over sqlx's [`Arguments`].

use std::sync::LazyLock;

use chrono::{DateTime, Utc};
use sqlx::{Arguments, Encode, Type};

use super::common::quota_arg;
use crate::cursor::{Key, Position};
use crate::error::{Error, Result, ValidationError};
use crate::fields::{FIELDS, Step, Value};
use crate::model::{
    ListQuery, NewTask, SortField, SortOrder, StatusFilter, TAGS_MAX, Task, TaskId, TaskPatch,
    check_due_date, fold_case, to_stored_precision,
};
use crate::recurrence::Recurrence;

/// The columns written by hand that every task-returning statement selects, in the order the
/// decoders read them; the plain fields' ([`FIELDS`]) follow, in their order.
const HAND_COLUMNS: &str = "id, user_id, title, description, completed, priority, due_date, created_at, updated_at, version, completed_at, tags, recurrence";

/// How many of the columns every task-returning statement selects are written by hand: the
/// decoders read the plain fields from here on.
pub(crate) const PLAIN_FROM: usize = 13;

/// A statement built once, at first use, from the plain fields ([`FIELDS`]): its placeholders
/// are numbered as it is written, so a new column cannot collide with another's.
pub(crate) type Statement = LazyLock<String>;

/// The columns every task-returning statement selects: [`HAND_COLUMNS`], then the plain fields.
pub(crate) fn task_columns() -> &'static str {
    static COLUMNS: Statement = LazyLock::new(|| {
        let mut out = HAND_COLUMNS.to_owned();
        for f in FIELDS {
            out.push_str(", ");
            out.push_str(f.name);
        }
        out
    });
    &COLUMNS
}

/// Placeholders `$from`, `$from + 1`, ..., one per plain field, each after `, `.
fn plain_placeholders(from: usize) -> String {
    (0..FIELDS.len())
        .map(|i| format!(", ${}", from + i))
        .collect()
}

/// The plain fields' columns, each after `, `.
fn plain_columns() -> String {
    FIELDS.iter().map(|f| format!(", {}", f.name)).collect()
}

/// The columns a new task is inserted with, the plain fields' last; values in
/// [`insert_values`]' order.
fn insert_columns() -> String {
    format!(
        "user_id, title, title_key, description, description_key, completed, priority, due_date, created_at, updated_at, version, tags, tag_keys, recurrence{}",
        plain_columns()
    )
}

/// The values of [`insert_columns`]: `$1` user, `$2` title, `$3` its search key, `$4`
/// description, `$5` its search key, `$6` priority rank, `$7` due date, `$8` the time of the
/// create (both created and updated), `$9` tags, `$10` their keys, `$11` recurrence rule, then
/// the plain fields from `$12` ([`INSERT_PLAIN_FROM`]); not completed, version 1. The quota, if
/// any, is the placeholder after them ([`insert_quota_placeholder`]).
fn insert_values() -> String {
    format!(
        "$1, $2, $3, $4, $5, false, $6, $7, $8, $8, 1, $9, $10, $11{}",
        plain_placeholders(INSERT_PLAIN_FROM)
    )
}

/// The first plain field's placeholder in [`INSERT_TASK`].
const INSERT_PLAIN_FROM: usize = 12;

/// The quota's placeholder in [`INSERT_TASK_WITHIN_QUOTA`]: the one after the plain fields'.
fn insert_quota_placeholder() -> usize {
    INSERT_PLAIN_FROM + FIELDS.len()
}

pub(crate) const INSERT_ACCOUNT: &str = r"insert into accounts (id, email, name, password_hash, created_at)
    values ($1, $2, $3, $4, $5)";

pub(crate) const GET_ACCOUNT_BY_EMAIL: &str =
    r"select id, email, name, password_hash from accounts where email = $1";

pub(crate) static INSERT_TASK: Statement = LazyLock::new(|| {
    format!(
        "insert into tasks\n    ({})\n    values ({})\n    returning {}",
        insert_columns(),
        insert_values(),
        task_columns()
    )
});

/// [`INSERT_TASK`] only while the user `$1` has fewer tasks than the quota
/// ([`insert_quota_placeholder`]): no row otherwise.
pub(crate) static INSERT_TASK_WITHIN_QUOTA: Statement = LazyLock::new(|| {
    let q = insert_quota_placeholder();
    format!(
        "insert into tasks\n    ({})\n    select {}\n    where (select count(*) from (select 1 from tasks where user_id = $1 limit ${q}) counted) < ${q}\n    returning {}",
        insert_columns(),
        insert_values(),
        task_columns()
    )
});

pub(crate) static GET_TASK: Statement = LazyLock::new(|| {
    format!(
        "select {}\n    from tasks where id = $1 and user_id = $2",
        task_columns()
    )
});

pub(crate) const GET_VERSION: &str = r"select version from tasks where id = $1 and user_id = $2";

/// The first plain field's placeholders in [`PATCH_TASK`]: each takes two, whether it is set,
/// then its value.
const PATCH_PLAIN_FROM: usize = 19;

/// The assignments and condition of [`PATCH_TASK`]. `$5`/`$10`/`$14`/`$17` say whether the
/// description/due date/tags/recurrence are set (so `null` can clear the nullable ones); each
/// plain field takes a flag and a value from [`PATCH_PLAIN_FROM`] on.
fn patch_task() -> String {
    let mut plain = String::new();
    for (i, f) in FIELDS.iter().enumerate() {
        let set = PATCH_PLAIN_FROM + 2 * i;
        plain.push_str(&format!(
            "\n    {name} = case when ${set} then ${value} else {name} end,",
            name = f.name,
            value = set + 1
        ));
    }
    format!(
        r"update tasks set
    title = coalesce($3, title),
    title_key = coalesce($4, title_key),
    description = case when $5 then $6 else description end,
    description_key = case when $5 then $7 else description_key end,
    completed = coalesce($8, completed),
    completed_at = case when coalesce($8, completed) then coalesce(completed_at, $12) end,
    priority = coalesce($9, priority),
    due_date = case when $10 then $11 else due_date end,
    tags = case when $14 then $15 else tags end,
    tag_keys = case when $14 then $16 else tag_keys end,
    recurrence = case when $17 then $18 else recurrence end,{plain}
    updated_at = $12,
    version = version + 1
    where id = $1 and user_id = $2 and version = coalesce($13, version)"
    )
}

pub(crate) static PATCH_TASK: Statement =
    LazyLock::new(|| format!("{} returning {}", patch_task(), task_columns()));

/// [`PATCH_TASK`] only on a task that does not repeat (no row otherwise).
pub(crate) static PATCH_TASK_NOT_RECURRING: Statement = LazyLock::new(|| {
    format!(
        "{} and recurrence is null returning {}",
        patch_task(),
        task_columns()
    )
});

/// The columns a next occurrence is inserted with, in [`SPAWN_NEXT`]'s order, the plain
/// fields' last.
fn spawn_columns() -> String {
    format!(
        r"user_id, title, title_key, description, description_key, completed, priority, due_date,
     created_at, updated_at, version, tags, tag_keys, recurrence, spawned_from{}",
        plain_columns()
    )
}

/// The first plain field's placeholder in [`SPAWN_NEXT`].
const SPAWN_PLAIN_FROM: usize = 6;

/// What a next occurrence is inserted with, from the completed row (or the row `done` that
/// marked it): the copy's columns in [`spawn_columns`]' order, `$3` to `$5` as in
/// [`SPAWN_NEXT`], the plain fields from `$6` ([`SPAWN_PLAIN_FROM`]).
fn spawn_values() -> String {
    format!(
        r"select user_id, title, title_key, description, description_key, false, priority, $3,
     $4, $4, 1, tags, tag_keys, $5, id{}",
        plain_placeholders(SPAWN_PLAIN_FROM)
    )
}

/// The assignments and condition of [`SET_COMPLETED`].
macro_rules! set_completed {
    () => {
        r"update tasks set
    completed = coalesce($3, not completed),
    completed_at = case when coalesce($3, not completed) then coalesce(completed_at, $4) end,
    updated_at = $4,
    version = version + 1
    where id = $1 and user_id = $2 and version = coalesce($5, version)"
    };
}

/// `$3` null toggles.
pub(crate) static SET_COMPLETED: Statement =
    LazyLock::new(|| format!("{} returning {}", set_completed!(), task_columns()));

/// [`SET_COMPLETED`] only on a task that does not repeat (no row otherwise): a completion that
/// cannot call for a next occurrence, run alone.
pub(crate) static SET_COMPLETED_NOT_RECURRING: Statement = LazyLock::new(|| {
    format!(
        "{} and recurrence is null returning {}",
        set_completed!(),
        task_columns()
    )
});

/// The next occurrence of task `$1` of user `$2`, which must be completed and must not have
/// created one before (`spawned`): a copy of it, pending, due at `$3`, created at `$4`, with
/// the rule `$5`, and its plain fields as their `next` rules give them from `$6` on. SQLite's
/// trigger `tasks_spawned` marks the task in the same statement, so a task creates at most one
/// next occurrence in its life, even after that one is deleted; `spawned_from` is unique
/// besides, so a second attempt inserts nothing.
pub(crate) static SPAWN_NEXT: Statement = LazyLock::new(|| {
    format!(
        r"insert into tasks ({}) {}
    from tasks where id = $1 and user_id = $2 and completed and not spawned
    on conflict (spawned_from) where spawned_from is not null do nothing",
        spawn_columns(),
        spawn_values()
    )
});

/// [`SPAWN_NEXT`] that marks the task itself, in a data-modifying `with` (PostgreSQL's; it
/// keeps a trigger, and the cost of its condition, off every other insert).
pub(crate) static SPAWN_NEXT_MARKING: Statement = LazyLock::new(|| {
    format!(
        r"with done as (
    update tasks set spawned = true
    where id = $1 and user_id = $2 and completed and not spawned
    returning user_id, title, title_key, description, description_key, priority, tags, tag_keys, id)
    insert into tasks ({}) {}
    from done
    on conflict (spawned_from) where spawned_from is not null do nothing",
        spawn_columns(),
        spawn_values()
    )
});

/// Returns the deleted task.
pub(crate) static DELETE_TASK: Statement = LazyLock::new(|| {
    format!(
        "delete from tasks\n    where id = $1 and user_id = $2 and version = coalesce($3, version)\n    returning {}",
        task_columns()
    )
});

/// The user `$1`'s tags with how many tasks carry each, by key, at most `$2` of them; each
/// spelled the way that sorts first by code point among its tasks' spellings.
pub(crate) const TAG_COUNTS: &str = r"select min(name), count(*) from task_tags
    where user_id = $1
    group by tag_key
    order by tag_key
    limit $2";

/// The user `$1`'s task counts at the time `$2`: all, completed, overdue, and by priority rank
/// (0, 1, 2). `row::stats` reads them.
pub(crate) const TASK_STATS: &str = r"select count(*),
    coalesce(sum(case when completed then 1 else 0 end), 0),
    coalesce(sum(case when completed = false and due_date < $2 then 1 else 0 end), 0),
    coalesce(sum(case when priority = 0 then 1 else 0 end), 0),
    coalesce(sum(case when priority = 1 then 1 else 0 end), 0),
    coalesce(sum(case when priority = 2 then 1 else 0 end), 0)
    from tasks where user_id = $1";

pub(crate) const PURGE_IDEMPOTENCY_KEYS: &str =
    r"delete from idempotency_keys where created_at < $1";

/// Returns the key when it was claimed, nothing when the user already held it.
pub(crate) const CLAIM_IDEMPOTENCY_KEY: &str = r"insert into idempotency_keys (user_id, key, fingerprint, created_at)
    values ($1, $2, $3, $4)
    on conflict (user_id, key) do nothing
    returning key";

/// [`CLAIM_IDEMPOTENCY_KEY`] only while the user `$1` holds fewer than `$5` keys (run after
/// [`PURGE_IDEMPOTENCY_KEYS`], so all of them unexpired): nothing is inserted otherwise, even
/// for a key the user holds (which the caller then finds and replays).
pub(crate) const CLAIM_IDEMPOTENCY_KEY_WITHIN_QUOTA: &str = r"insert into idempotency_keys (user_id, key, fingerprint, created_at)
    select $1, $2, $3, $4
    where (select count(*) from (select 1 from idempotency_keys where user_id = $1 limit $5) counted) < $5
    on conflict (user_id, key) do nothing
    returning key";

pub(crate) const SAVE_IDEMPOTENT_RESPONSE: &str =
    r"update idempotency_keys set response = $3 where user_id = $1 and key = $2";

pub(crate) const GET_IDEMPOTENCY_KEY: &str =
    r"select fingerprint, response from idempotency_keys where user_id = $1 and key = $2";

/// A list of texts as a bind value (tags and their keys). Each backend encodes it the way it
/// stores such lists (SQLite: a JSON array; PostgreSQL: `text[]`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct TextList(pub(crate) Vec<String>);

/// An instant as a bind value. Each backend encodes it the way it stores instants (SQLite:
/// microseconds since the epoch; PostgreSQL: `timestamptz`), so the argument lists below are
/// written once for both.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Stamp(pub(crate) DateTime<Utc>);

/// Appends `value` to `args` ([`Error::Storage`] if it cannot be encoded).
fn push<'q, A, T>(args: &mut A, value: T) -> Result<()>
where
    A: Arguments<'q>,
    T: 'q + Encode<'q, A::Database> + Type<A::Database>,
{
    args.add(value).map_err(Error::Storage)
}

/// Appends a plain field's `value` to `args`, typed as its column is (a `null` too).
fn push_value<'q, A>(args: &mut A, value: Value) -> Result<()>
where
    A: Arguments<'q>,
    Option<i64>: 'q + Encode<'q, A::Database> + Type<A::Database>,
    Option<String>: 'q + Encode<'q, A::Database> + Type<A::Database>,
    Option<Stamp>: 'q + Encode<'q, A::Database> + Type<A::Database>,
{
    match value {
        Value::Int(v) => push(args, v),
        Value::Text(v) => push(args, v),
        Value::Instant(v) => push(args, v.map(Stamp)),
    }
}

/// A new task's column values, in [`insert_values`]' placeholder order, checked and owned:
/// what each driver binds for [`INSERT_TASK`].
pub(crate) struct InsertValues {
    pub(crate) user: String,
    pub(crate) title: String,
    pub(crate) title_key: String,
    pub(crate) description: Option<String>,
    pub(crate) description_key: Option<String>,
    pub(crate) priority: i16,
    pub(crate) due_date: Option<DateTime<Utc>>,
    /// Both the creation and the update time.
    pub(crate) now: DateTime<Utc>,
    pub(crate) tags: Vec<String>,
    pub(crate) tag_keys: Vec<String>,
    pub(crate) recurrence: Option<String>,
    /// The plain fields' values, in [`FIELDS`]' order.
    pub(crate) plain: Vec<Value>,
}

impl InsertValues {
    /// The values of `task`, created by `user` at `now`; a due date or reminder outside what
    /// both backends store is a validation error.
    pub(crate) fn new(user: &str, task: &NewTask, now: DateTime<Utc>) -> Result<Self> {
        let NewTask {
            title,
            description,
            priority,
            due_date,
            tags,
            recurrence,
            ..
        } = task;
        let mut errors = ValidationError::default();
        let plain = FIELDS
            .iter()
            .filter_map(|f| errors.collect(f.new_value(task)))
            .collect();
        errors.into_result()?;
        Ok(Self {
            user: user.to_owned(),
            title: title.as_str().to_owned(),
            title_key: fold_case(title.as_str()),
            description: description.as_ref().map(|d| d.as_str().to_owned()),
            description_key: description.as_ref().map(|d| fold_case(d.as_str())),
            priority: priority.rank(),
            due_date: due_date.map(check_due_date).transpose()?,
            now,
            tags: tags.names(),
            tag_keys: tags.keys(),
            recurrence: recurrence.as_ref().map(ToString::to_string),
            plain,
        })
    }
}

/// The arguments of [`INSERT_TASK`] (and, with `quota`, of [`INSERT_TASK_WITHIN_QUOTA`]) for
/// `task`, created by `user` at `now`. Owned, so they can wait in a queue.
pub(crate) fn insert_args<'q, A>(
    user: &str,
    task: &NewTask,
    now: DateTime<Utc>,
    quota: Option<u64>,
) -> Result<A>
where
    A: Arguments<'q>,
    String: 'q + Encode<'q, A::Database> + Type<A::Database>,
    Option<String>: 'q + Encode<'q, A::Database> + Type<A::Database>,
    i16: 'q + Encode<'q, A::Database> + Type<A::Database>,
    i64: 'q + Encode<'q, A::Database> + Type<A::Database>,
    Option<Stamp>: 'q + Encode<'q, A::Database> + Type<A::Database>,
    Stamp: 'q + Encode<'q, A::Database> + Type<A::Database>,
    TextList: 'q + Encode<'q, A::Database> + Type<A::Database>,
    Option<i64>: 'q + Encode<'q, A::Database> + Type<A::Database>,
{
    let v = InsertValues::new(user, task, now)?;
    let mut args = A::default();
    push(&mut args, v.user)?;
    push(&mut args, v.title)?;
    push(&mut args, v.title_key)?;
    push(&mut args, v.description)?;
    push(&mut args, v.description_key)?;
    push(&mut args, v.priority)?;
    push(&mut args, v.due_date.map(Stamp))?;
    push(&mut args, Stamp(v.now))?;
    push(&mut args, TextList(v.tags))?;
    push(&mut args, TextList(v.tag_keys))?;
    push(&mut args, v.recurrence)?;
    for value in v.plain {
        push_value(&mut args, value)?;
    }
    if let Some(limit) = quota {
        push(&mut args, quota_arg(Some(limit)))?;
    }
    Ok(args)
}

/// The arguments of [`PATCH_TASK`]: task `id` of `user` gets the fields `patch` sets, at `now`,
/// if it is at version `expected` (any version when `None`).
pub(crate) fn patch_args<'q, A>(
    id: TaskId,
    user: &str,
    patch: TaskPatch,
    now: DateTime<Utc>,
    expected: Option<i64>,
) -> Result<A>
where
    A: Arguments<'q>,
    String: 'q + Encode<'q, A::Database> + Type<A::Database>,
    Option<String>: 'q + Encode<'q, A::Database> + Type<A::Database>,
    i64: 'q + Encode<'q, A::Database> + Type<A::Database>,
    Option<i64>: 'q + Encode<'q, A::Database> + Type<A::Database>,
    Option<i16>: 'q + Encode<'q, A::Database> + Type<A::Database>,
    bool: 'q + Encode<'q, A::Database> + Type<A::Database>,
    Option<bool>: 'q + Encode<'q, A::Database> + Type<A::Database>,
    Stamp: 'q + Encode<'q, A::Database> + Type<A::Database>,
    Option<Stamp>: 'q + Encode<'q, A::Database> + Type<A::Database>,
    Option<TextList>: 'q + Encode<'q, A::Database> + Type<A::Database>,
{
    let mut errors = ValidationError::default();
    let plain: Vec<_> = FIELDS
        .iter()
        .filter_map(|f| errors.collect(f.change(&patch)))
        .collect();
    errors.into_result()?;
    let TaskPatch {
        title,
        description,
        completed,
        priority,
        due_date,
        tags,
        recurrence,
        ..
    } = patch;
    let due = due_date.flatten().map(check_due_date).transpose()?;
    let mut args = A::default();
    push(&mut args, id)?;
    push(&mut args, user.to_owned())?;
    let title_key = title.as_ref().map(|t| fold_case(t.as_str()));
    push(&mut args, title.map(|t| t.as_str().to_owned()))?;
    push(&mut args, title_key)?;
    push(&mut args, description.is_some())?;
    let description = description.flatten();
    push(
        &mut args,
        description.as_ref().map(|d| d.as_str().to_owned()),
    )?;
    push(
        &mut args,
        description.as_ref().map(|d| fold_case(d.as_str())),
    )?;
    push(&mut args, completed)?;
    push(&mut args, priority.map(|p| p.rank()))?;
    push(&mut args, due_date.is_some())?;
    push(&mut args, due.map(Stamp))?;
    push(&mut args, Stamp(now))?;
    push(&mut args, expected)?;
    push(&mut args, tags.is_some())?;
    push(&mut args, tags.as_ref().map(|t| TextList(t.names())))?;
    push(&mut args, tags.as_ref().map(|t| TextList(t.keys())))?;
    push(&mut args, recurrence.is_some())?;
    push(&mut args, recurrence.flatten().map(|r| r.to_string()))?;
    for (f, change) in FIELDS.iter().zip(plain) {
        push(&mut args, change.is_some())?;
        push_value(&mut args, change.unwrap_or_else(|| Value::null(f.kind)))?;
    }
    Ok(args)
}

/// The arguments of [`SPAWN_NEXT`] for `task`, just written by a write that may have completed
/// it: `None` unless it is completed, repeats and its series goes on ([`Recurrence::next`]).
/// The reminder moves with the due date; one that would leave years 1 to 9999 is dropped.
pub(crate) fn spawn_args<'q, A>(task: &Task, now: DateTime<Utc>) -> Result<Option<A>>
where
    A: Arguments<'q>,
    String: 'q + Encode<'q, A::Database> + Type<A::Database>,
    i64: 'q + Encode<'q, A::Database> + Type<A::Database>,
    Stamp: 'q + Encode<'q, A::Database> + Type<A::Database>,
    Option<Stamp>: 'q + Encode<'q, A::Database> + Type<A::Database>,
    Option<i64>: 'q + Encode<'q, A::Database> + Type<A::Database>,
    Option<String>: 'q + Encode<'q, A::Database> + Type<A::Database>,
{
    let (true, Some(rule), Some(due)) = (task.completed, &task.recurrence, task.due_date) else {
        return Ok(None);
    };
    // A stored rule was valid when written; one that no longer parses repeats no more.
    let Ok(rule) = Recurrence::parse(rule) else {
        return Ok(None);
    };
    let Some((next, next_rule)) = rule.next(due) else {
        return Ok(None);
    };
    let Ok(next) = check_due_date(next) else {
        return Ok(None);
    };
    let step = Step { due, next };
    let mut args = A::default();
    push(&mut args, task.id)?;
    push(&mut args, task.user_id.clone())?;
    push(&mut args, Stamp(next))?;
    push(&mut args, Stamp(now))?;
    push(&mut args, next_rule.to_string())?;
    for f in FIELDS {
        push_value(&mut args, f.next(task, &step))?;
    }
    Ok(Some(args))
}

/// A list statement and its arguments, as [`list`] builds them for one [`ListQuery`].
pub(crate) struct ListSql {
    /// The statement; placeholder `$n` is `args[n - 1]`.
    pub(crate) text: String,
    /// The arguments, in placeholder order, each written with its placeholder
    /// ([`ListBuilder::bind`]). Owned, so a list can move to another thread.
    pub(crate) args: Vec<Bind>,
}

/// One argument of a list statement, typed as its column is: each driver binds these (sqlx:
/// [`to_sqlx`]; rusqlite: `file_reads::list_args`; tokio-postgres: `PipelinedReads::list`), so
/// a new filter is written once, in [`filtered`] or [`list`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Bind {
    /// A text (the user, a search key, a tag key, a title key).
    Text(String),
    /// An instant (a due-date bound, the overdue time, a time cursor).
    Stamp(Stamp),
    /// A priority rank.
    Rank(i16),
    /// An integer (an id, the limit, the offset).
    Int(i64),
}

/// The arguments of a list statement for sqlx, in placeholder order.
pub(crate) fn to_sqlx<'q, A>(binds: &[Bind]) -> Result<A>
where
    A: Arguments<'q>,
    String: 'q + Encode<'q, A::Database> + Type<A::Database>,
    i16: 'q + Encode<'q, A::Database> + Type<A::Database>,
    i64: 'q + Encode<'q, A::Database> + Type<A::Database>,
    Stamp: 'q + Encode<'q, A::Database> + Type<A::Database>,
{
    let mut args = A::default();
    for bind in binds {
        match bind {
            Bind::Text(s) => push(&mut args, s.clone())?,
            Bind::Stamp(t) => push(&mut args, *t)?,
            Bind::Rank(r) => push(&mut args, *r)?,
            Bind::Int(n) => push(&mut args, *n)?,
        }
    }
    Ok(args)
}

/// A list statement being written: its text, and its arguments as their placeholders are
/// written, so the two cannot fall out of order (sqlx's `QueryBuilder`, driver-neutral).
struct ListBuilder {
    sql: String,
    args: Vec<Bind>,
}

impl ListBuilder {
    /// Adds `value` as the next argument: its placeholder, to write into the text.
    fn bind(&mut self, value: Bind) -> String {
        self.args.push(value);
        format!("${}", self.args.len())
    }
}

/// The column a sort orders by.
fn sort_column(sort: SortField) -> &'static str {
    match sort {
        SortField::Created => "created_at",
        SortField::Updated => "updated_at",
        SortField::Title => "title_key",
        SortField::DueDate => "due_date",
        SortField::Priority => "priority",
    }
}

/// The start of a statement over `user`'s tasks that `query`'s filters match: `select`
/// followed by `columns`, then the filters, with the arguments they take (the user is `$1`).
/// More than 20 different tags in the filter is a validation error on `tag` (no task carries
/// that many).
fn filtered(
    columns: &str,
    position_fn: &str,
    user: &str,
    query: &ListQuery,
    now: DateTime<Utc>,
) -> Result<ListBuilder> {
    use std::fmt::Write;

    let mut tags: Vec<String> = Vec::with_capacity(query.tags.len());
    for tag in &query.tags {
        let key = tag.key();
        if !tags.contains(&key) {
            tags.push(key);
        }
    }
    if tags.len() > TAGS_MAX {
        return Err(ValidationError::field("tag", format!("at most {TAGS_MAX} tags")).into());
    }

    let mut b = ListBuilder {
        sql: String::with_capacity(384),
        args: Vec::with_capacity(4),
    };
    let owner = b.bind(Bind::Text(user.to_owned()));
    let _ = write!(b.sql, "select {columns} from tasks where user_id = {owner}");
    match query.status {
        StatusFilter::All => {}
        StatusFilter::Pending => b.sql.push_str(" and completed = false"),
        StatusFilter::Completed => b.sql.push_str(" and completed = true"),
    }
    if let Some(search) = &query.search {
        let s = b.bind(Bind::Text(search.as_str().to_owned()));
        let _ = write!(
            b.sql,
            " and ({position_fn}(title_key, {s}) > 0 or {position_fn}(coalesce(description_key, ''), {s}) > 0)"
        );
    }
    // Each tag is a lookup in `task_tags` by its primary key, led by the owner, for each of
    // the user's rows in the sort's order until the page is full. A scalar subquery rather than
    // `exists`: PostgreSQL turns `exists` into a join whose plan follows the table's statistics,
    // and so other users' rows (with a million of them it read all the user's tagged rows and
    // sorted them). Its value is true or null, which drops the row.
    for key in tags {
        let k = b.bind(Bind::Text(key));
        let _ = write!(
            b.sql,
            " and (select true from task_tags g where g.user_id = {owner} and g.tag_key = {k} and g.task_id = tasks.id)"
        );
    }
    let mut ranks: Vec<i16> = query.priorities.iter().map(|p| p.rank()).collect();
    ranks.sort_unstable();
    ranks.dedup();
    // Ranks are the model's own small integers, written into the text; all three is no filter.
    if !ranks.is_empty() && ranks.len() < 3 {
        let list: Vec<String> = ranks.iter().map(i16::to_string).collect();
        let _ = write!(b.sql, " and priority in ({})", list.join(", "));
    }
    if let Some(t) = query.due_after {
        let p = b.bind(Bind::Stamp(Stamp(to_stored_precision(t))));
        let _ = write!(b.sql, " and due_date >= {p}");
    }
    if let Some(t) = query.due_before {
        let p = b.bind(Bind::Stamp(Stamp(to_stored_precision(t))));
        let _ = write!(b.sql, " and due_date < {p}");
    }
    if query.overdue {
        let p = b.bind(Bind::Stamp(Stamp(now)));
        let _ = write!(b.sql, " and completed = false and due_date < {p}");
    }
    Ok(b)
}

/// The page statement for `query` over `user`'s tasks: [`filtered`], then the keyset
/// condition when it continues after `after`, the order, one row past the page (to tell whether
/// another page follows) and the offset, if any. `position_fn` is the backend's
/// substring-position function (`instr`, `strpos`); `now` is the time an `overdue` filter
/// judges by. An offset together with a cursor is a validation error on `offset`.
pub(crate) fn list(
    position_fn: &str,
    user: &str,
    query: &ListQuery,
    after: Option<&Position>,
    now: DateTime<Utc>,
) -> Result<ListSql> {
    use std::fmt::Write;

    if query.offset.get() > 0 && query.cursor.is_some() {
        return Err(ValidationError::field("offset", "cannot be combined with a cursor").into());
    }
    let mut b = filtered(task_columns(), position_fn, user, query, now)?;
    let column = sort_column(query.sort);
    let (cmp, dir) = match query.order {
        SortOrder::Asc => (">", "asc"),
        SortOrder::Desc => ("<", "desc"),
    };
    if let Some(p) = after {
        let key = match &p.key {
            Key::Time(t) | Key::MaybeTime(Some(t)) => Some(Bind::Stamp(Stamp(micros_to_time(*t)))),
            Key::MaybeTime(None) => None,
            Key::Text(s) => Some(Bind::Text(s.clone())),
            Key::Rank(r) => Some(Bind::Rank(*r)),
        };
        match (query.sort, key) {
            (SortField::DueDate, Some(key)) => {
                // Tasks without a due date come after every dated one, in either order.
                let (k, id) = (b.bind(key), b.bind(Bind::Int(p.id)));
                let _ = write!(
                    b.sql,
                    " and (due_date is null or (due_date, id) {cmp} ({k}, {id}))"
                );
            }
            (_, Some(key)) => {
                let (k, id) = (b.bind(key), b.bind(Bind::Int(p.id)));
                let _ = write!(b.sql, " and ({column}, id) {cmp} ({k}, {id})");
            }
            (_, None) => {
                let id = b.bind(Bind::Int(p.id));
                let _ = write!(b.sql, " and due_date is null and id {cmp} {id}");
            }
        }
    }
    let nulls = if query.sort == SortField::DueDate {
        " nulls last"
    } else {
        ""
    };
    let limit = b.bind(Bind::Int(i64::from(query.limit.get()) + 1));
    let _ = write!(
        b.sql,
        " order by {column} {dir}{nulls}, id {dir} limit {limit}"
    );
    if query.offset.get() > 0 {
        let offset = b.bind(Bind::Int(i64::from(query.offset.get())));
        let _ = write!(b.sql, " offset {offset}");
    }
    Ok(ListSql {
        text: b.sql,
        args: b.args,
    })
}

/// The statement that counts `user`'s tasks that `query`'s filters match, whatever its sort,
/// page size, offset or cursor: how many in all, and how many of them completed. `row::counts`
/// reads them.
pub(crate) fn count(
    position_fn: &str,
    user: &str,
    query: &ListQuery,
    now: DateTime<Utc>,
) -> Result<ListSql> {
    let b = filtered(
        "count(*), coalesce(sum(case when completed then 1 else 0 end), 0)",
        position_fn,
        user,
        query,
        now,
    )?;
    Ok(ListSql {
        text: b.sql,
        args: b.args,
    })
}

/// Microseconds since the epoch to a UTC timestamp (saturating at chrono's range).
pub(crate) fn micros_to_time(micros: i64) -> DateTime<Utc> {
    DateTime::from_timestamp_micros(micros).unwrap_or(if micros < 0 {
        DateTime::<Utc>::MIN_UTC
    } else {
        DateTime::<Utc>::MAX_UTC
    })
}
