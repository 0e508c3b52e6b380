-- Whether a completed recurring task has created its next occurrence, and never cleared: a task
-- creates at most one next occurrence in its life, even when that occurrence is deleted and the
-- task is completed again. Tasks whose occurrence is still there start set.
alter table tasks add column spawned integer not null default 0;
update tasks set spawned = 1
    where id in (select spawned_from from tasks where spawned_from is not null);

-- The insert of a next occurrence marks the task it came from, in the same statement.
create trigger tasks_spawned after insert on tasks
when new.spawned_from is not null
begin
    update tasks set spawned = 1 where id = new.spawned_from;
end;
