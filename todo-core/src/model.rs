//! The task model and its validated input types.
//!
//! Everything a caller hands to a [`TaskStore`](crate::TaskStore) is parsed into one of the newtypes
//! below first ("parse, don't validate"): a [`Title`] is always trimmed and 1 to 200 characters, a
//! [`Description`] at most 1000, a [`UserId`] 1 to 255. Invalid input becomes a [`ValidationError`]
//! naming the field and never reaches the database.

use std::fmt;

use chrono::{DateTime, SubsecRound, Utc};
use serde::{Deserialize, Serialize};

use crate::error::ValidationError;
use crate::fields::{self, Field, Input, Stored, fingerprint_bytes};
use crate::recurrence::Recurrence;

/// Longest title, in Unicode characters (after trimming).
pub const TITLE_MAX_CHARS: usize = 200;
/// Longest description, in Unicode characters.
pub const DESCRIPTION_MAX_CHARS: usize = 1000;
/// Longest user id, in Unicode characters.
pub const USER_ID_MAX_CHARS: usize = 255;
/// Longest search string, in Unicode characters.
pub const SEARCH_MAX_CHARS: usize = 200;
/// Longest idempotency key, in Unicode characters.
pub const IDEMPOTENCY_KEY_MAX_CHARS: usize = 255;
/// Longest tag, in Unicode characters (after trimming).
pub const TAG_MAX_CHARS: usize = 50;
/// Most tags on one task.
pub const TAGS_MAX: usize = 20;

/// A task's primary key.
pub type TaskId = i64;

/// Defines [`Task`], [`NewTask`], [`Replacement`] and [`TaskPatch`] with the fields written by
/// hand and the plain fields given to it, and [`FIELDS`]: see the invocation below.
macro_rules! task_types {
    ($(
        $(#[doc = $rustdoc:literal])*
        $name:ident: $stored:ty as $input:ty,
        fingerprint $fingerprint:literal,
        next $next:path,
        doc $doc:literal;
    )*) => {
        /// A stored task, as its owner sees it.
        #[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
        pub struct Task {
            /// Primary key, unique across all users.
            pub id: TaskId,
            /// The owner.
            pub user_id: String,
            /// Trimmed title, 1 to 200 characters.
            pub title: String,
            /// Optional description, at most 1000 characters.
            pub description: Option<String>,
            /// Whether the task is done.
            pub completed: bool,
            /// Priority, `medium` unless set.
            pub priority: Priority,
            /// Optional due date (UTC, microsecond precision).
            pub due_date: Option<DateTime<Utc>>,
            /// When the task was created (UTC, microsecond precision).
            pub created_at: DateTime<Utc>,
            /// When the task last changed (UTC, microsecond precision).
            pub updated_at: DateTime<Utc>,
            /// When the task became completed, `None` while it is pending: set by the write that
            /// completes it, kept while it stays completed, cleared when it is reopened. Read-only.
            #[serde(default)]
            pub completed_at: Option<DateTime<Utc>>,
            /// The task's tags, in the order given, each spelled as first given (see [`Tags`]).
            #[serde(default)]
            pub tags: Vec<String>,
            /// The task's recurrence rule in its canonical form ([`Recurrence`]), if it repeats.
            #[serde(default)]
            pub recurrence: Option<String>,
            $(
                $(#[doc = $rustdoc])*
                #[serde(default)]
                pub $name: Option<$stored>,
            )*
            /// Starts at 1 and grows by one on every write; backs ETags and optimistic concurrency.
            pub version: i64,
        }

        /// A validated new task.
        #[derive(Debug, Clone, PartialEq, Eq)]
        pub struct NewTask {
            /// The title.
            pub title: Title,
            /// The description, if any.
            pub description: Option<Description>,
            /// The priority (`medium` by default).
            pub priority: Priority,
            /// The due date, if any (stored at microsecond precision).
            pub due_date: Option<DateTime<Utc>>,
            /// The tags (none by default).
            pub tags: Tags,
            /// How the task repeats, if it does; it needs a `due_date`.
            pub recurrence: Option<Recurrence>,
            $(
                $(#[doc = $rustdoc])*
                pub $name: Option<$input>,
            )*
        }

        impl NewTask {
            /// A medium-priority task with this title and nothing else.
            pub fn new(title: Title) -> Self {
                Self {
                    title,
                    description: None,
                    priority: Priority::default(),
                    due_date: None,
                    tags: Tags::default(),
                    recurrence: None,
                    $($name: None,)*
                }
            }
        }

        /// A full replacement of a task's editable fields (PUT semantics): every field is set.
        #[derive(Debug, Clone, PartialEq, Eq)]
        pub struct Replacement {
            /// The new title.
            pub title: Title,
            /// The new description (`None` clears it).
            pub description: Option<Description>,
            /// The new completion state.
            pub completed: bool,
            /// The new priority.
            pub priority: Priority,
            /// The new due date (`None` clears it).
            pub due_date: Option<DateTime<Utc>>,
            /// The new tags (empty clears them).
            pub tags: Tags,
            /// The new recurrence rule (`None` clears it).
            pub recurrence: Option<Recurrence>,
            $(
                $(#[doc = $rustdoc])*
                /// `None` clears it.
                pub $name: Option<$input>,
            )*
        }

        impl Replacement {
            /// A pending, medium-priority task with this title and nothing else.
            pub fn new(title: Title) -> Self {
                Self {
                    title,
                    description: None,
                    completed: false,
                    priority: Priority::default(),
                    due_date: None,
                    tags: Tags::default(),
                    recurrence: None,
                    $($name: None,)*
                }
            }
        }

        /// A partial update: `None` leaves a field unchanged; for the optional fields, `Some(None)`
        /// clears.
        #[derive(Debug, Clone, Default, PartialEq, Eq)]
        pub struct TaskPatch {
            /// A new title, or unchanged.
            pub title: Option<Title>,
            /// A new description, `Some(None)` to clear, or unchanged.
            pub description: Option<Option<Description>>,
            /// A new completion state, or unchanged.
            pub completed: Option<bool>,
            /// A new priority, or unchanged.
            pub priority: Option<Priority>,
            /// A new due date, `Some(None)` to clear, or unchanged.
            pub due_date: Option<Option<DateTime<Utc>>>,
            /// New tags, replacing all of them, or unchanged.
            pub tags: Option<Tags>,
            /// A new recurrence rule, `Some(None)` to clear, or unchanged.
            pub recurrence: Option<Option<Recurrence>>,
            $(
                $(#[doc = $rustdoc])*
                /// `Some(None)` clears it; `None` leaves it unchanged.
                pub $name: Option<Option<$input>>,
            )*
        }

        impl From<Replacement> for TaskPatch {
            fn from(r: Replacement) -> Self {
                Self {
                    title: Some(r.title),
                    description: Some(r.description),
                    completed: Some(r.completed),
                    priority: Some(r.priority),
                    due_date: Some(r.due_date),
                    tags: Some(r.tags),
                    recurrence: Some(r.recurrence),
                    $($name: Some(r.$name),)*
                }
            }
        }

        /// The plain fields ([`crate::fields`]), in the order they are stored, written and
        /// documented.
        pub static FIELDS: &[Field] = &[$(
            Field {
                name: stringify!($name),
                kind: <$stored as Stored>::KIND,
                doc: $doc,
                rules: <$input as Input>::RULES,
                fingerprint: $fingerprint,
                get: |t| <$stored as Stored>::as_value(t.$name.as_ref()),
                set: |t, v| {
                    t.$name = <$stored as Stored>::from_value(v)?;
                    Some(())
                },
                new_value: |t| {
                    let stored = t.$name.as_ref().map(|v| v.stored(stringify!($name))).transpose()?;
                    Ok(<$stored as Stored>::into_value(stored))
                },
                set_new: |t, raw| {
                    t.$name = raw.map(|r| <$input as Input>::parse(stringify!($name), r)).transpose()?;
                    Ok(())
                },
                check: |raw| <$input as Input>::parse(stringify!($name), raw).map(|_| ()),
                change: |p| match &p.$name {
                    None => Ok(None),
                    Some(v) => {
                        let stored = v.as_ref().map(|v| v.stored(stringify!($name))).transpose()?;
                        Ok(Some(<$stored as Stored>::into_value(stored)))
                    }
                },
                set_change: |p, raw| {
                    p.$name = Some(raw.map(|r| <$input as Input>::parse(stringify!($name), r)).transpose()?);
                    Ok(())
                },
                next: |t, step| <$stored as Stored>::into_value($next(&t.$name, step)),
            },
        )*];
    };
}

// The plain fields, one entry each ([`crate::fields`]): the doc comment, the name, the stored
// type `as` the input type (`fields::Bounded<MIN, MAX>` for an integer with a range), the byte
// that marks it in an idempotency fingerprint (never reused), what a recurring task's next
// occurrence gets (`fields::keep`, or `fields::shift_with_due` for an instant), and its
// description in the contract. A new one also needs its column in both migrations;
// `docs/architecture.md` has the checklist.
task_types! {
    /// When the owner wants to be reminded, if at all (UTC, microsecond precision).
    remind_at: DateTime<Utc> as DateTime<Utc>,
        fingerprint 3,
        next fields::shift_with_due,
        doc "When to remind the owner (RFC 3339, UTC)";
}

impl TaskPatch {
    /// True when the patch changes nothing (it still bumps the version when applied).
    pub fn is_empty(&self) -> bool {
        self == &Self::default()
    }
}

/// A task's priority. Sorting by priority orders `low < medium < high`.
#[derive(
    Debug, Clone, Copy, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize,
)]
#[serde(rename_all = "lowercase")]
pub enum Priority {
    /// Low priority.
    Low,
    /// Medium priority (the default).
    #[default]
    Medium,
    /// High priority.
    High,
}

impl Priority {
    /// Parses `low`, `medium` or `high` (case-insensitive, surrounding whitespace ignored).
    pub fn parse(raw: &str) -> Result<Self, ValidationError> {
        match raw.trim().to_ascii_lowercase().as_str() {
            "low" => Ok(Self::Low),
            "medium" => Ok(Self::Medium),
            "high" => Ok(Self::High),
            _ => Err(ValidationError::field(
                "priority",
                "must be one of: low, medium, high",
            )),
        }
    }

    /// The lowercase name used in JSON.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Low => "low",
            Self::Medium => "medium",
            Self::High => "high",
        }
    }

    /// The rank stored in the database (`0`, `1`, `2`); it is what priority sorting orders by.
    pub fn rank(self) -> i16 {
        match self {
            Self::Low => 0,
            Self::Medium => 1,
            Self::High => 2,
        }
    }

    /// The inverse of [`Priority::rank`]; `None` for a rank no version of the schema writes.
    pub fn from_rank(rank: i16) -> Option<Self> {
        match rank {
            0 => Some(Self::Low),
            1 => Some(Self::Medium),
            2 => Some(Self::High),
            _ => None,
        }
    }
}

impl fmt::Display for Priority {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

fn char_len_between(
    field: &'static str,
    value: &str,
    min: usize,
    max: usize,
) -> Result<(), ValidationError> {
    let n = value.chars().count();
    if n < min {
        let what = if min == 1 {
            "must not be empty".to_owned()
        } else {
            format!("must be at least {min} characters")
        };
        return Err(ValidationError::field(field, what));
    }
    if n > max {
        return Err(ValidationError::field(
            field,
            format!("must be at most {max} characters (got {n})"),
        ));
    }
    Ok(())
}

fn no_nul(field: &'static str, value: &str) -> Result<(), ValidationError> {
    if value.contains('\0') {
        return Err(ValidationError::field(
            field,
            "must not contain NUL characters",
        ));
    }
    Ok(())
}

/// Earliest due date accepted (both backends store it; PostgreSQL stops at 4713 BC).
pub const DUE_DATE_MIN_YEAR: i32 = 1;
/// Latest due date accepted.
pub const DUE_DATE_MAX_YEAR: i32 = 9999;

/// Checks that a due date lies in years 1 to 9999 (what RFC 3339 can express and every backend
/// stores) and rounds it to the stored microsecond precision.
pub fn check_due_date(d: DateTime<Utc>) -> Result<DateTime<Utc>, ValidationError> {
    check_instant("due_date", d)
}

/// Checks that the instant given for `field` lies in years 1 to 9999 (what RFC 3339 can express
/// and every backend stores) and rounds it to the stored microsecond precision.
pub fn check_instant(
    field: &'static str,
    d: DateTime<Utc>,
) -> Result<DateTime<Utc>, ValidationError> {
    use chrono::Datelike;
    if (DUE_DATE_MIN_YEAR..=DUE_DATE_MAX_YEAR).contains(&d.year()) {
        Ok(to_stored_precision(d))
    } else {
        Err(ValidationError::field(
            field,
            "must be between the years 1 and 9999",
        ))
    }
}

/// Characters that draw nothing and are not of category Cf (which a tag may not contain at
/// all): the other `Default_Ignorable_Code_Point`s of Unicode's DerivedCoreProperties.txt
/// (the combining grapheme joiner U+034F, the Hangul fillers U+115F, U+1160, U+3164 and U+FFA0,
/// the Khmer inherent vowels U+17B4..U+17B5, the Mongolian free variation selectors
/// U+180B..U+180D and U+180F, the variation selectors U+FE00..U+FE0F and U+E0100..U+E01EF, and
/// the ranges reserved as ignorable: U+2065, U+FFF0..U+FFF8, U+E0000..U+E0FFF), and U+2800
/// BRAILLE PATTERN BLANK, which renders as a blank. Inside a visible name they are harmless
/// (an emoji's U+FE0F); a name made only of them, and spaces, cannot be seen.
const INVISIBLE: [(char, char); 12] = [
    ('\u{034F}', '\u{034F}'),
    ('\u{115F}', '\u{1160}'),
    ('\u{17B4}', '\u{17B5}'),
    ('\u{180B}', '\u{180D}'),
    ('\u{180F}', '\u{180F}'),
    ('\u{2065}', '\u{2065}'),
    ('\u{2800}', '\u{2800}'),
    ('\u{3164}', '\u{3164}'),
    ('\u{FE00}', '\u{FE0F}'),
    ('\u{FFA0}', '\u{FFA0}'),
    ('\u{FFF0}', '\u{FFF8}'),
    ('\u{E0000}', '\u{E0FFF}'),
];

/// Whether `c` draws nothing on its own ([`INVISIBLE`], or white space).
fn is_invisible(c: char) -> bool {
    c.is_whitespace()
        || INVISIBLE
            .iter()
            .any(|(from, to)| (*from..=*to).contains(&c))
}

/// A valid tag: trimmed, 1 to 50 Unicode characters, no control characters, no format
/// characters (general category Cf: zero-width spaces and joiners, byte order marks,
/// bidirectional overrides and isolates, soft hyphens, tag characters), and at least one
/// character that can be seen. Two tags that look the same are then the same tag, and a tag
/// cannot reverse what follows it in a list.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Tag(String);

impl Tag {
    /// Trims `raw` and checks it; the error names `field` (`tags` in a task, `tag` in a filter,
    /// `name` in a rename) and says why.
    pub fn parse_for(field: &'static str, raw: &str) -> Result<Self, ValidationError> {
        use unicode_properties::{GeneralCategory, UnicodeGeneralCategory};
        let tag = Self::parse_stored(field, raw)?;
        if let Some(c) = tag
            .0
            .chars()
            .find(|c| c.general_category() == GeneralCategory::Format)
        {
            return Err(ValidationError::field(
                field,
                format!(
                    "must not contain invisible formatting characters (U+{:04X})",
                    u32::from(c)
                ),
            ));
        }
        if tag.0.chars().all(is_invisible) {
            return Err(ValidationError::field(
                field,
                "must contain a visible character",
            ));
        }
        Ok(tag)
    }

    /// Trims `raw` and checks it only as tags were checked when they were first stored (1 to 50
    /// characters, no control characters): for naming a tag that may already be stored (the
    /// tag a rename or delete acts on, a filter), so a tag written before the format and
    /// visibility rules can still be found, renamed and removed. Never for a name to write.
    pub fn parse_stored(field: &'static str, raw: &str) -> Result<Self, ValidationError> {
        let trimmed = raw.trim();
        char_len_between(field, trimmed, 1, TAG_MAX_CHARS)?;
        if trimmed.chars().any(char::is_control) {
            return Err(ValidationError::field(
                field,
                "must not contain control characters",
            ));
        }
        Ok(Self(trimmed.to_owned()))
    }

    /// [`Tag::parse_for`] the `tags` field.
    pub fn parse(raw: &str) -> Result<Self, ValidationError> {
        Self::parse_for("tags", raw)
    }

    /// The tag as spelled.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The key tags are compared by: the tag with its case folded ([`fold_case`]), so `Work`
    /// and `work` are one tag.
    pub fn key(&self) -> String {
        fold_case(&self.0)
    }
}

/// A task's tags: at most 20 [`Tag`]s, in the order given; tags that differ only in case are
/// one tag, spelled as it first appeared.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Tags(Vec<Tag>);

impl Tags {
    /// Checks every tag in `raw`, keeping the first spelling of each; the error names `tags`.
    pub fn parse<'a>(raw: impl IntoIterator<Item = &'a str>) -> Result<Self, ValidationError> {
        let mut tags = Vec::new();
        for tag in raw {
            tags.push(Tag::parse(tag)?);
        }
        Self::new(tags)
    }

    /// `tags` without case-insensitive repeats (the first spelling stays); more than 20
    /// different tags are an error naming `tags`.
    pub fn new(tags: Vec<Tag>) -> Result<Self, ValidationError> {
        let mut kept: Vec<Tag> = Vec::with_capacity(tags.len().min(TAGS_MAX));
        let mut keys: Vec<String> = Vec::with_capacity(kept.capacity());
        for tag in tags {
            let key = tag.key();
            if keys.contains(&key) {
                continue;
            }
            if kept.len() == TAGS_MAX {
                return Err(ValidationError::field(
                    "tags",
                    format!("must hold at most {TAGS_MAX} tags"),
                ));
            }
            keys.push(key);
            kept.push(tag);
        }
        Ok(Self(kept))
    }

    /// The tags, in order.
    pub fn as_slice(&self) -> &[Tag] {
        &self.0
    }

    /// Whether there are none.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// The tags as spelled, in order.
    pub fn names(&self) -> Vec<String> {
        self.0.iter().map(|t| t.0.clone()).collect()
    }

    /// The tags' keys ([`Tag::key`]), in order.
    pub fn keys(&self) -> Vec<String> {
        self.0.iter().map(Tag::key).collect()
    }
}

/// A valid task title: trimmed, 1 to 200 Unicode characters.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Title(String);

impl Title {
    /// Trims `raw` and checks its length in characters; whitespace-only is invalid.
    pub fn parse(raw: &str) -> Result<Self, ValidationError> {
        let trimmed = raw.trim();
        char_len_between("title", trimmed, 1, TITLE_MAX_CHARS)?;
        no_nul("title", trimmed)?;
        Ok(Self(trimmed.to_owned()))
    }

    /// The title text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// A valid task description: at most 1000 Unicode characters, kept as given.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Description(String);

impl Description {
    /// Checks the length of `raw` in characters.
    pub fn parse(raw: &str) -> Result<Self, ValidationError> {
        char_len_between("description", raw, 0, DESCRIPTION_MAX_CHARS)?;
        no_nul("description", raw)?;
        Ok(Self(raw.to_owned()))
    }

    /// The description text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// A valid user id: 1 to 255 Unicode characters, no control characters.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct UserId(String);

impl UserId {
    /// Checks `raw`; it is used exactly as given (user ids are opaque, so no trimming).
    pub fn parse(raw: &str) -> Result<Self, ValidationError> {
        char_len_between("user_id", raw, 1, USER_ID_MAX_CHARS)?;
        if raw.chars().any(char::is_control) {
            return Err(ValidationError::field(
                "user_id",
                "must not contain control characters",
            ));
        }
        Ok(Self(raw.to_owned()))
    }

    /// The user id text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for UserId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// A client-chosen key that makes a create safe to retry: 1 to 255 visible ASCII characters.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct IdempotencyKey(String);

impl IdempotencyKey {
    /// Checks `raw`: non-empty, at most 255 characters, printable ASCII only.
    pub fn parse(raw: &str) -> Result<Self, ValidationError> {
        char_len_between("idempotency_key", raw, 1, IDEMPOTENCY_KEY_MAX_CHARS)?;
        if !raw.bytes().all(|b| b.is_ascii_graphic()) {
            return Err(ValidationError::field(
                "idempotency_key",
                "must be printable ASCII without spaces",
            ));
        }
        Ok(Self(raw.to_owned()))
    }

    /// The key text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// Rounds a timestamp to the microsecond precision both backends store.
pub fn to_stored_precision(t: DateTime<Utc>) -> DateTime<Utc> {
    t.trunc_subsecs(6)
}

/// The current time at stored precision.
pub(crate) fn now() -> DateTime<Utc> {
    to_stored_precision(Utc::now())
}

impl NewTask {
    /// Parses raw fields, collecting every invalid field into one error.
    pub fn parse(
        title: &str,
        description: Option<&str>,
        priority: Option<&str>,
        due_date: Option<DateTime<Utc>>,
    ) -> Result<Self, ValidationError> {
        let mut errors = ValidationError::default();
        let title = errors.collect(Title::parse(title));
        let description = errors.collect(description.map(Description::parse).transpose());
        let priority = errors.collect(priority.map(Priority::parse).transpose());
        let due_date = errors.collect(due_date.map(check_due_date).transpose());
        errors.into_result()?;
        match (title, description, priority, due_date) {
            (Some(title), Some(description), Some(priority), Some(due_date)) => Ok(Self {
                description,
                priority: priority.unwrap_or_default(),
                due_date,
                ..Self::new(title)
            }),
            _ => Err(ValidationError::field("title", "is invalid")),
        }
    }

    /// A stable fingerprint of the request, used to tell an idempotent retry from a different
    /// request reusing the same key. Fields added after the first release add bytes only when
    /// set, so a request without them keeps the fingerprint it had (keys outlive upgrades).
    pub(crate) fn fingerprint(&self) -> String {
        use sha2::{Digest, Sha256};
        // Exhaustive on purpose: a new field written by hand does not compile until it is
        // fingerprinted here; the plain fields ([`FIELDS`]) are, each under its own byte.
        let NewTask {
            title,
            description,
            priority,
            due_date,
            tags,
            recurrence,
            ..
        } = self;
        let mut h = Sha256::new();
        h.update(title.as_str().as_bytes());
        h.update([0]);
        match description {
            Some(d) => {
                h.update([1]);
                h.update(d.as_str().as_bytes());
            }
            None => h.update([0]),
        }
        h.update([0, priority.rank() as u8]);
        match *due_date {
            Some(d) => {
                h.update([1]);
                h.update(to_stored_precision(d).timestamp_micros().to_le_bytes());
            }
            None => h.update([0]),
        }
        if !tags.is_empty() {
            // Each tag is followed by a 0 byte, which no tag contains.
            h.update([2]);
            for tag in tags.as_slice() {
                h.update(tag.as_str().as_bytes());
                h.update([0]);
            }
        }
        // In the order of their bytes: the plain fields below recurrence's 4 came before it.
        let plain = |h: &mut Sha256, below: bool| {
            for f in FIELDS.iter().filter(|f| (f.fingerprint < 4) == below) {
                if let Some(bytes) = f.new_value(self).ok().as_ref().and_then(fingerprint_bytes) {
                    h.update([f.fingerprint]);
                    h.update(bytes);
                }
            }
        };
        plain(&mut h, true);
        if let Some(rule) = recurrence {
            h.update([4]);
            h.update(rule.to_string().as_bytes());
        }
        plain(&mut h, false);
        let digest = h.finalize();
        digest.iter().map(|b| format!("{b:02x}")).collect()
    }
}

/// Which tasks a list returns.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum StatusFilter {
    /// Every task (the default).
    #[default]
    All,
    /// Tasks not completed.
    Pending,
    /// Completed tasks.
    Completed,
}

impl StatusFilter {
    /// Parses `all`, `pending` or `completed`.
    pub fn parse(raw: &str) -> Result<Self, ValidationError> {
        match raw.trim().to_ascii_lowercase().as_str() {
            "all" => Ok(Self::All),
            "pending" => Ok(Self::Pending),
            "completed" => Ok(Self::Completed),
            _ => Err(ValidationError::field(
                "status",
                "must be one of: all, pending, completed",
            )),
        }
    }
}

/// What a list is sorted by. Ties are always broken by task id in the same direction.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SortField {
    /// Creation time (the default).
    #[default]
    Created,
    /// Last update time.
    Updated,
    /// Title, case-insensitively.
    Title,
    /// Due date; tasks without one come last in either order.
    DueDate,
    /// Priority (`low < medium < high`).
    Priority,
}

impl SortField {
    /// Every word [`SortField::parse`] reads (in any case), with what it means.
    pub const WORDS: [(&'static str, Self); 8] = [
        ("created", Self::Created),
        ("updated", Self::Updated),
        ("title", Self::Title),
        ("due_date", Self::DueDate),
        ("priority", Self::Priority),
        ("created_at", Self::Created),
        ("updated_at", Self::Updated),
        ("due", Self::DueDate),
    ];

    /// Parses `created`, `updated`, `title`, `due_date` or `priority` (also `created_at`,
    /// `updated_at`, `due`): [`SortField::WORDS`].
    pub fn parse(raw: &str) -> Result<Self, ValidationError> {
        word(&Self::WORDS, raw).ok_or_else(|| {
            ValidationError::field(
                "sort",
                "must be one of: created, updated, title, due_date, priority",
            )
        })
    }
}

/// The meaning of `raw` (trimmed, in any case) among `words`.
fn word<T: Copy>(words: &[(&str, T)], raw: &str) -> Option<T> {
    let raw = raw.trim();
    words
        .iter()
        .find(|(w, _)| w.eq_ignore_ascii_case(raw))
        .map(|(_, v)| *v)
}

/// Sort direction.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SortOrder {
    /// Ascending.
    Asc,
    /// Descending (the default: newest first).
    #[default]
    Desc,
}

impl SortOrder {
    /// Every word [`SortOrder::parse`] reads (in any case), with what it means.
    pub const WORDS: [(&'static str, Self); 2] = [("asc", Self::Asc), ("desc", Self::Desc)];

    /// Parses `asc` or `desc`.
    pub fn parse(raw: &str) -> Result<Self, ValidationError> {
        word(&Self::WORDS, raw)
            .ok_or_else(|| ValidationError::field("order", "must be one of: asc, desc"))
    }
}

/// A page size between 1 and 1000 (default 100).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Limit(u32);

impl Limit {
    /// Largest page.
    pub const MAX: u32 = 1000;
    /// Default page.
    pub const DEFAULT: u32 = 100;

    /// Checks `1 <= n <= 1000`.
    pub fn new(n: i64) -> Result<Self, ValidationError> {
        if (1..=i64::from(Self::MAX)).contains(&n) {
            Ok(Self(n as u32))
        } else {
            Err(ValidationError::field(
                "limit",
                format!("must be between 1 and {}", Self::MAX),
            ))
        }
    }

    /// The page size.
    pub fn get(self) -> u32 {
        self.0
    }
}

impl Default for Limit {
    fn default() -> Self {
        Self(Self::DEFAULT)
    }
}

/// How many matching tasks a page skips before its first, 0 to 10,000 (default 0): offset
/// paging for "load more" clients. A cursor continues a walk exactly under concurrent writes;
/// an offset does not (a task created or deleted before the offset shifts the pages), and it
/// reads every task it skips, so it is bounded and counts as a scan.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash)]
pub struct Offset(u32);

impl Offset {
    /// Largest offset.
    pub const MAX: u32 = 10_000;

    /// Checks `0 <= n <= 10000`.
    pub fn new(n: i64) -> Result<Self, ValidationError> {
        if (0..=i64::from(Self::MAX)).contains(&n) {
            Ok(Self(n as u32))
        } else {
            Err(ValidationError::field(
                "offset",
                format!("must be between 0 and {}", Self::MAX),
            ))
        }
    }

    /// The number of tasks skipped.
    pub fn get(self) -> u32 {
        self.0
    }
}

/// A lowercased, non-empty search string of at most 200 characters.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct SearchText(String);

impl SearchText {
    /// Lowercases `raw`; `Ok(None)` when it is empty (no search).
    pub fn parse(raw: &str) -> Result<Option<Self>, ValidationError> {
        if raw.is_empty() {
            return Ok(None);
        }
        char_len_between("q", raw, 1, SEARCH_MAX_CHARS)?;
        no_nul("q", raw)?;
        Ok(Some(Self(fold_case(raw))))
    }

    /// The lowercased text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// The case folding used for search and title sorting, identical on every backend.
pub fn fold_case(s: &str) -> String {
    s.to_lowercase()
}

/// A list request. Build it with `ListQuery::default()` and set what you need.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ListQuery {
    /// Which tasks.
    pub status: StatusFilter,
    /// Case-insensitive substring of the title or description.
    pub search: Option<SearchText>,
    /// Sort key.
    pub sort: SortField,
    /// Sort direction.
    pub order: SortOrder,
    /// Page size.
    pub limit: Limit,
    /// The `next_cursor` of the previous page, to continue from it.
    pub cursor: Option<String>,
    /// Tasks to skip before the page (offset paging); not together with a cursor.
    pub offset: Offset,
    /// Only tasks carrying every one of these tags, compared by [`Tag::key`] (at most 20).
    pub tags: Vec<Tag>,
    /// Only tasks with any of these priorities; empty: any priority.
    pub priorities: Vec<Priority>,
    /// Only tasks due at or after this instant.
    pub due_after: Option<DateTime<Utc>>,
    /// Only tasks due before this instant.
    pub due_before: Option<DateTime<Utc>>,
    /// Only overdue tasks: not completed, and due before the time of the list.
    pub overdue: bool,
}

/// One page of a list.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Page {
    /// The tasks, in the requested order.
    pub tasks: Vec<Task>,
    /// Present when more tasks follow; pass it as [`ListQuery::cursor`] for the next page.
    pub next_cursor: Option<String>,
}

/// The outcome of a create.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Created {
    /// The task.
    pub task: Task,
    /// `true` when an earlier create with the same idempotency key made this task and nothing new
    /// was created now.
    pub replayed: bool,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn title_is_trimmed_and_counted_in_characters_not_bytes() {
        assert_eq!(Title::parse("  hi  ").map(|t| t.0), Ok("hi".to_owned()));
        assert!(Title::parse(&"é".repeat(200)).is_ok());
        assert!(Title::parse(&"é".repeat(201)).is_err());
        assert!(Title::parse(" \t\n ").is_err());
        assert!(Title::parse("").is_err());
    }

    #[test]
    fn description_allows_1000_characters_and_not_1001() {
        assert!(Description::parse(&"字".repeat(1000)).is_ok());
        let err = Description::parse(&"字".repeat(1001)).unwrap_err();
        assert_eq!(err.errors[0].field, "description");
    }

    #[test]
    fn user_id_is_1_to_255_characters() {
        assert!(UserId::parse("").is_err());
        assert!(UserId::parse(&"u".repeat(255)).is_ok());
        assert!(UserId::parse(&"u".repeat(256)).is_err());
        assert!(UserId::parse("a\u{0}b").is_err());
    }

    #[test]
    fn new_task_parse_reports_every_bad_field() {
        let err = NewTask::parse("", Some(&"x".repeat(1001)), Some("urgent"), None).unwrap_err();
        let fields: Vec<_> = err.errors.iter().map(|e| e.field.as_str()).collect();
        assert_eq!(fields, ["title", "description", "priority"]);
    }

    #[test]
    fn nul_characters_and_out_of_range_due_dates_are_rejected() {
        assert!(Title::parse("a\u{0}b").is_err());
        assert!(Description::parse("a\u{0}").is_err());
        assert!(SearchText::parse("\u{0}").is_err());
        let ancient = DateTime::from_timestamp(-300_000_000_000, 0).unwrap();
        assert_eq!(
            check_due_date(ancient).unwrap_err().errors[0].field,
            "due_date"
        );
        let now = Utc::now();
        assert_eq!(check_due_date(now), Ok(to_stored_precision(now)));
    }

    #[test]
    fn limit_bounds() {
        assert!(Limit::new(0).is_err());
        assert!(Limit::new(1001).is_err());
        assert_eq!(Limit::new(1000).map(Limit::get), Ok(1000));
        assert_eq!(Limit::default().get(), 100);
    }

    #[test]
    fn fingerprint_differs_when_any_field_differs() {
        let a = NewTask::parse("a", None, None, None).unwrap();
        let mut b = a.clone();
        b.priority = Priority::High;
        let mut c = a.clone();
        c.description = Some(Description::parse("").unwrap());
        assert_ne!(a.fingerprint(), b.fingerprint());
        assert_ne!(a.fingerprint(), c.fingerprint());
        assert_eq!(a.fingerprint(), a.clone().fingerprint());
    }

    /// Stored idempotency keys outlive an upgrade (for their TTL), so the fingerprint of a
    /// request must not change between versions: a retry across an upgrade would be refused.
    #[test]
    fn fingerprint_is_stable_across_versions() {
        let a = NewTask::parse("a", None, None, None).unwrap();
        assert_eq!(
            a.fingerprint(),
            "c62ad9bc48f8af4cf9d506900a878ff266bb3c8f5a83dc08c83cbe6b416c9657"
        );
        let due = DateTime::parse_from_rfc3339("2030-01-02T03:04:05.123456Z").unwrap();
        let b = NewTask::parse(
            "Buy milk",
            Some("2 litres"),
            Some("high"),
            Some(due.with_timezone(&Utc)),
        )
        .unwrap();
        assert_eq!(
            b.fingerprint(),
            "bcde744584501b9f9df820b201c742da53dda0c88d623bbb89e9b6952bb20de7"
        );
    }

    #[test]
    fn a_tag_with_a_format_character_or_only_invisible_characters_is_refused_naming_why() {
        let formats = [
            "\u{200b}",
            "\u{feff}",
            "\u{202e}gpj.exe",
            "soft\u{00ad}hyphen",
            "\u{2066}isolate\u{2069}",
            "zero\u{200d}joiner",
            "tag\u{e0041}",
            "\u{180e}",
            "\u{061c}x",
        ];
        for raw in formats {
            let e = Tag::parse(raw).unwrap_err();
            assert_eq!(e.errors[0].field, "tags", "{raw:?}");
            assert!(
                e.errors[0]
                    .message
                    .contains("invisible formatting character"),
                "{raw:?}: {e}"
            );
        }
        let invisible = [
            "\u{3164}",
            "\u{115f}\u{1160}",
            "\u{ffa0}",
            "\u{2800}",
            "\u{034f}",
            "\u{fe0f}",
            "\u{3164} \u{2800}",
        ];
        for raw in invisible {
            let e = Tag::parse(raw).unwrap_err();
            assert_eq!(e.errors[0].field, "tags", "{raw:?}");
            assert!(
                e.errors[0].message.contains("visible character"),
                "{raw:?}: {e}"
            );
        }
        // The field named is the caller's; visible names with marks and selectors stay valid.
        assert_eq!(
            Tag::parse_for("name", "\u{200b}").unwrap_err().errors[0].field,
            "name"
        );
        for ok in [
            "work",
            "日本語",
            "cafe\u{0301}",
            "\u{2764}\u{fe0f}",
            "a\u{3164}b",
            "😀",
        ] {
            assert!(Tag::parse(ok).is_ok(), "{ok:?}");
        }
    }

    #[test]
    fn a_tag_stored_before_the_rules_can_still_be_named_but_not_written() {
        assert_eq!(
            Tag::parse_stored("name", " \u{200b} ").map(|t| t.as_str().to_owned()),
            Ok("\u{200b}".to_owned())
        );
        assert!(Tag::parse_stored("name", "a\u{0007}").is_err());
        assert!(Tag::parse_stored("name", &"x".repeat(51)).is_err());
        assert!(Tag::parse("\u{200b}").is_err());
    }
}
