//! Per-user turns: at most a set number of one user's operations of a kind at once, the rest
//! queueing behind their own user's and never behind other users' turns. Two kinds use it:
//!
//! - Scans, lists that may read all of a user's tasks ([`super::common::is_scan`]: searches,
//!   status filters, the due-date sort, large pages). One user firing many searches at once
//!   would otherwise take every scan connection (SQLite) or fill the pipelines (PostgreSQL) and
//!   slow everyone. (Scans of different users still share the scan connections: more users scanning
//!   at once than there are connections wait for one.)
//! - Quota-checked writes where the quota needs a database lock (PostgreSQL): they queue here,
//!   one per user, rather than each holding a pool connection while waiting for the user's lock.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use crate::error::{Error, Result};

/// How long an operation waits for one of its user's turns before failing with [`Error::Busy`].
pub(crate) const TURN_WAIT: Duration = Duration::from_secs(10);

/// At most `per_user` operations per user at once (one `UserTurns` per kind of operation).
pub(crate) struct UserTurns {
    per_user: usize,
    wait: Duration,
    /// Only users with an operation running or waiting have an entry, so the map never holds
    /// more users than there are operations in flight.
    users: Mutex<HashMap<String, User>>,
}

/// One user's turns, and how many of their operations hold or wait for one.
struct User {
    turns: Arc<Semaphore>,
    in_flight: usize,
}

/// A turn: the operation may run while it is held. Dropping it frees the turn.
pub(crate) struct Turn<'a> {
    _permit: OwnedSemaphorePermit,
    _registration: Registration<'a>,
}

/// An operation counted in its user's entry; dropping it (after the permit, on success, on
/// timeout or when the caller gives up) removes the entry once the user has none in flight.
struct Registration<'a> {
    owner: &'a UserTurns,
    user: &'a str,
}

impl Drop for Registration<'_> {
    fn drop(&mut self) {
        let mut users = self.owner.users();
        if let Some(entry) = users.get_mut(self.user) {
            entry.in_flight -= 1;
            if entry.in_flight == 0 {
                users.remove(self.user);
            }
        }
    }
}

impl UserTurns {
    /// At most `per_user` (at least 1) operations per user at once; each waits at most `wait`
    /// for a turn.
    pub(crate) fn new(per_user: usize, wait: Duration) -> Self {
        Self {
            per_user: per_user.max(1),
            wait,
            users: Mutex::new(HashMap::new()),
        }
    }

    fn users(&self) -> MutexGuard<'_, HashMap<String, User>> {
        self.users.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Waits for one of `user`'s turns: [`Error::Busy`] if none came free in time.
    pub(crate) async fn turn<'a>(&'a self, user: &'a str) -> Result<Turn<'a>> {
        let turns = {
            let mut users = self.users();
            match users.get_mut(user) {
                Some(entry) => {
                    entry.in_flight += 1;
                    Arc::clone(&entry.turns)
                }
                None => {
                    let turns = Arc::new(Semaphore::new(self.per_user));
                    let entry = User {
                        turns: Arc::clone(&turns),
                        in_flight: 1,
                    };
                    users.insert(user.to_owned(), entry);
                    turns
                }
            }
        };
        let registration = Registration { owner: self, user };
        let permit = match Arc::clone(&turns).try_acquire_owned() {
            Ok(permit) => permit,
            Err(_) => tokio::time::timeout(self.wait, turns.acquire_owned())
                .await
                .map_err(|_| Error::Busy)?
                .map_err(|_| Error::Busy)?,
        };
        Ok(Turn {
            _permit: permit,
            _registration: registration,
        })
    }

    /// How many users have an entry (tests only).
    #[cfg(test)]
    fn tracked(&self) -> usize {
        self.users().len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// With one turn per user: a user's second scan waits for their first, another user's
    /// does not; a scan that waits too long is `Busy`; and once nothing is in flight, no entry
    /// is left behind (whether the scans finished, timed out or were abandoned).
    #[tokio::test]
    async fn one_users_scans_queue_behind_each_other_and_nobody_elses() {
        let turns = UserTurns::new(1, Duration::from_millis(50));
        let first = turns.turn("alice").await.unwrap();
        // Bob is not delayed by Alice's scan.
        let bob = turns.turn("bob").await.unwrap();
        assert_eq!(turns.tracked(), 2);
        // Alice's second scan waits, then gives up.
        assert!(matches!(turns.turn("alice").await, Err(Error::Busy)));
        drop(bob);
        assert_eq!(turns.tracked(), 1);
        // Abandoned while waiting: counted out too.
        let abandoned = tokio::time::timeout(Duration::from_millis(5), turns.turn("alice")).await;
        assert!(abandoned.is_err());
        drop(first);
        assert_eq!(turns.tracked(), 0);
        // A waiting scan gets the turn as soon as it is freed.
        let first = turns.turn("alice").await.unwrap();
        let (second, ()) = tokio::join!(turns.turn("alice"), async {
            tokio::time::sleep(Duration::from_millis(10)).await;
            drop(first);
        });
        assert!(second.is_ok());
        drop(second);
        assert_eq!(turns.tracked(), 0);
    }

    /// `per_user` scans of one user run at once, not more.
    #[tokio::test]
    async fn each_user_gets_exactly_their_number_of_turns() {
        let turns = UserTurns::new(2, Duration::from_millis(20));
        let a = turns.turn("alice").await.unwrap();
        let b = turns.turn("alice").await.unwrap();
        assert!(matches!(turns.turn("alice").await, Err(Error::Busy)));
        drop(a);
        let c = turns.turn("alice").await.unwrap();
        drop((b, c));
        assert_eq!(turns.tracked(), 0);
    }
}
