//! A task's plain fields: the ones stored in one column each, set on create, changed or cleared
//! by an update, and written as one JSON key. They are declared once, one line each, in
//! `model.rs` (`task_types!`); that line gives the field on [`Task`], [`NewTask`],
//! [`Replacement`] and [`TaskPatch`], and one [`Field`] in [`FIELDS`]. Everything else reads
//! [`FIELDS`]: the statements' column lists and placeholders, their arguments on every driver,
//! the row decoders, the JSON writer and body parsers, the contract's schemas and the MCP
//! tools' schemas. Fields with rules of their own (the title's search key, tags, the priority's
//! rank, completion, the due date and recurrence) are written out by hand.

use std::fmt;

use chrono::{DateTime, Utc};

use crate::error::ValidationError;
use crate::model::{NewTask, Task, TaskPatch, check_instant};

/// How a plain field is stored and written.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Kind {
    /// A 64-bit integer (SQLite `integer`, PostgreSQL `bigint`, JSON number).
    Int,
    /// Text (SQLite `text`, PostgreSQL `text`, JSON string).
    Text,
    /// An instant, UTC, microsecond precision (SQLite `integer` microseconds since the epoch,
    /// PostgreSQL `timestamptz`, JSON RFC 3339 string).
    Instant,
}

/// A plain field's stored value, owned: what a statement binds. `None` is SQL `null`; the
/// variant keeps the column's type, which a typed `null` needs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Value {
    /// An integer column.
    Int(Option<i64>),
    /// A text column.
    Text(Option<String>),
    /// An instant column.
    Instant(Option<DateTime<Utc>>),
}

/// A plain field's stored value, borrowed from a [`Task`]: what the writers read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ValueRef<'a> {
    /// An integer column.
    Int(Option<i64>),
    /// A text column.
    Text(Option<&'a str>),
    /// An instant column.
    Instant(Option<DateTime<Utc>>),
}

impl Value {
    /// A `null` of `kind`'s column type.
    pub fn null(kind: Kind) -> Self {
        match kind {
            Kind::Int => Self::Int(None),
            Kind::Text => Self::Text(None),
            Kind::Instant => Self::Instant(None),
        }
    }
}

impl ValueRef<'_> {
    /// The owned value.
    pub fn to_owned_value(self) -> Value {
        match self {
            Self::Int(v) => Value::Int(v),
            Self::Text(v) => Value::Text(v.map(str::to_owned)),
            Self::Instant(v) => Value::Instant(v),
        }
    }
}

/// A value a client sent for a plain field, already read as its [`Kind`] (the server reads
/// JSON numbers, strings and its date formats): what [`Input::parse`] checks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Raw<'a> {
    /// For an [`Kind::Int`] field.
    Int(i64),
    /// For a [`Kind::Text`] field.
    Text(&'a str),
    /// For an [`Kind::Instant`] field.
    Instant(DateTime<Utc>),
}

/// A type a plain field is stored as, on [`Task`].
pub trait Stored: Clone + Sized {
    /// The column's kind.
    const KIND: Kind;
    /// `v` as a borrowed value.
    fn as_value(v: Option<&Self>) -> ValueRef<'_>;
    /// `v` as an owned value.
    fn into_value(v: Option<Self>) -> Value;
    /// The stored value from a decoded column; `None` when `v` is of another kind.
    fn from_value(v: Value) -> Option<Option<Self>>;
}

impl Stored for i64 {
    const KIND: Kind = Kind::Int;
    fn as_value(v: Option<&Self>) -> ValueRef<'_> {
        ValueRef::Int(v.copied())
    }
    fn into_value(v: Option<Self>) -> Value {
        Value::Int(v)
    }
    fn from_value(v: Value) -> Option<Option<Self>> {
        match v {
            Value::Int(v) => Some(v),
            _ => None,
        }
    }
}

impl Stored for String {
    const KIND: Kind = Kind::Text;
    fn as_value(v: Option<&Self>) -> ValueRef<'_> {
        ValueRef::Text(v.map(String::as_str))
    }
    fn into_value(v: Option<Self>) -> Value {
        Value::Text(v)
    }
    fn from_value(v: Value) -> Option<Option<Self>> {
        match v {
            Value::Text(v) => Some(v),
            _ => None,
        }
    }
}

impl Stored for DateTime<Utc> {
    const KIND: Kind = Kind::Instant;
    fn as_value(v: Option<&Self>) -> ValueRef<'_> {
        ValueRef::Instant(v.copied())
    }
    fn into_value(v: Option<Self>) -> Value {
        Value::Instant(v)
    }
    fn from_value(v: Value) -> Option<Option<Self>> {
        match v {
            Value::Instant(v) => Some(v),
            _ => None,
        }
    }
}

/// The rules a client's value for a field meets, as the contract documents them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Rules {
    /// The least integer allowed.
    pub minimum: Option<i64>,
    /// The greatest integer allowed.
    pub maximum: Option<i64>,
    /// The most characters a text may have.
    pub max_chars: Option<usize>,
}

/// A type a plain field is given as, on [`NewTask`], [`Replacement`](crate::Replacement) and
/// [`TaskPatch`]: a validated value.
pub trait Input: Clone + Sized {
    /// What it is stored as.
    type Stored: Stored;
    /// Its rules, for the contract.
    const RULES: Rules;
    /// Checks a client's value for `field`.
    fn parse(field: &'static str, raw: Raw<'_>) -> Result<Self, ValidationError>;
    /// The stored value, checked again: a library caller can build any value of the type.
    fn stored(&self, field: &'static str) -> Result<Self::Stored, ValidationError>;
}

/// The error for a value of the wrong kind.
fn wrong_kind(field: &'static str, kind: Kind) -> ValidationError {
    ValidationError::field(
        field,
        match kind {
            Kind::Int => "must be an integer",
            Kind::Text => "must be a string",
            Kind::Instant => "must be a date-time",
        },
    )
}

impl Input for DateTime<Utc> {
    type Stored = Self;
    const RULES: Rules = Rules {
        minimum: None,
        maximum: None,
        max_chars: None,
    };
    fn parse(field: &'static str, raw: Raw<'_>) -> Result<Self, ValidationError> {
        match raw {
            Raw::Instant(t) => check_instant(field, t),
            _ => Err(wrong_kind(field, Kind::Instant)),
        }
    }
    fn stored(&self, field: &'static str) -> Result<Self, ValidationError> {
        check_instant(field, *self)
    }
}

/// An integer from `MIN` to `MAX`, both included: the input type of an integer field with a
/// range, which the contract documents and a value outside answers 422.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Bounded<const MIN: i64, const MAX: i64>(i64);

impl<const MIN: i64, const MAX: i64> Bounded<MIN, MAX> {
    /// `n` if it lies in the range.
    pub fn new(n: i64) -> Option<Self> {
        (MIN..=MAX).contains(&n).then_some(Self(n))
    }

    /// The integer.
    pub fn get(self) -> i64 {
        self.0
    }
}

impl<const MIN: i64, const MAX: i64> Input for Bounded<MIN, MAX> {
    type Stored = i64;
    const RULES: Rules = Rules {
        minimum: Some(MIN),
        maximum: Some(MAX),
        max_chars: None,
    };
    fn parse(field: &'static str, raw: Raw<'_>) -> Result<Self, ValidationError> {
        match raw {
            Raw::Int(n) => Self::new(n).ok_or_else(|| out_of_range(field, MIN, MAX)),
            _ => Err(wrong_kind(field, Kind::Int)),
        }
    }
    fn stored(&self, field: &'static str) -> Result<i64, ValidationError> {
        Self::new(self.0)
            .map(Self::get)
            .ok_or_else(|| out_of_range(field, MIN, MAX))
    }
}

fn out_of_range(field: &'static str, min: i64, max: i64) -> ValidationError {
    ValidationError::field(field, format!("must be between {min} and {max}"))
}

/// Where a repeating task's next occurrence falls: what a field's `next` rule reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Step {
    /// The completed occurrence's due date.
    pub due: DateTime<Utc>,
    /// The next occurrence's due date.
    pub next: DateTime<Utc>,
}

/// The `next` rule of a field the next occurrence copies as it is.
pub fn keep<T: Clone>(value: &Option<T>, _: &Step) -> Option<T> {
    value.clone()
}

/// The `next` rule of an instant that moves with the due date (a reminder): shifted by as much
/// as the due date moves; dropped if that leaves years 1 to 9999.
pub fn shift_with_due(value: &Option<DateTime<Utc>>, step: &Step) -> Option<DateTime<Utc>> {
    value
        .and_then(|t| t.checked_add_signed(step.next - step.due))
        .and_then(|t| check_instant("", t).ok())
}

/// One plain field, as every layer reads it. The accessors are generated with the field's
/// declaration, so they cannot name another field.
pub struct Field {
    /// The column's name, and the JSON key in the API's own spelling.
    pub name: &'static str,
    /// How it is stored and written.
    pub kind: Kind,
    /// What it is, for the contract and the MCP tools' schemas (one phrase, no final stop).
    pub doc: &'static str,
    /// The rules a client's value meets.
    pub rules: Rules,
    /// The byte that marks it in an idempotency fingerprint (fixed for ever once released).
    pub(crate) fingerprint: u8,
    pub(crate) get: fn(&Task) -> ValueRef<'_>,
    pub(crate) set: fn(&mut Task, Value) -> Option<()>,
    pub(crate) new_value: fn(&NewTask) -> Result<Value, ValidationError>,
    pub(crate) set_new: fn(&mut NewTask, Option<Raw<'_>>) -> Result<(), ValidationError>,
    pub(crate) check: fn(Raw<'_>) -> Result<(), ValidationError>,
    pub(crate) change: fn(&TaskPatch) -> Result<Option<Value>, ValidationError>,
    pub(crate) set_change: fn(&mut TaskPatch, Option<Raw<'_>>) -> Result<(), ValidationError>,
    pub(crate) next: fn(&Task, &Step) -> Value,
}

impl fmt::Debug for Field {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Field")
            .field("name", &self.name)
            .field("kind", &self.kind)
            .finish_non_exhaustive()
    }
}

impl Field {
    /// The field's value on `task`.
    pub fn get<'t>(&self, task: &'t Task) -> ValueRef<'t> {
        (self.get)(task)
    }

    /// Sets the field of `task` from a decoded column; `None` when `value` is of another kind.
    pub(crate) fn set(&self, task: &mut Task, value: Value) -> Option<()> {
        (self.set)(task, value)
    }

    /// The value `task` gives the field, checked, as it is stored.
    pub(crate) fn new_value(&self, task: &NewTask) -> Result<Value, ValidationError> {
        (self.new_value)(task)
    }

    /// Sets the field of a new task from a client's value (`None`: no value).
    pub fn set_new(&self, task: &mut NewTask, raw: Option<Raw<'_>>) -> Result<(), ValidationError> {
        (self.set_new)(task, raw)
    }

    /// Checks a client's value for the field, as [`Field::set_new`] would.
    pub fn check(&self, raw: Raw<'_>) -> Result<(), ValidationError> {
        (self.check)(raw)
    }

    /// What `patch` does to the field: `None` leaves it, `Some` stores the value (a `null` of
    /// the column's type clears it).
    pub(crate) fn change(&self, patch: &TaskPatch) -> Result<Option<Value>, ValidationError> {
        (self.change)(patch)
    }

    /// Makes `patch` set the field to a client's value (`None`: clear it).
    pub fn set_change(
        &self,
        patch: &mut TaskPatch,
        raw: Option<Raw<'_>>,
    ) -> Result<(), ValidationError> {
        (self.set_change)(patch, raw)
    }

    /// The value the next occurrence of the completed `task` gets.
    pub(crate) fn next(&self, task: &Task, step: &Step) -> Value {
        (self.next)(task, step)
    }
}

/// The bytes a value adds to an idempotency fingerprint when it is set.
pub(crate) fn fingerprint_bytes(value: &Value) -> Option<Vec<u8>> {
    match value {
        Value::Int(v) => v.map(|n| n.to_le_bytes().to_vec()),
        Value::Text(v) => v.as_ref().map(|s| s.as_bytes().to_vec()),
        Value::Instant(v) => v.map(|t| t.timestamp_micros().to_le_bytes().to_vec()),
    }
}

pub use crate::model::FIELDS;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_bounded_integer_refuses_values_outside_its_range_naming_the_field() {
        type Minutes = Bounded<0, 10>;
        assert_eq!(Minutes::parse("m", Raw::Int(10)).map(Bounded::get), Ok(10));
        let err = Minutes::parse("m", Raw::Int(11)).unwrap_err();
        assert_eq!(err.errors[0].field, "m");
        assert!(Minutes::parse("m", Raw::Text("1")).is_err());
    }

    #[test]
    fn every_field_reads_back_what_it_stores_and_has_a_distinct_fingerprint_byte() {
        let mut seen = std::collections::HashSet::new();
        for f in FIELDS.iter() {
            assert!(
                seen.insert(f.fingerprint),
                "{} reuses a fingerprint byte",
                f.name
            );
            // Recurrence's byte (4) and the ones below it are the fields written by hand.
            assert!(f.fingerprint != 4, "{} takes recurrence's byte", f.name);
            let mut task = Task::default();
            let value = f.get(&task).to_owned_value();
            assert_eq!(f.set(&mut task, value.clone()), Some(()));
            assert_eq!(f.get(&task).to_owned_value(), value);
        }
    }
}
