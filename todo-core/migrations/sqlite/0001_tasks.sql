-- Tasks. Timestamps are microseconds since the Unix epoch (UTC); priority is a rank
-- (0 low, 1 medium, 2 high); title_key and description_key are the case-folded texts that
-- search and title sorting use, computed by todo-core so both backends agree.
create table tasks (
    id              integer primary key autoincrement,
    user_id         text    not null,
    title           text    not null,
    title_key       text    not null,
    description     text,
    description_key text,
    completed       integer not null default 0,
    priority        integer not null default 1,
    due_date        integer,
    created_at      integer not null,
    updated_at      integer not null,
    version         integer not null default 1
);

-- One index per sort, each led by the owner so a user's page never scans other users' rows.
create index tasks_user_created  on tasks (user_id, created_at, id);
create index tasks_user_updated  on tasks (user_id, updated_at, id);
create index tasks_user_title    on tasks (user_id, title_key, id);
create index tasks_user_due      on tasks (user_id, due_date, id);
create index tasks_user_priority on tasks (user_id, priority, id);

-- Idempotency keys for create, per user, kept 24 hours. response is the created task as JSON.
create table idempotency_keys (
    user_id     text    not null,
    key         text    not null,
    fingerprint text    not null,
    response    text,
    created_at  integer not null,
    primary key (user_id, key)
);
create index idempotency_keys_created on idempotency_keys (created_at);
