-- Tags and reminders. tags holds the tags as spelled, in order; tag_keys their case-folded keys
-- (computed by todo-core, so both backends fold alike), in the same order.
alter table tasks
    add column tags text[] not null default '{}',
    add column tag_keys text[] not null default '{}',
    add column remind_at timestamptz;

-- One row per tag of a task, kept by the triggers below from tags and tag_keys (a change of
-- spelling alone changes the names): a tag filter and the tag
-- counts read it by its primary key, led by the owner, so they never touch other users' rows.
-- Keys and names use the "C" collation: code-point order, the same as SQLite's BINARY.
create table task_tags (
    user_id text            not null,
    tag_key text collate "C" not null,
    task_id bigint          not null,
    name    text collate "C" not null,
    primary key (user_id, tag_key, task_id)
);

create function tasks_sync_tags() returns trigger language plpgsql as $$
begin
    if tg_op in ('UPDATE', 'DELETE') then
        delete from task_tags
        where user_id = old.user_id and tag_key = any(old.tag_keys) and task_id = old.id;
    end if;
    if tg_op in ('INSERT', 'UPDATE') then
        insert into task_tags (user_id, tag_key, task_id, name)
        select new.user_id, k, new.id, n from unnest(new.tag_keys, new.tags) as t(k, n);
    end if;
    return null;
end
$$;

create trigger tasks_tags_insert after insert on tasks
for each row when (cardinality(new.tag_keys) > 0) execute function tasks_sync_tags();
create trigger tasks_tags_update after update of tags on tasks
for each row when (new.tags is distinct from old.tags) execute function tasks_sync_tags();
create trigger tasks_tags_delete after delete on tasks
for each row when (cardinality(old.tag_keys) > 0) execute function tasks_sync_tags();
