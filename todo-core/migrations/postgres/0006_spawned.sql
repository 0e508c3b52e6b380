-- Whether a completed recurring task has created its next occurrence. Set by the statement
-- that creates it, in the same transaction, and never cleared: a task creates at most one next
-- occurrence in its life, even when that occurrence is deleted and the task is completed again.
-- Tasks whose occurrence is still there start set.
alter table tasks add column spawned boolean not null default false;
update tasks set spawned = true
    where id in (select spawned_from from tasks where spawned_from is not null);
