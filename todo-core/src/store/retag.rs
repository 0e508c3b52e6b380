//! Renaming or removing one of a user's tags on every task that carries it. The rewrite of a
//! task's tags is done by the database, one set-based statement per backend ([`PG_RETAG`],
//! [`SQLITE_RETAG`]) with the same arguments ([`args`]): no task is read, changed in memory and
//! written back, so no concurrent write of a task's tags can land in between and be lost.
//!
//! Each statement rewrites the tasks that carry the tag among the user's tasks with an id above
//! `$6`, at most `$7` of them (all when `$7` is null). PostgreSQL runs it once for all tasks: each row is rewritten from its latest committed version (a concurrent
//! write of the same task is waited for, and the statement then reads the row it left), and
//! the row locks are the user's own. SQLite runs it in chunks of [`SQLITE_CHUNK`] tasks, each
//! its own short write transaction that returns the ids it rewrote (the next chunk starts above
//! the greatest), because its one write lock is every user's: other writes get their turns
//! between chunks.
//!
//! The rule the statements write, in SQL: each tag whose key is `$2` becomes `$4` (key `$3`) in
//! its place, or is dropped when `$3` is null; then a tag whose key appeared earlier in the list
//! is dropped, so a task that carried both the old and the new tag keeps one, at the first one's
//! place and spelling (what [`Tags::new`](crate::model::Tags::new) keeps). Each rewritten task
//! gets a new version and update time `$5`.

use chrono::{DateTime, Utc};
use sqlx::{Arguments, Encode, Type};

use super::statements::Stamp;
use crate::error::{Error, Result};
use crate::model::Tag;

/// How many tasks one SQLite write transaction of a rename or removal rewrites: small enough
/// that the write lock is held about as long as one group-committed batch holds it.
pub(crate) const SQLITE_CHUNK: i64 = 200;

/// The rewrite on PostgreSQL. The `$2 = any(tag_keys)` test is checked again on the latest
/// version of a row that a concurrent write changed while this statement waited for it: a task
/// that lost the tag meanwhile is left alone.
pub(crate) const PG_RETAG: &str = r"update tasks t set
    (tags, tag_keys) = (
        select coalesce(array_agg(m.name order by m.pos), '{}'),
               coalesce(array_agg(m.key order by m.pos), '{}')
        from (
            select distinct on (r.key) r.key, r.name, r.pos
            from (
                select case when e.key = $2 then $3::text else e.key end as key,
                       case when e.key = $2 then $4::text else e.name end as name,
                       e.pos
                from unnest(t.tag_keys, t.tags) with ordinality as e(key, name, pos)
            ) r
            where r.key is not null
            order by r.key, r.pos
        ) m
    ),
    updated_at = $5,
    version = t.version + 1
    where t.user_id = $1
      and t.id in (
          select task_id from task_tags
          where user_id = $1 and tag_key = $2 and task_id > $6
          order by task_id
          limit $7)
      and $2 = any(t.tag_keys)";

/// The rewrite of one chunk on SQLite: both columns from one pass over the task's tags (a row
/// value assigned to the column pair, as on PostgreSQL).
pub(crate) const SQLITE_RETAG: &str = r"update tasks set
    (tags, tag_keys) = (
        select json_group_array(name order by pos), json_group_array(key order by pos)
        from (
            select key, name, pos, row_number() over (partition by key order by pos) as nth
            from (
                select iif(k.value = $2, $3, k.value) as key,
                       iif(k.value = $2, $4, n.value) as name,
                       k.key as pos
                from json_each(tasks.tag_keys) k join json_each(tasks.tags) n on n.key = k.key
            )
            where key is not null
        )
        where nth = 1
    ),
    updated_at = $5,
    version = version + 1
    where user_id = $1
      and id in (
          select task_id from task_tags
          where user_id = $1 and tag_key = $2 and task_id > $6
          order by task_id
          limit $7)
    returning id";

/// The arguments of [`PG_RETAG`] and [`SQLITE_RETAG`]: `user`'s tasks with an id above
/// `after` that carry `from` get `to` in its place (or lose it, when `to` is `None`) at `now`,
/// at most `limit` of them (all when `None`).
pub(crate) fn args<'q, A>(
    user: &str,
    from: &Tag,
    to: Option<&Tag>,
    now: DateTime<Utc>,
    after: i64,
    limit: Option<i64>,
) -> Result<A>
where
    A: Arguments<'q>,
    String: 'q + Encode<'q, A::Database> + Type<A::Database>,
    Option<String>: 'q + Encode<'q, A::Database> + Type<A::Database>,
    i64: 'q + Encode<'q, A::Database> + Type<A::Database>,
    Option<i64>: 'q + Encode<'q, A::Database> + Type<A::Database>,
    Stamp: 'q + Encode<'q, A::Database> + Type<A::Database>,
{
    let mut args = A::default();
    let push_err = Error::Storage;
    args.add(user.to_owned()).map_err(push_err)?;
    args.add(from.key()).map_err(push_err)?;
    args.add(to.map(Tag::key)).map_err(push_err)?;
    args.add(to.map(|t| t.as_str().to_owned()))
        .map_err(push_err)?;
    args.add(Stamp(now)).map_err(push_err)?;
    args.add(after).map_err(push_err)?;
    args.add(limit).map_err(push_err)?;
    Ok(args)
}
