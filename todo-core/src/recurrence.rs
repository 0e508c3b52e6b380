//! Recurrence rules: the subset of iCalendar (RFC 5545) RRULEs a task may carry, and the next
//! occurrence of a series. The rule is parsed and checked here (so every unsupported part is a
//! validation error naming `recurrence`); the calendar arithmetic is the `rrule` crate's.

use std::fmt;

use chrono::{DateTime, NaiveDate, SubsecRound, Utc, Weekday};

use crate::error::ValidationError;
use crate::model::{DUE_DATE_MAX_YEAR, DUE_DATE_MIN_YEAR};

/// Largest `INTERVAL` accepted.
pub const RECURRENCE_MAX_INTERVAL: u32 = 1000;
/// Largest `COUNT` accepted.
pub const RECURRENCE_MAX_COUNT: u32 = 10_000;
/// Longest rule accepted, in characters.
pub const RECURRENCE_MAX_CHARS: usize = 500;

/// How often a series repeats.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Frequency {
    /// Every `INTERVAL` days.
    Daily,
    /// Every `INTERVAL` weeks (on the `BYDAY` weekdays, or the due date's).
    Weekly,
    /// Every `INTERVAL` months (on the `BYMONTHDAY` days, or the due date's).
    Monthly,
    /// Every `INTERVAL` years, on the due date's month and day.
    Yearly,
}

impl Frequency {
    fn as_str(self) -> &'static str {
        match self {
            Self::Daily => "DAILY",
            Self::Weekly => "WEEKLY",
            Self::Monthly => "MONTHLY",
            Self::Yearly => "YEARLY",
        }
    }
}

/// How a series ends, if it does.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum RecurrenceEnd {
    /// After this many occurrences, counting the task that carries the rule.
    Count(u32),
    /// With the last occurrence at or before this instant.
    Until(DateTime<Utc>),
}

/// A valid recurrence rule: `FREQ` `DAILY`, `WEEKLY`, `MONTHLY` or `YEARLY`, with `INTERVAL`,
/// `BYDAY` (weekly only, plain weekdays), `BYMONTHDAY` (monthly only, 1 to 31 or -31 to -1),
/// and `COUNT` or `UNTIL`. Written back in one canonical form
/// (`FREQ=WEEKLY;INTERVAL=2;BYDAY=MO,WE;COUNT=5`).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Recurrence {
    freq: Frequency,
    interval: u32,
    by_day: Vec<Weekday>,
    by_month_day: Vec<i8>,
    end: Option<RecurrenceEnd>,
}

fn invalid(message: impl Into<String>) -> ValidationError {
    ValidationError::field("recurrence", message)
}

fn weekday(code: &str) -> Option<Weekday> {
    Some(match code {
        "MO" => Weekday::Mon,
        "TU" => Weekday::Tue,
        "WE" => Weekday::Wed,
        "TH" => Weekday::Thu,
        "FR" => Weekday::Fri,
        "SA" => Weekday::Sat,
        "SU" => Weekday::Sun,
        _ => return None,
    })
}

fn weekday_code(day: Weekday) -> &'static str {
    match day {
        Weekday::Mon => "MO",
        Weekday::Tue => "TU",
        Weekday::Wed => "WE",
        Weekday::Thu => "TH",
        Weekday::Fri => "FR",
        Weekday::Sat => "SA",
        Weekday::Sun => "SU",
    }
}

/// `UNTIL` as RFC 5545 writes it: `20300101T000000Z`, or a date (`20300101`), which here means
/// the end of that day in UTC. Exactly those digits: years 1 to 9999 (what the stored form
/// and RFC 3339 can write), seconds 00 to 59 (a leap second, `60`, is no instant the calendar
/// arithmetic can reach, and would end the series unseen).
fn until(value: &str) -> Option<DateTime<Utc>> {
    let (date, time) = match value.split_once('T') {
        Some((date, time)) => (date, time.strip_suffix('Z')?),
        None => (value, "235959"),
    };
    let digits = |s: &str, n: usize| s.len() == n && s.bytes().all(|b| b.is_ascii_digit());
    if !digits(date, 8) || !digits(time, 6) {
        return None;
    }
    let number = |s: &str| s.parse::<u32>().ok();
    let year = i32::try_from(number(&date[..4])?).ok()?;
    if !(DUE_DATE_MIN_YEAR..=DUE_DATE_MAX_YEAR).contains(&year) {
        return None;
    }
    let day = NaiveDate::from_ymd_opt(year, number(&date[4..6])?, number(&date[6..])?)?;
    let at = day.and_hms_opt(
        number(&time[..2])?,
        number(&time[2..4])?,
        number(&time[4..])?,
    )?;
    Some(at.and_utc())
}

impl Recurrence {
    /// Parses an RRULE value (an `RRULE:` prefix is allowed; names and values are
    /// case-insensitive). Anything outside the supported subset is an error naming
    /// `recurrence`.
    pub fn parse(raw: &str) -> Result<Self, ValidationError> {
        if raw.chars().count() > RECURRENCE_MAX_CHARS {
            return Err(invalid(format!(
                "must be at most {RECURRENCE_MAX_CHARS} characters"
            )));
        }
        let text = raw.trim().to_ascii_uppercase();
        let text = text.strip_prefix("RRULE:").unwrap_or(&text);
        let mut freq = None;
        let mut interval = None;
        let mut by_day = None;
        let mut by_month_day = None;
        let mut count = None;
        let mut until_at = None;
        for part in text.split(';').filter(|p| !p.is_empty()) {
            let (name, value) = part
                .split_once('=')
                .ok_or_else(|| invalid(format!("`{part}` is not NAME=VALUE")))?;
            let repeated = || invalid(format!("{name} is given twice"));
            match name {
                "FREQ" => {
                    let f = match value {
                        "DAILY" => Frequency::Daily,
                        "WEEKLY" => Frequency::Weekly,
                        "MONTHLY" => Frequency::Monthly,
                        "YEARLY" => Frequency::Yearly,
                        _ => return Err(invalid("FREQ must be DAILY, WEEKLY, MONTHLY or YEARLY")),
                    };
                    if freq.replace(f).is_some() {
                        return Err(repeated());
                    }
                }
                "INTERVAL" => {
                    let n = value
                        .parse::<u32>()
                        .ok()
                        .filter(|n| (1..=RECURRENCE_MAX_INTERVAL).contains(n))
                        .ok_or_else(|| {
                            invalid(format!(
                                "INTERVAL must be between 1 and {RECURRENCE_MAX_INTERVAL}"
                            ))
                        })?;
                    if interval.replace(n).is_some() {
                        return Err(repeated());
                    }
                }
                "BYDAY" => {
                    let mut days = Vec::new();
                    for code in value.split(',') {
                        let day = weekday(code).ok_or_else(|| {
                            invalid("BYDAY takes weekdays: MO, TU, WE, TH, FR, SA, SU")
                        })?;
                        if !days.contains(&day) {
                            days.push(day);
                        }
                    }
                    if by_day.replace(days).is_some() {
                        return Err(repeated());
                    }
                }
                "BYMONTHDAY" => {
                    let mut days = Vec::new();
                    for item in value.split(',') {
                        let day = item
                            .parse::<i8>()
                            .ok()
                            .filter(|d| (1..=31).contains(d) || (-31..=-1).contains(d))
                            .ok_or_else(|| invalid("BYMONTHDAY takes days 1 to 31 or -31 to -1"))?;
                        if !days.contains(&day) {
                            days.push(day);
                        }
                    }
                    if by_month_day.replace(days).is_some() {
                        return Err(repeated());
                    }
                }
                "COUNT" => {
                    let n = value
                        .parse::<u32>()
                        .ok()
                        .filter(|n| (1..=RECURRENCE_MAX_COUNT).contains(n))
                        .ok_or_else(|| {
                            invalid(format!(
                                "COUNT must be between 1 and {RECURRENCE_MAX_COUNT}"
                            ))
                        })?;
                    if count.replace(n).is_some() {
                        return Err(repeated());
                    }
                }
                "UNTIL" => {
                    let t = until(value).ok_or_else(|| {
                        invalid(
                            "UNTIL must be a UTC date-time (20300101T000000Z) or a date \
                             (20300101), in the years 1 to 9999",
                        )
                    })?;
                    if until_at.replace(t).is_some() {
                        return Err(repeated());
                    }
                }
                other => {
                    return Err(invalid(format!(
                        "{other} is not supported (FREQ, INTERVAL, BYDAY, BYMONTHDAY, COUNT, UNTIL)"
                    )));
                }
            }
        }
        let freq = freq.ok_or_else(|| invalid("FREQ is required"))?;
        if by_day.is_some() && freq != Frequency::Weekly {
            return Err(invalid("BYDAY is supported with FREQ=WEEKLY only"));
        }
        if by_month_day.is_some() && freq != Frequency::Monthly {
            return Err(invalid("BYMONTHDAY is supported with FREQ=MONTHLY only"));
        }
        let end = match (count, until_at) {
            (Some(_), Some(_)) => return Err(invalid("COUNT and UNTIL cannot both be given")),
            (Some(n), None) => Some(RecurrenceEnd::Count(n)),
            (None, Some(t)) => Some(RecurrenceEnd::Until(t)),
            (None, None) => None,
        };
        let rule = Self {
            freq,
            interval: interval.unwrap_or(1),
            by_day: by_day.unwrap_or_default(),
            by_month_day: by_month_day.unwrap_or_default(),
            end,
        };
        // The stored form is what `next` hands the calendar crate: a rule it could not read
        // would end its series silently at the next completion, so it is refused here.
        rule.to_string()
            .parse::<rrule::RRule<rrule::Unvalidated>>()
            .map_err(|e| invalid(format!("is not supported ({e})")))?;
        Ok(rule)
    }

    /// The error for a rule on a task that has no due date (a series needs a start): names
    /// `recurrence`.
    pub fn needs_due_date() -> ValidationError {
        invalid("needs a due_date (set one, or clear the rule)")
    }

    /// How often the series repeats.
    pub fn frequency(&self) -> Frequency {
        self.freq
    }

    /// How the series ends, if it does.
    pub fn end(&self) -> Option<RecurrenceEnd> {
        self.end
    }

    /// The occurrence that follows one due at `due`, and the rule it carries (a `COUNT` one
    /// less); `None` when the series ends with the occurrence due at `due` (its `COUNT` is 1,
    /// or the next would fall after `UNTIL`). The next occurrence keeps `due`'s time of day;
    /// days a month or year lacks (the 31st, February 29th) are skipped, as RFC 5545 says.
    pub fn next(&self, due: DateTime<Utc>) -> Option<(DateTime<Utc>, Recurrence)> {
        let rest = match self.end {
            Some(RecurrenceEnd::Count(n)) if n <= 1 => return None,
            Some(RecurrenceEnd::Count(n)) => Some(RecurrenceEnd::Count(n - 1)),
            other => other,
        };
        // The series is evaluated from `due` itself (its DTSTART), in whole seconds, which is
        // what the crate generates; the fraction is put back on the result.
        let start = due.trunc_subsecs(0);
        let fraction = due - start;
        let rule: rrule::RRule<rrule::Unvalidated> = self.to_string().parse().ok()?;
        let set = rule.build(start.with_timezone(&rrule::Tz::UTC)).ok()?;
        let start_tz = start.with_timezone(&rrule::Tz::UTC);
        let next = set
            .limit()
            .into_iter()
            .find(|t| *t > start_tz)?
            .with_timezone(&Utc);
        let next_rule = Self {
            end: rest,
            ..self.clone()
        };
        Some((next + fraction, next_rule))
    }
}

impl fmt::Display for Recurrence {
    /// The canonical form: `FREQ=...`, then `INTERVAL` (when not 1), `BYDAY`, `BYMONTHDAY`,
    /// `COUNT` or `UNTIL`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "FREQ={}", self.freq.as_str())?;
        if self.interval != 1 {
            write!(f, ";INTERVAL={}", self.interval)?;
        }
        if !self.by_day.is_empty() {
            let days: Vec<_> = self.by_day.iter().map(|d| weekday_code(*d)).collect();
            write!(f, ";BYDAY={}", days.join(","))?;
        }
        if !self.by_month_day.is_empty() {
            let days: Vec<_> = self.by_month_day.iter().map(i8::to_string).collect();
            write!(f, ";BYMONTHDAY={}", days.join(","))?;
        }
        match self.end {
            Some(RecurrenceEnd::Count(n)) => write!(f, ";COUNT={n}"),
            Some(RecurrenceEnd::Until(t)) => write!(f, ";UNTIL={}", t.format("%Y%m%dT%H%M%SZ")),
            None => Ok(()),
        }
    }
}

#[cfg(test)]
mod tests {
    use chrono::TimeZone;

    use super::*;

    fn at(y: i32, m: u32, d: u32, h: u32) -> DateTime<Utc> {
        Utc.with_ymd_and_hms(y, m, d, h, 0, 0).unwrap()
    }

    fn next(rule: &str, due: DateTime<Utc>) -> Option<(DateTime<Utc>, String)> {
        Recurrence::parse(rule)
            .unwrap()
            .next(due)
            .map(|(t, r)| (t, r.to_string()))
    }

    #[test]
    fn rules_are_checked_and_written_back_canonically() {
        let ok = [
            ("FREQ=DAILY", "FREQ=DAILY"),
            (
                "rrule:freq=weekly;interval=2;byday=mo,we,mo",
                "FREQ=WEEKLY;INTERVAL=2;BYDAY=MO,WE",
            ),
            (
                "FREQ=MONTHLY;BYMONTHDAY=31,-1;COUNT=5",
                "FREQ=MONTHLY;BYMONTHDAY=31,-1;COUNT=5",
            ),
            (
                "FREQ=YEARLY;UNTIL=20300101T000000Z;",
                "FREQ=YEARLY;UNTIL=20300101T000000Z",
            ),
            (
                "FREQ=DAILY;INTERVAL=1;UNTIL=20300101",
                "FREQ=DAILY;UNTIL=20300101T235959Z",
            ),
        ];
        for (raw, canonical) in ok {
            assert_eq!(
                Recurrence::parse(raw).unwrap().to_string(),
                canonical,
                "{raw}"
            );
        }
        let bad = [
            "",
            "FREQ=HOURLY",
            "FREQ=DAILY;FREQ=WEEKLY",
            "INTERVAL=2",
            "FREQ=DAILY;INTERVAL=0",
            "FREQ=DAILY;INTERVAL=1001",
            "FREQ=DAILY;BYDAY=MO",
            "FREQ=WEEKLY;BYDAY=1MO",
            "FREQ=WEEKLY;BYMONTHDAY=3",
            "FREQ=MONTHLY;BYMONTHDAY=32",
            "FREQ=MONTHLY;BYMONTHDAY=0",
            "FREQ=DAILY;COUNT=0",
            "FREQ=DAILY;COUNT=3;UNTIL=20300101T000000Z",
            "FREQ=DAILY;UNTIL=tomorrow",
            "FREQ=DAILY;BYHOUR=5",
            "FREQ=DAILY;WKST=SU",
            "FREQ",
        ];
        for raw in bad {
            let e = Recurrence::parse(raw).unwrap_err();
            assert_eq!(e.errors[0].field, "recurrence", "{raw}");
        }
        assert!(Recurrence::parse(&"FREQ=DAILY;".repeat(100)).is_err());
    }

    #[test]
    fn the_next_occurrence_follows_rfc_5545() {
        let cases = [
            // Months without the 31st are skipped; so is February 29th outside leap years.
            (
                "FREQ=MONTHLY;BYMONTHDAY=31",
                at(2024, 1, 31, 9),
                Some((at(2024, 3, 31, 9), "FREQ=MONTHLY;BYMONTHDAY=31")),
            ),
            (
                "FREQ=MONTHLY",
                at(2024, 1, 31, 9),
                Some((at(2024, 3, 31, 9), "FREQ=MONTHLY")),
            ),
            (
                "FREQ=MONTHLY;BYMONTHDAY=-1",
                at(2024, 1, 31, 9),
                Some((at(2024, 2, 29, 9), "FREQ=MONTHLY;BYMONTHDAY=-1")),
            ),
            (
                "FREQ=YEARLY",
                at(2024, 2, 29, 9),
                Some((at(2028, 2, 29, 9), "FREQ=YEARLY")),
            ),
            (
                "FREQ=WEEKLY;BYDAY=MO,FR",
                at(2024, 1, 1, 9),
                Some((at(2024, 1, 5, 9), "FREQ=WEEKLY;BYDAY=MO,FR")),
            ),
            (
                "FREQ=WEEKLY;BYDAY=MO,FR",
                at(2024, 1, 5, 9),
                Some((at(2024, 1, 8, 9), "FREQ=WEEKLY;BYDAY=MO,FR")),
            ),
            (
                "FREQ=WEEKLY;INTERVAL=2;BYDAY=MO,WE",
                at(2024, 1, 3, 9),
                Some((at(2024, 1, 15, 9), "FREQ=WEEKLY;INTERVAL=2;BYDAY=MO,WE")),
            ),
            (
                "FREQ=DAILY;INTERVAL=3",
                at(2024, 2, 28, 9),
                Some((at(2024, 3, 2, 9), "FREQ=DAILY;INTERVAL=3")),
            ),
            // COUNT counts down and ends the series; UNTIL is inclusive.
            (
                "FREQ=DAILY;COUNT=3",
                at(2024, 1, 1, 9),
                Some((at(2024, 1, 2, 9), "FREQ=DAILY;COUNT=2")),
            ),
            ("FREQ=DAILY;COUNT=1", at(2024, 1, 1, 9), None),
            (
                "FREQ=DAILY;UNTIL=20240105T090000Z",
                at(2024, 1, 4, 9),
                Some((at(2024, 1, 5, 9), "FREQ=DAILY;UNTIL=20240105T090000Z")),
            ),
            ("FREQ=DAILY;UNTIL=20240105T090000Z", at(2024, 1, 5, 9), None),
            (
                "FREQ=YEARLY;UNTIL=20300101T000000Z",
                at(2028, 2, 29, 9),
                None,
            ),
            ("FREQ=DAILY;UNTIL=20200101T000000Z", at(2024, 1, 1, 9), None),
        ];
        for (rule, due, want) in cases {
            let want = want.map(|(t, r)| (t, r.to_owned()));
            assert_eq!(next(rule, due), want, "{rule} after {due}");
        }
        // The time of day, to the microsecond, is kept.
        let due = at(2024, 1, 1, 9) + chrono::Duration::microseconds(123_456);
        let (t, _) = Recurrence::parse("FREQ=DAILY").unwrap().next(due).unwrap();
        assert_eq!(t, due + chrono::Duration::days(1));
    }

    #[test]
    fn an_until_with_a_leap_second_or_a_year_outside_1_to_9999_is_refused() {
        let bad = [
            "FREQ=DAILY;UNTIL=20240110T235960Z",
            "FREQ=DAILY;UNTIL=20161231T235960Z",
            "FREQ=DAILY;UNTIL=00000101T000000Z",
            "FREQ=DAILY;UNTIL=00000101",
            "FREQ=DAILY;UNTIL=+20240101T000000Z",
            "FREQ=DAILY;UNTIL=-00010101",
            "FREQ=DAILY;UNTIL=100000101T000000Z",
            "FREQ=DAILY;UNTIL=2024011T000000Z",
            "FREQ=DAILY;UNTIL=20240110T2359Z",
        ];
        for raw in bad {
            let e = Recurrence::parse(raw).expect_err(raw);
            assert_eq!(e.errors[0].field, "recurrence", "{raw}");
            assert!(e.errors[0].message.contains("UNTIL"), "{raw}: {e}");
        }
        // The edges of the range are kept, and say what they are.
        for (raw, canonical) in [
            (
                "FREQ=DAILY;UNTIL=00010101T000000Z",
                "FREQ=DAILY;UNTIL=00010101T000000Z",
            ),
            (
                "FREQ=DAILY;UNTIL=99991231",
                "FREQ=DAILY;UNTIL=99991231T235959Z",
            ),
            (
                "FREQ=DAILY;UNTIL=20240110T235959Z",
                "FREQ=DAILY;UNTIL=20240110T235959Z",
            ),
        ] {
            assert_eq!(
                Recurrence::parse(raw).unwrap().to_string(),
                canonical,
                "{raw}"
            );
        }
    }

    #[test]
    fn the_stored_form_of_every_accepted_rule_reads_back_the_same_and_repeats() {
        let rules = [
            "FREQ=DAILY",
            "FREQ=WEEKLY;INTERVAL=2;BYDAY=MO,WE",
            "FREQ=MONTHLY;BYMONTHDAY=31,-1;COUNT=5",
            "FREQ=YEARLY;UNTIL=20300101T000000Z",
            "FREQ=DAILY;UNTIL=99991231",
            "FREQ=DAILY;UNTIL=20240110T235959Z",
        ];
        for raw in rules {
            let rule = Recurrence::parse(raw).unwrap();
            let stored = rule.to_string();
            assert_eq!(Recurrence::parse(&stored).as_ref(), Ok(&rule), "{raw}");
            let parsed: Result<rrule::RRule<rrule::Unvalidated>, _> = stored.parse();
            assert!(parsed.is_ok(), "{stored}: {parsed:?}");
            assert!(rule.next(at(2024, 1, 1, 9)).is_some(), "{raw}");
        }
    }
}
