-- Tags and reminders. tags is a JSON array of the tags as spelled, in order; tag_keys the JSON
-- array of their case-folded keys (computed by todo-core, so both backends fold alike), in the
-- same order. remind_at is microseconds since the epoch, like the other instants.
alter table tasks add column tags text not null default '[]';
alter table tasks add column tag_keys text not null default '[]';
alter table tasks add column remind_at integer;

-- One row per tag of a task, kept by the triggers below from tags and tag_keys (a change of
-- spelling alone changes the names): a tag filter and the tag
-- counts read it by its primary key, led by the owner, so they never touch other users' rows.
create table task_tags (
    user_id text    not null,
    tag_key text    not null,
    task_id integer not null,
    name    text    not null,
    primary key (user_id, tag_key, task_id)
) without rowid;

create trigger tasks_tags_insert after insert on tasks
when new.tag_keys <> '[]'
begin
    insert into task_tags (user_id, tag_key, task_id, name)
    select new.user_id, k.value, new.id, n.value
    from json_each(new.tag_keys) k join json_each(new.tags) n on n.key = k.key;
end;

create trigger tasks_tags_update after update of tags on tasks
when new.tags <> old.tags
begin
    delete from task_tags
    where user_id = old.user_id
      and tag_key in (select value from json_each(old.tag_keys))
      and task_id = old.id;
    insert into task_tags (user_id, tag_key, task_id, name)
    select new.user_id, k.value, new.id, n.value
    from json_each(new.tag_keys) k join json_each(new.tags) n on n.key = k.key;
end;

create trigger tasks_tags_delete after delete on tasks
when old.tag_keys <> '[]'
begin
    delete from task_tags
    where user_id = old.user_id
      and tag_key in (select value from json_each(old.tag_keys))
      and task_id = old.id;
end;
