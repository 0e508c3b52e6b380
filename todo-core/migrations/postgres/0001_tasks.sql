-- Tasks. priority is a rank (0 low, 1 medium, 2 high); title_key and description_key are the
-- case-folded texts that search and title sorting use, computed by todo-core so both backends
-- agree. title_key uses the "C" collation: code-point order, the same as SQLite's BINARY.
create table tasks (
    id              bigint generated always as identity primary key,
    user_id         text        not null,
    title           text        not null,
    title_key       text collate "C" not null,
    description     text,
    description_key text,
    completed       boolean     not null default false,
    priority        smallint    not null default 1,
    due_date        timestamptz,
    created_at      timestamptz not null,
    updated_at      timestamptz not null,
    version         bigint      not null default 1
);

-- One index per sort, each led by the owner so a user's page never scans other users' rows.
create index tasks_user_created  on tasks (user_id, created_at, id);
create index tasks_user_updated  on tasks (user_id, updated_at, id);
create index tasks_user_title    on tasks (user_id, title_key, id);
create index tasks_user_due      on tasks (user_id, due_date, id);
create index tasks_user_priority on tasks (user_id, priority, id);

-- Idempotency keys for create, per user, kept 24 hours. response is the created task as JSON.
create table idempotency_keys (
    user_id     text        not null,
    key         text        not null,
    fingerprint text        not null,
    response    text,
    created_at  timestamptz not null,
    primary key (user_id, key)
);
create index idempotency_keys_created on idempotency_keys (created_at);
