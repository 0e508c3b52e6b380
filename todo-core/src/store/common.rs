//! Decisions both backends share, written once: no I/O and no driver types, so each backend
//! feeds them what it read and returns what they answer.

use crate::error::{Error, Quota, Result};
use crate::model::{Created, ListQuery, SortField, StatusFilter, Task};

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
    } = query;
    let plain = matches!(
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
            version: 1,
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
