//! SQL text both backends run verbatim. The task column list and the insert's column and value
//! lists are written once, as macros, and joined into each statement with `concat!`, so a new
//! column is one edit here rather than one per statement (and the statements stay `&'static str`).

/// The columns every task-returning statement selects, in the order the decoders read them.
macro_rules! task_columns {
    () => {
        "id, user_id, title, description, completed, priority, due_date, created_at, updated_at, version"
    };
}

/// The columns a new task is inserted with; `insert_values!` gives their values, in order.
macro_rules! insert_columns {
    () => {
        "user_id, title, title_key, description, description_key, completed, priority, due_date, created_at, updated_at, version"
    };
}

/// The values of `insert_columns!`: `$1` user, `$2` title, `$3` its search key, `$4`
/// description, `$5` its search key, `$6` priority rank, `$7` due date, `$8` the time of the
/// create (both created and updated); not completed, version 1.
macro_rules! insert_values {
    () => {
        "$1, $2, $3, $4, $5, false, $6, $7, $8, $8, 1"
    };
}

pub(crate) const INSERT_ACCOUNT: &str = r"insert into accounts (id, email, name, password_hash, created_at)
    values ($1, $2, $3, $4, $5)";

pub(crate) const GET_ACCOUNT_BY_EMAIL: &str =
    r"select id, email, name, password_hash from accounts where email = $1";

/// The columns every task-returning statement selects, in the order the decoders read them.
pub(crate) const TASK_COLUMNS: &str = task_columns!();

pub(crate) const INSERT_TASK: &str = concat!(
    r"insert into tasks
    (",
    insert_columns!(),
    r")
    values (",
    insert_values!(),
    r")
    returning ",
    task_columns!()
);

/// [`INSERT_TASK`] only while the user `$1` has fewer than `$9` tasks: no row otherwise.
pub(crate) const INSERT_TASK_WITHIN_QUOTA: &str = concat!(
    r"insert into tasks
    (",
    insert_columns!(),
    r")
    select ",
    insert_values!(),
    r"
    where (select count(*) from (select 1 from tasks where user_id = $1 limit $9) counted) < $9
    returning ",
    task_columns!()
);

pub(crate) const GET_TASK: &str = concat!(
    "select ",
    task_columns!(),
    r"
    from tasks where id = $1 and user_id = $2"
);

pub(crate) const GET_VERSION: &str = r"select version from tasks where id = $1 and user_id = $2";

/// `$5`/`$10` say whether the nullable description/due date are set (so `null` can clear them).
pub(crate) const PATCH_TASK: &str = concat!(
    r"update tasks set
    title = coalesce($3, title),
    title_key = coalesce($4, title_key),
    description = case when $5 then $6 else description end,
    description_key = case when $5 then $7 else description_key end,
    completed = coalesce($8, completed),
    priority = coalesce($9, priority),
    due_date = case when $10 then $11 else due_date end,
    updated_at = $12,
    version = version + 1
    where id = $1 and user_id = $2 and version = coalesce($13, version)
    returning ",
    task_columns!()
);

/// `$3` null toggles.
pub(crate) const SET_COMPLETED: &str = concat!(
    r"update tasks set
    completed = coalesce($3, not completed),
    updated_at = $4,
    version = version + 1
    where id = $1 and user_id = $2 and version = coalesce($5, version)
    returning ",
    task_columns!()
);

pub(crate) const DELETE_TASK: &str = r"delete from tasks
    where id = $1 and user_id = $2 and version = coalesce($3, version)
    returning id";

pub(crate) const PURGE_IDEMPOTENCY_KEYS: &str =
    r"delete from idempotency_keys where created_at < $1";

pub(crate) const CLAIM_IDEMPOTENCY_KEY: &str = r"insert into idempotency_keys (user_id, key, fingerprint, created_at)
    values ($1, $2, $3, $4)
    on conflict (user_id, key) do nothing";

/// [`CLAIM_IDEMPOTENCY_KEY`] only while the user `$1` holds fewer than `$5` keys (run after
/// [`PURGE_IDEMPOTENCY_KEYS`], so all of them unexpired): nothing is inserted otherwise, even
/// for a key the user holds (which the caller then finds and replays).
pub(crate) const CLAIM_IDEMPOTENCY_KEY_WITHIN_QUOTA: &str = r"insert into idempotency_keys (user_id, key, fingerprint, created_at)
    select $1, $2, $3, $4
    where (select count(*) from (select 1 from idempotency_keys where user_id = $1 limit $5) counted) < $5
    on conflict (user_id, key) do nothing";

pub(crate) const SAVE_IDEMPOTENT_RESPONSE: &str =
    r"update idempotency_keys set response = $3 where user_id = $1 and key = $2";

pub(crate) const GET_IDEMPOTENCY_KEY: &str =
    r"select fingerprint, response from idempotency_keys where user_id = $1 and key = $2";
