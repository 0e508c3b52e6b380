//! Decisions both backends share, written once: no I/O and no driver types, so each backend
//! feeds them what it read and returns what they answer.

use super::statements::PLAIN_FROM;
use super::turns::{self, Turn, UserTurns};
use super::{ListCounts, PriorityCounts, TaskStats};
use crate::accounts::{Account, Hasher};
use crate::cursor::{CursorCodec, Key, Position};
use crate::error::{Error, Quota, Result};
use crate::fields::{FIELDS, Kind, Value};
use crate::model::{
    Created, ListQuery, Page, SortField, SortOrder, StatusFilter, Task, UserId, fold_case,
};
use crate::options::StoreOptions;
use crate::principal::Principal;

/// An account as stored; each backend decodes it from the columns of
/// [`GET_ACCOUNT_BY_EMAIL`](super::statements::GET_ACCOUNT_BY_EMAIL), in this order.
#[derive(Debug)]
pub(crate) struct AccountRow {
    pub(crate) id: String,
    pub(crate) email: String,
    pub(crate) name: Option<String>,
    /// The PHC string the password is verified against; never leaves the store.
    pub(crate) password_hash: String,
}

/// What both backends hold besides their connections: the cursor key, the password hasher, the
/// per-user turns and the quotas. Its methods do no I/O; a backend reads, they decide.
pub(crate) struct Common {
    /// Signs and checks list cursors, each bound to its user.
    pub(crate) cursors: CursorCodec,
    /// Password hashing, a bounded number at a time.
    pub(crate) hasher: Hasher,
    /// Lists that may read all of a user's tasks ([`is_scan`]), a bounded number per user at a
    /// time ([`StoreOptions::max_concurrent_scans_per_user`]).
    pub(crate) scans: Option<UserTurns>,
    /// Where a quota needs a database lock: a user's quota-checked writes take turns here
    /// first, so they queue in the process rather than each holding a pool connection while it
    /// waits for the user's lock (one user could otherwise take them all).
    pub(crate) quota_turns: Option<UserTurns>,
    /// [`StoreOptions::max_tasks_per_user`].
    pub(crate) max_tasks: Option<u64>,
    /// [`StoreOptions::max_idempotency_keys_per_user`].
    pub(crate) max_keys: Option<u64>,
}

impl Common {
    /// The shared state for a store opened with `options`; `quota_needs_lock`: the backend
    /// serialises a user's quota-checked writes on a database lock, so they take turns first.
    pub(crate) fn new(
        cursor_secret: Vec<u8>,
        options: &StoreOptions,
        quota_needs_lock: bool,
    ) -> Self {
        let max_tasks = options.max_tasks_per_user;
        let max_keys = options.max_idempotency_keys_per_user;
        Self {
            cursors: CursorCodec::new(cursor_secret),
            hasher: Hasher::new(options),
            scans: options
                .max_concurrent_scans_per_user
                .map(|n| UserTurns::new(n, turns::TURN_WAIT)),
            quota_turns: (quota_needs_lock && (max_tasks.is_some() || max_keys.is_some()))
                .then(|| UserTurns::new(1, turns::TURN_WAIT)),
            max_tasks,
            max_keys,
        }
    }

    /// Where `query`'s page starts: after the position its cursor names (`None`: from the
    /// first task). A cursor another user, sort or order was issued, or a tampered one, is a
    /// validation error.
    pub(crate) fn after(&self, who: &Principal, query: &ListQuery) -> Result<Option<Position>> {
        match &query.cursor {
            Some(c) => Ok(Some(self.cursors.decode(
                who.user_id(),
                c,
                query.sort,
                query.order,
            )?)),
            None => Ok(None),
        }
    }

    /// One of the user's turns when `query` is a scan and scans are bounded (held until the
    /// page is read), else `None`; [`Error::Busy`] when no turn came free in time.
    pub(crate) async fn scan_turn<'a>(
        &'a self,
        who: &'a Principal,
        query: &ListQuery,
    ) -> Result<Option<Turn<'a>>> {
        match &self.scans {
            Some(scans) if is_scan(query) => Ok(Some(scans.turn(who.user_id().as_str()).await?)),
            _ => Ok(None),
        }
    }

    /// One of the user's scan turns when scans are bounded, for work that reads every task of
    /// the user that carries a tag (the tag counts, a rename or removal across tasks).
    pub(crate) async fn tag_turn<'a>(&'a self, user: &'a str) -> Result<Option<Turn<'a>>> {
        match &self.scans {
            Some(scans) => Ok(Some(scans.turn(user).await?)),
            None => Ok(None),
        }
    }

    /// One of the user's quota turns where quota-checked writes take them, else `None`.
    pub(crate) async fn quota_turn<'a>(&'a self, user: &'a str) -> Result<Option<Turn<'a>>> {
        match &self.quota_turns {
            Some(turns) => Ok(Some(turns.turn(user).await?)),
            None => Ok(None),
        }
    }

    /// The account a login with `password` signs in to, given the row found for its email
    /// (`None`: no such account). The password is verified either way (against no hash when
    /// there is no row), so an unknown email and a wrong password take the same time and get
    /// the same answer, [`Error::InvalidCredentials`].
    pub(crate) async fn login(&self, row: Option<AccountRow>, password: &str) -> Result<Account> {
        let hash = row.as_ref().map(|r| r.password_hash.clone());
        if !self.hasher.verify(password.to_owned(), hash).await? {
            return Err(Error::InvalidCredentials);
        }
        let Some(AccountRow {
            id,
            email,
            name,
            password_hash: _,
        }) = row
        else {
            return Err(Error::InvalidCredentials);
        };
        Ok(Account {
            id: UserId::parse(&id)?,
            email,
            name,
        })
    }

    /// The page for `rows`, read with one row past `query`'s limit: the rows up to the limit,
    /// and a cursor after the last of them when there was one more.
    pub(crate) fn page(&self, who: &Principal, query: &ListQuery, mut rows: Vec<Task>) -> Page {
        let limit = query.limit.get() as usize;
        let next_cursor = if rows.len() > limit {
            rows.truncate(limit);
            rows.last().map(|last| {
                self.cursors.encode(
                    who.user_id(),
                    &position_after(last, query.sort, query.order),
                )
            })
        } else {
            None
        };
        Page {
            tasks: rows,
            next_cursor,
        }
    }
}

/// A list's counts from the two counts `statements::count` selects, read by `count(i)` for
/// column `i`.
pub(crate) fn list_counts(count: impl Fn(usize) -> Result<i64>) -> Result<ListCounts> {
    let count = |i: usize| count(i).map(|n| u64::try_from(n).unwrap_or_default());
    let total = count(0)?;
    let completed = count(1)?;
    Ok(ListCounts {
        total,
        completed,
        pending: total.saturating_sub(completed),
    })
}

/// Task counts from the six counts `TASK_STATS` selects, read by `count(i)` for column `i`.
pub(crate) fn task_stats(count: impl Fn(usize) -> Result<i64>) -> Result<TaskStats> {
    let count = |i: usize| count(i).map(|n| u64::try_from(n).unwrap_or_default());
    let total = count(0)?;
    let completed = count(1)?;
    Ok(TaskStats {
        total,
        completed,
        pending: total.saturating_sub(completed),
        overdue: count(2)?,
        by_priority: PriorityCounts {
            low: count(3)?,
            medium: count(4)?,
            high: count(5)?,
        },
    })
}

/// The decode error for a priority rank no migration defines.
pub(crate) fn unknown_rank(rank: i16) -> Error {
    Error::Storage(format!("unknown priority rank {rank}").into())
}

/// Sets `task`'s plain fields ([`FIELDS`]) from a row whose columns are
/// [`task_columns`](super::statements::task_columns): `column(kind, i)` reads column `i` as
/// `kind` stores it.
pub(crate) fn set_plain(
    task: &mut Task,
    mut column: impl FnMut(Kind, usize) -> Result<Value>,
) -> Result<()> {
    for (i, f) in FIELDS.iter().enumerate() {
        let value = column(f.kind, PLAIN_FROM + i)?;
        f.set(task, value)
            .ok_or_else(|| Error::Storage(format!("{} decoded as another kind", f.name).into()))?;
    }
    Ok(())
}

/// The keyset position just after `task` in a list sorted by `sort`/`order`.
pub(crate) fn position_after(task: &Task, sort: SortField, order: SortOrder) -> Position {
    let key = match sort {
        SortField::Created => Key::Time(task.created_at.timestamp_micros()),
        SortField::Updated => Key::Time(task.updated_at.timestamp_micros()),
        SortField::Title => Key::Text(fold_case(&task.title)),
        SortField::DueDate => Key::MaybeTime(task.due_date.map(|d| d.timestamp_micros())),
        SortField::Priority => Key::Rank(task.priority.rank()),
    };
    Position {
        sort,
        order,
        key,
        id: task.id,
    }
}

/// The task an insert returned; none means the task quota `max_tasks` refused it
/// ([`Error::QuotaExceeded`]).
pub(crate) fn inserted(task: Option<Task>, max_tasks: Option<u64>) -> Result<Task> {
    match (task, max_tasks) {
        (Some(task), _) => Ok(task),
        (None, Some(limit)) => Err(Error::QuotaExceeded {
            what: Quota::Tasks,
            limit,
        }),
        (None, None) => Err(Error::Storage("insert returned no row".into())),
    }
}

/// A quota as a bind value (a limit past `i64::MAX` is no limit in practice).
pub(crate) fn quota_arg(limit: Option<u64>) -> i64 {
    limit.map_or(i64::MAX, |l| i64::try_from(l).unwrap_or(i64::MAX))
}

/// The answer for a write that matched no row, given the task's `current` version as read
/// after it (`None`: missing, or not this user's) and the version the caller `expected`.
pub(crate) fn stale_or_missing(current: Option<i64>, expected: Option<i64>) -> Error {
    match (current, expected) {
        (None, _) => Error::NotFound,
        (Some(current), Some(expected)) if expected != current => {
            Error::VersionMismatch { expected, current }
        }
        // The task changed between the write and this check; report it as stale.
        (Some(current), expected) => Error::VersionMismatch {
            expected: expected.unwrap_or(current),
            current,
        },
    }
}

/// An idempotency key as stored: the fingerprint of the request that claimed it and, once that
/// request's task was created, the task as JSON.
pub(crate) struct HeldKey {
    pub(crate) fingerprint: String,
    pub(crate) response: Option<String>,
}

/// The answer for a keyed create whose key was not claimed: a replay of the stored task when
/// `held` has the same `fingerprint`, a conflict when another request holds the key, a refusal
/// when nobody holds it and the key quota `max_keys` is on (the claim was refused).
pub(crate) fn replayed_or_refused(
    held: Option<HeldKey>,
    fingerprint: &str,
    max_keys: Option<u64>,
) -> Result<Created> {
    match (held, max_keys) {
        (
            Some(HeldKey {
                fingerprint: stored,
                response: Some(response),
            }),
            _,
        ) if stored == fingerprint => {
            let task: Task =
                serde_json::from_str(&response).map_err(|e| Error::Storage(Box::new(e)))?;
            Ok(Created {
                task,
                replayed: true,
            })
        }
        (Some(held), _) if held.fingerprint != fingerprint => Err(Error::IdempotencyConflict),
        // Not claimed, yet not held: the quota refused the new key.
        (None, Some(limit)) => Err(Error::QuotaExceeded {
            what: Quota::IdempotencyKeys,
            limit,
        }),
        _ => Err(Error::Storage(
            "idempotency key claimed without a stored response".into(),
        )),
    }
}

/// Whether a list may read all of the user's tasks before its page fills, and so takes one of
/// the user's turns ([`super::TaskStore::list`]'s contract, the same on both backends). Only a
/// plain page is not: every task, no search, sorted by a column the owner's index orders (the
/// due-date sort is excluded: its cursor, `due_date is null or (due_date, id) > ...`, is no
/// range to seek to), no larger than the default. The order never changes that, nor does a
/// cursor, but for the priority sort: a cursor page seeks to the cursor's priority only (see
/// `sqlite::schedule`) and walks the tasks of that priority before it. Deny by default: a status or sort this does not name
/// is a scan, and a field added to [`ListQuery`] fails to compile here until it is classified.
pub(crate) fn is_scan(query: &ListQuery) -> bool {
    let ListQuery {
        status,
        search,
        sort,
        order: _,
        limit,
        cursor,
        offset,
        tags,
        priorities,
        due_after,
        due_before,
        overdue,
    } = query;
    // Every filter but the owner may skip any number of the user's tasks before a page fills,
    // and an offset reads every task it skips.
    let filtered = offset.get() > 0
        || !tags.is_empty()
        || !priorities.is_empty()
        || due_after.is_some()
        || due_before.is_some()
        || *overdue;
    let plain = !filtered
        && matches!(
            (status, search, sort, cursor),
            (
                StatusFilter::All,
                None,
                SortField::Created | SortField::Updated | SortField::Title,
                _
            ) | (StatusFilter::All, None, SortField::Priority, None)
        );
    !plain || limit.get() > crate::model::Limit::DEFAULT
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{Limit, SearchText, SortOrder};

    /// Only plain pages in an indexed order, no larger than the default, are no scan: those are
    /// the lists that take none of the user's turns.
    #[test]
    fn only_plain_indexed_pages_of_default_size_are_not_scans() {
        let plain = ListQuery::default();
        assert!(!is_scan(&plain));
        for sort in [SortField::Created, SortField::Updated, SortField::Title] {
            for order in [SortOrder::Asc, SortOrder::Desc] {
                let q = ListQuery {
                    sort,
                    order,
                    cursor: Some("anything".into()),
                    ..plain.clone()
                };
                assert!(!is_scan(&q), "{sort:?} {order:?}");
            }
        }
        for order in [SortOrder::Asc, SortOrder::Desc] {
            let q = ListQuery {
                sort: SortField::Priority,
                order,
                ..plain.clone()
            };
            assert!(!is_scan(&q), "priority {order:?}");
        }
        let scans = [
            ListQuery {
                status: StatusFilter::Pending,
                ..plain.clone()
            },
            ListQuery {
                status: StatusFilter::Completed,
                ..plain.clone()
            },
            ListQuery {
                search: SearchText::parse("milk").unwrap(),
                ..plain.clone()
            },
            ListQuery {
                sort: SortField::DueDate,
                ..plain.clone()
            },
            ListQuery {
                sort: SortField::Priority,
                cursor: Some("anything".into()),
                ..plain.clone()
            },
            ListQuery {
                limit: Limit::new(i64::from(Limit::DEFAULT) + 1).unwrap(),
                ..plain.clone()
            },
        ];
        for q in scans {
            assert!(is_scan(&q), "{q:?}");
        }
    }

    fn task(id: i64) -> Task {
        Task {
            id,
            user_id: "alice".into(),
            title: format!("t{id}"),
            description: None,
            completed: false,
            priority: crate::model::Priority::Medium,
            due_date: None,
            created_at: chrono::DateTime::UNIX_EPOCH + chrono::Duration::seconds(id),
            updated_at: chrono::DateTime::UNIX_EPOCH,
            completed_at: None,
            version: 1,
            tags: Vec::new(),
            recurrence: None,
            ..Task::default()
        }
    }

    fn principal(user: &str) -> Principal {
        Principal::assume_authenticated(crate::model::UserId::parse(user).unwrap())
    }

    /// A page read one row past its limit keeps the limit's rows and issues a cursor that the
    /// same user's next list decodes to right after the last of them; a short page issues none,
    /// and another user's list refuses the cursor.
    #[test]
    fn a_full_page_is_truncated_and_its_cursor_continues_after_its_last_task() {
        let common = Common::new(b"secret".to_vec(), &StoreOptions::default(), false);
        let alice = principal("alice");
        let query = ListQuery {
            limit: Limit::new(2).unwrap(),
            ..ListQuery::default()
        };
        assert!(common.after(&alice, &query).unwrap().is_none());

        let page = common.page(&alice, &query, vec![task(1), task(2), task(3)]);
        assert_eq!(page.tasks, vec![task(1), task(2)]);
        let next = ListQuery {
            cursor: page.next_cursor.clone(),
            ..query.clone()
        };
        assert_eq!(
            common.after(&alice, &next).unwrap(),
            Some(position_after(&task(2), query.sort, query.order))
        );
        assert!(matches!(
            common.after(&principal("bob"), &next),
            Err(Error::Validation(_))
        ));

        let short = common.page(&alice, &query, vec![task(1), task(2)]);
        assert_eq!(short.tasks.len(), 2);
        assert!(short.next_cursor.is_none());
    }

    /// Quota turns exist only where the backend locks for a quota and a quota is on.
    #[test]
    fn quota_turns_only_where_a_quota_takes_a_database_lock() {
        let quota = StoreOptions {
            max_tasks_per_user: Some(3),
            ..StoreOptions::default()
        };
        assert!(Common::new(vec![1], &quota, true).quota_turns.is_some());
        assert!(Common::new(vec![1], &quota, false).quota_turns.is_none());
        assert!(
            Common::new(vec![1], &StoreOptions::default(), true)
                .quota_turns
                .is_none()
        );
    }

    /// A write that matched nothing: missing, or stale against the version read after it (also
    /// when the caller expected none or the very version now read, since it changed meanwhile).
    #[test]
    fn a_write_that_matched_nothing_is_missing_or_stale() {
        assert!(matches!(stale_or_missing(None, Some(3)), Error::NotFound));
        assert!(matches!(stale_or_missing(None, None), Error::NotFound));
        let stale = |current, expected| match stale_or_missing(Some(current), expected) {
            Error::VersionMismatch { expected, current } => (expected, current),
            other => panic!("{other:?}"),
        };
        assert_eq!(stale(4, Some(3)), (3, 4));
        assert_eq!(stale(4, Some(4)), (4, 4));
        assert_eq!(stale(4, None), (4, 4));
    }

    /// An unclaimed key replays the same request's task, refuses another request, and without
    /// a holder is the key quota's refusal.
    #[test]
    fn an_unclaimed_key_replays_conflicts_or_is_refused() {
        let task = Task {
            id: 7,
            user_id: "alice".into(),
            title: "a".into(),
            description: None,
            completed: false,
            priority: crate::model::Priority::Medium,
            due_date: None,
            created_at: chrono::DateTime::UNIX_EPOCH,
            updated_at: chrono::DateTime::UNIX_EPOCH,
            completed_at: None,
            version: 1,
            tags: Vec::new(),
            recurrence: None,
            ..Task::default()
        };
        let held = |fingerprint: &str, response: Option<String>| {
            Some(HeldKey {
                fingerprint: fingerprint.into(),
                response,
            })
        };
        let json = serde_json::to_string(&task).unwrap();
        let replay = replayed_or_refused(held("f", Some(json.clone())), "f", None).unwrap();
        assert!(replay.replayed);
        assert_eq!(replay.task, task);
        assert!(matches!(
            replayed_or_refused(held("g", Some(json)), "f", Some(5)),
            Err(Error::IdempotencyConflict)
        ));
        assert!(matches!(
            replayed_or_refused(None, "f", Some(5)),
            Err(Error::QuotaExceeded {
                what: Quota::IdempotencyKeys,
                limit: 5
            })
        ));
        assert!(matches!(
            replayed_or_refused(held("f", None), "f", None),
            Err(Error::Storage(_))
        ));
        assert!(matches!(
            replayed_or_refused(None, "f", None),
            Err(Error::Storage(_))
        ));
    }
}
