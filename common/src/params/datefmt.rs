//! Java `SimpleDateFormat`-style patterns (`yyyy-MM-dd HH:mm:ss`), formatted
//! by hand so the output matches DolphinScheduler byte for byte.
//!
//! Supported letters: `y` `M` `L` `d` `D` `H` `k` `K` `h` `m` `s` `S` `E`
//! `u` `a`. Text in single quotes is literal (`''` is one quote); every
//! non-letter is literal. Week-based letters (`Y`, `w`, `W`) and time zones
//! are rejected rather than guessed: use `year_week(...)` for week numbers.

use chrono::{Datelike, NaiveDateTime, Timelike};

use super::error::PatternProblem;

const MONTHS: [&str; 12] = [
    "January",
    "February",
    "March",
    "April",
    "May",
    "June",
    "July",
    "August",
    "September",
    "October",
    "November",
    "December",
];
const WEEKDAYS: [&str; 7] = [
    "Monday",
    "Tuesday",
    "Wednesday",
    "Thursday",
    "Friday",
    "Saturday",
    "Sunday",
];

/// Formats `t` with a Java date pattern.
pub(crate) fn format_java(pattern: &str, t: NaiveDateTime) -> Result<String, PatternProblem> {
    let chars: Vec<char> = pattern.chars().collect();
    let mut out = String::with_capacity(pattern.len() + 8);
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        if c == '\'' {
            i = copy_quoted(&chars, i, &mut out)?;
            continue;
        }
        if !c.is_ascii_alphabetic() {
            out.push(c);
            i += 1;
            continue;
        }
        let mut n = 1;
        while i + n < chars.len() && chars[i + n] == c {
            n += 1;
        }
        field(c, n, t, &mut out)?;
        i += n;
    }
    Ok(out)
}

/// Copies a quoted literal starting at `chars[start] == '\''`; returns the
/// index after it.
fn copy_quoted(chars: &[char], start: usize, out: &mut String) -> Result<usize, PatternProblem> {
    if chars.get(start + 1) == Some(&'\'') {
        out.push('\'');
        return Ok(start + 2);
    }
    let mut i = start + 1;
    loop {
        match chars.get(i) {
            None => return Err(PatternProblem::UnterminatedQuote),
            Some('\'') if chars.get(i + 1) == Some(&'\'') => {
                out.push('\'');
                i += 2;
            }
            Some('\'') => return Ok(i + 1),
            Some(&c) => {
                out.push(c);
                i += 1;
            }
        }
    }
}

fn pad(out: &mut String, value: i64, width: usize) {
    if value < 0 {
        out.push('-');
    }
    let digits = value.unsigned_abs().to_string();
    for _ in digits.len()..width {
        out.push('0');
    }
    out.push_str(&digits);
}

fn text(out: &mut String, full: &str, n: usize) {
    if n >= 4 {
        out.push_str(full);
    } else {
        out.extend(full.chars().take(3));
    }
}

fn field(c: char, n: usize, t: NaiveDateTime, out: &mut String) -> Result<(), PatternProblem> {
    let hour = i64::from(t.hour());
    match c {
        'y' if n == 2 => pad(out, i64::from(t.year()).rem_euclid(100), 2),
        'y' => pad(out, i64::from(t.year()), n),
        'M' | 'L' if n >= 3 => text(out, MONTHS[t.month0() as usize], n),
        'M' | 'L' => pad(out, i64::from(t.month()), n),
        'd' => pad(out, i64::from(t.day()), n),
        'D' => pad(out, i64::from(t.ordinal()), n),
        'H' => pad(out, hour, n),
        'k' => pad(out, if hour == 0 { 24 } else { hour }, n),
        'K' => pad(out, hour % 12, n),
        'h' => pad(out, if hour % 12 == 0 { 12 } else { hour % 12 }, n),
        'm' => pad(out, i64::from(t.minute()), n),
        's' => pad(out, i64::from(t.second()), n),
        'S' => pad(out, i64::from(t.nanosecond() / 1_000_000 % 1000), n),
        'E' => text(
            out,
            WEEKDAYS[t.weekday().num_days_from_monday() as usize],
            n,
        ),
        'u' => pad(out, i64::from(t.weekday().number_from_monday()), n),
        'a' => out.push_str(if hour < 12 { "AM" } else { "PM" }),
        other => return Err(PatternProblem::UnsupportedLetter(other)),
    }
    Ok(())
}

/// True when every letter of `s` is a supported pattern letter (used to tell
/// a pattern such as `yyyy(MM)` from a function call such as `next_day(..)`).
pub(crate) fn is_pattern_word(s: &str) -> bool {
    s.chars().all(|c| "yMLdDHkKhmsSEua".contains(c))
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::NaiveDate;

    fn t() -> NaiveDateTime {
        NaiveDate::from_ymd_opt(2024, 2, 9)
            .and_then(|d| d.and_hms_milli_opt(7, 5, 3, 42))
            .unwrap()
    }

    #[test]
    fn formats_numeric_fields_with_java_padding() {
        let f = |p: &str| format_java(p, t()).unwrap();
        assert_eq!(f("yyyyMMddHHmmss"), "20240209070503");
        assert_eq!(f("yy-M-d H:m:s"), "24-2-9 7:5:3");
        assert_eq!(f("SSS"), "042");
        assert_eq!(f("S"), "42");
        assert_eq!(f("D"), "40");
        assert_eq!(f("hh a k K"), "07 AM 7 7");
    }

    #[test]
    fn formats_text_fields_and_literals() {
        let f = |p: &str| format_java(p, t()).unwrap();
        assert_eq!(f("EEE, d MMM yyyy"), "Fri, 9 Feb 2024");
        assert_eq!(f("EEEE MMMM u"), "Friday February 5");
        assert_eq!(f("yyyy'T'HH 'o''clock' ''"), "2024T07 o'clock '");
        assert_eq!(f("yyyy/MM/dd_HH.mm"), "2024/02/09_07.05");
    }

    #[test]
    fn rejects_unsupported_letters_and_open_quotes() {
        assert_eq!(
            format_java("YYYYMMdd", t()),
            Err(PatternProblem::UnsupportedLetter('Y'))
        );
        assert_eq!(
            format_java("yyyyww", t()),
            Err(PatternProblem::UnsupportedLetter('w'))
        );
        assert_eq!(
            format_java("yyyy'T", t()),
            Err(PatternProblem::UnterminatedQuote)
        );
    }
}
