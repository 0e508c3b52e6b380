//! Opaque, tamper-evident keyset cursors.
//!
//! A cursor is `base64url(json(position) || hmac)`, where the HMAC-SHA256 (truncated to 16 bytes)
//! covers the owner's user id and the position. A cursor that was edited, truncated, or issued to
//! another user fails verification and is reported as a validation error on `cursor`.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use hmac::{Hmac, Mac};
use serde::{Deserialize, Serialize};
use sha2::Sha256;

use crate::error::ValidationError;
use crate::model::{SortField, SortOrder, UserId};

const TAG_LEN: usize = 16;
const MAX_CURSOR_CHARS: usize = 1024;

/// The sort key of the last row of a page.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) enum Key {
    /// `created_at` / `updated_at` in microseconds since the epoch.
    Time(i64),
    /// `due_date` in microseconds, or `None` for a task without one.
    MaybeTime(Option<i64>),
    /// Case-folded title.
    Text(String),
    /// Priority rank.
    Rank(i16),
}

/// Where the previous page ended, and for which sort.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct Position {
    pub sort: SortField,
    pub order: SortOrder,
    pub key: Key,
    pub id: i64,
}

impl Position {
    fn key_fits_sort(&self) -> bool {
        matches!(
            (self.sort, &self.key),
            (SortField::Created | SortField::Updated, Key::Time(_))
                | (SortField::DueDate, Key::MaybeTime(_))
                | (SortField::Title, Key::Text(_))
                | (SortField::Priority, Key::Rank(_))
        )
    }
}

/// Signs and verifies cursors with a secret key.
#[derive(Clone)]
pub(crate) struct CursorCodec {
    secret: Vec<u8>,
}

impl std::fmt::Debug for CursorCodec {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("CursorCodec { secret: <redacted> }")
    }
}

fn invalid() -> ValidationError {
    ValidationError::field(
        "cursor",
        "is not a cursor this list issued (it may be tampered, stale or from another query)",
    )
}

impl CursorCodec {
    pub fn new(secret: Vec<u8>) -> Self {
        Self { secret }
    }

    fn mac(&self, user: &UserId, payload: &[u8]) -> Hmac<Sha256> {
        // HMAC accepts keys of any length, so this cannot fail.
        let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(&self.secret)
            .unwrap_or_else(|_| unreachable!("HMAC takes keys of any length"));
        mac.update(user.as_str().as_bytes());
        mac.update(&[0]);
        mac.update(payload);
        mac
    }

    pub fn encode(&self, user: &UserId, position: &Position) -> String {
        let mut bytes = serde_json::to_vec(position).unwrap_or_default();
        let tag = self.mac(user, &bytes).finalize().into_bytes();
        bytes.extend_from_slice(&tag[..TAG_LEN]);
        URL_SAFE_NO_PAD.encode(bytes)
    }

    pub fn decode(
        &self,
        user: &UserId,
        cursor: &str,
        sort: SortField,
        order: SortOrder,
    ) -> Result<Position, ValidationError> {
        if cursor.len() > MAX_CURSOR_CHARS {
            return Err(invalid());
        }
        let bytes = URL_SAFE_NO_PAD.decode(cursor).map_err(|_| invalid())?;
        if bytes.len() <= TAG_LEN {
            return Err(invalid());
        }
        let (payload, tag) = bytes.split_at(bytes.len() - TAG_LEN);
        self.mac(user, payload)
            .verify_truncated_left(tag)
            .map_err(|_| invalid())?;
        let position: Position = serde_json::from_slice(payload).map_err(|_| invalid())?;
        if !position.key_fits_sort() {
            return Err(invalid());
        }
        if position.sort != sort || position.order != order {
            return Err(ValidationError::field(
                "cursor",
                "belongs to a different sort or order than this request",
            ));
        }
        Ok(position)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pos() -> Position {
        Position {
            sort: SortField::Title,
            order: SortOrder::Asc,
            key: Key::Text("milk".into()),
            id: 42,
        }
    }

    #[test]
    fn a_cursor_round_trips_for_its_owner_only() {
        let codec = CursorCodec::new(b"secret".to_vec());
        let alice = UserId::parse("alice").unwrap();
        let bob = UserId::parse("bob").unwrap();
        let c = codec.encode(&alice, &pos());
        assert_eq!(
            codec.decode(&alice, &c, SortField::Title, SortOrder::Asc),
            Ok(pos())
        );
        assert!(
            codec
                .decode(&bob, &c, SortField::Title, SortOrder::Asc)
                .is_err()
        );
        assert!(
            codec
                .decode(&alice, &c, SortField::Title, SortOrder::Desc)
                .is_err()
        );
    }

    #[test]
    fn every_single_character_edit_is_rejected() {
        let codec = CursorCodec::new(b"secret".to_vec());
        let alice = UserId::parse("alice").unwrap();
        let c = codec.encode(&alice, &pos());
        for i in 0..c.len() {
            let mut edited: Vec<u8> = c.clone().into_bytes();
            edited[i] = if edited[i] == b'A' { b'B' } else { b'A' };
            let edited = String::from_utf8(edited).unwrap();
            assert!(
                codec
                    .decode(&alice, &edited, SortField::Title, SortOrder::Asc)
                    .is_err(),
                "edit at {i} accepted"
            );
        }
        assert!(
            codec
                .decode(&alice, "", SortField::Title, SortOrder::Asc)
                .is_err()
        );
        assert!(
            codec
                .decode(&alice, "%%%", SortField::Title, SortOrder::Asc)
                .is_err()
        );
    }
}
