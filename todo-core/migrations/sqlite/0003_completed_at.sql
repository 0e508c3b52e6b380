-- When a task became completed (microseconds since the epoch), null while it is pending. Tasks
-- completed before this column existed take their last update time, the best known.
alter table tasks add column completed_at integer;
update tasks set completed_at = updated_at where completed;
