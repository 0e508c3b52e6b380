-- Recurring tasks. recurrence is the task's rule in todo-core's canonical form; a rule needs a
-- due date. spawned_from is the task whose completion created this one: unique, so a completed
-- task creates at most one next occurrence, whatever retries, reopenings or concurrent
-- completions do.
alter table tasks add column recurrence text check (recurrence is null or due_date is not null);
alter table tasks add column spawned_from integer;
create unique index tasks_spawned_from on tasks (spawned_from) where spawned_from is not null;
