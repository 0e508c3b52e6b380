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
use crate::model::{SortField, SortOrder, TITLE_MAX_CHARS, UserId};

const TAG_LEN: usize = 16;

/// The JSON of the largest position apart from its title key: the longest sort and order
/// names, the text key's wrapper and the longest id. (A time or rank key is shorter than the
/// text key's wrapper plus any title.)
const POSITION_OVERHEAD: usize =
    r#"{"sort":"due_date","order":"desc","key":{"Text":""},"id":-9223372036854775808}"#.len();

/// The most bytes one title character takes in a cursor's JSON: [`fold_case`] may turn a
/// character into several (`İ` becomes `i̇`, 3 bytes), and JSON escapes a control character as
/// `\u00XX` (6 bytes), which is the most any character takes (checked for every character in the
/// tests below).
///
/// [`fold_case`]: crate::model::fold_case
const MAX_KEY_BYTES_PER_TITLE_CHAR: usize = 6;

/// The longest cursor [`CursorCodec::encode`] can issue, so the longest [`CursorCodec::decode`]
/// accepts: the largest position and the tag, in unpadded base64 (4 characters per 3 bytes,
/// rounded up). Derived from the title limit rather than picked, so every cursor we issue is
/// accepted.
const MAX_CURSOR_CHARS: usize =
    ((POSITION_OVERHEAD + TITLE_MAX_CHARS * MAX_KEY_BYTES_PER_TITLE_CHAR + TAG_LEN) * 4)
        .div_ceil(3);

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
        // Refused before any decoding work: nothing we issue is longer.
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

    /// The bound's per-character figure holds for every character there is: folded as titles
    /// are for sorting, then written as JSON, none takes more than
    /// [`MAX_KEY_BYTES_PER_TITLE_CHAR`] bytes (final sigma, the one context-dependent folding,
    /// included). Control characters reach it.
    #[test]
    fn no_title_character_takes_more_bytes_in_a_cursor_than_the_bound_assumes() {
        let json_len = |s: &str| serde_json::to_string(s).unwrap().len() - 2;
        let mut widest = 0;
        for c in (0..=u32::from(char::MAX)).filter_map(char::from_u32) {
            let folded = crate::model::fold_case(c.encode_utf8(&mut [0; 4]));
            widest = widest.max(json_len(&folded));
        }
        assert_eq!(widest, MAX_KEY_BYTES_PER_TITLE_CHAR);
        let sigma = crate::model::fold_case("ΑΣ ΣΑ");
        assert!(json_len(&sigma) <= 5 * MAX_KEY_BYTES_PER_TITLE_CHAR);
    }

    /// The largest position there is (the longest title of the widest characters, the longest
    /// names, the longest id) encodes to exactly the bound, and is accepted; every other key
    /// kind is shorter.
    #[test]
    fn the_largest_position_encodes_to_exactly_the_bound_and_is_accepted() {
        let codec = CursorCodec::new(b"secret".to_vec());
        let alice = UserId::parse("alice").unwrap();
        let largest = Position {
            sort: SortField::DueDate,
            order: SortOrder::Desc,
            key: Key::Text("\u{1}".repeat(TITLE_MAX_CHARS)),
            id: i64::MIN,
        };
        let c = codec.encode(&alice, &largest);
        assert_eq!(c.len(), MAX_CURSOR_CHARS);
        // The key does not fit the sort, so it is refused after the length and tag checks.
        assert_eq!(
            codec.decode(&alice, &c, SortField::DueDate, SortOrder::Desc),
            Err(invalid())
        );
        let title = Position {
            sort: SortField::Title,
            order: SortOrder::Desc,
            ..largest
        };
        let c = codec.encode(&alice, &title);
        assert!(c.len() <= MAX_CURSOR_CHARS);
        assert_eq!(
            codec.decode(&alice, &c, SortField::Title, SortOrder::Desc),
            Ok(title)
        );
        for key in [
            Key::Time(i64::MIN),
            Key::MaybeTime(Some(i64::MIN)),
            Key::Rank(i16::MIN),
        ] {
            let p = Position {
                sort: SortField::DueDate,
                order: SortOrder::Desc,
                key,
                id: i64::MIN,
            };
            assert!(codec.encode(&alice, &p).len() < MAX_CURSOR_CHARS, "{p:?}");
        }
    }

    /// A cursor longer than any we issue is refused for its length alone, even when its tag is
    /// good.
    #[test]
    fn a_signed_cursor_longer_than_the_bound_is_refused() {
        let codec = CursorCodec::new(b"secret".to_vec());
        let alice = UserId::parse("alice").unwrap();
        let long = Position {
            sort: SortField::Title,
            order: SortOrder::Desc,
            key: Key::Text("\u{1}".repeat(TITLE_MAX_CHARS + 1)),
            id: i64::MIN,
        };
        let c = codec.encode(&alice, &long);
        assert!(c.len() > MAX_CURSOR_CHARS);
        assert_eq!(
            codec.decode(&alice, &c, SortField::Title, SortOrder::Desc),
            Err(invalid())
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
