-- When a task became completed, null while it is pending. Tasks completed before this column
-- existed take their last update time, the best known.
alter table tasks add column completed_at timestamptz;
update tasks set completed_at = updated_at where completed;
