//! DolphinScheduler time expressions: the text inside `$[...]`.
//!
//! Forms, relative to the schedule time:
//! - `yyyyMMdd`, `yyyy-MM-dd HH:mm:ss`: format (Java pattern, see
//!   [`datefmt`](super::datefmt)).
//! - `yyyyMMdd-1`, `yyyy-MM-dd+7*2`: shift by whole days.
//! - `HHmmss-1/24`, `HHmmss+30/24/60`: shift by a fraction of a day (hours,
//!   minutes). Like DolphinScheduler, the offset after the last `+` (or, if
//!   there is no `+`, the last `-`) counts only when a digit follows it, and
//!   it is computed as `1440*(N)/rest` minutes in integer arithmetic.
//! - `add_months(fmt,N)`; `this_day(fmt)`; `last_day(fmt)`;
//!   `year_week(fmt[,D])` (D = first day of week, 1 = Monday … 7 = Sunday);
//!   `month_first_day(fmt,N)`, `month_last_day(fmt,N)` (N in months);
//!   `week_first_day(fmt,N)`, `week_last_day(fmt,N)` (N in weeks);
//!   `month_begin`, `month_end`, `week_begin`, `week_end` `(fmt,N)` (N in
//!   days, applied after taking the boundary).
//!
//! `N` may be integer arithmetic (`-12*2`, `(1+2)*7`).

use chrono::{Datelike, Duration, Months, NaiveDate, NaiveDateTime};

use super::datefmt::{format_java, is_pattern_word};
use super::error::{ParamError, PatternProblem};

const MINUTES_PER_DAY: i64 = 24 * 60;

/// Evaluates one time expression (the text between `$[` and `]`) against the
/// schedule time `base` (local wall clock).
///
/// ```
/// use chrono::NaiveDate;
/// use orca_common::params::eval_time_expr;
/// let base = NaiveDate::from_ymd_opt(2024, 3, 1).unwrap().and_hms_opt(0, 30, 0).unwrap();
/// assert_eq!(eval_time_expr("yyyyMMdd-1", base).unwrap(), "20240229");
/// assert_eq!(eval_time_expr("yyyy-MM-dd HH:mm-1/24", base).unwrap(), "2024-02-29 23:30");
/// ```
pub fn eval_time_expr(expr: &str, base: NaiveDateTime) -> Result<String, ParamError> {
    let ctx = Ctx { expr };
    if expr.trim().is_empty() {
        return Err(ctx.pattern(PatternProblem::Empty));
    }
    let (when, pattern) = match function_call(expr) {
        Some((name, args)) => ctx.call(name, args, base)?,
        None => (ctx.shift_days_or_minutes(base)?, ctx.plain_pattern()),
    };
    if let Some(text) = when.year_week {
        return Ok(text);
    }
    format_java(pattern, when.time).map_err(|p| ctx.pattern(p))
}

/// Splits `name(args)` when `expr` has that shape and `name` is not itself a
/// plain date pattern such as `yyyy(MM)`.
fn function_call(expr: &str) -> Option<(&str, &str)> {
    let open = expr.find('(')?;
    let name = &expr[..open];
    let valid_name = !name.is_empty()
        && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
        && name.starts_with(|c: char| c.is_ascii_alphabetic());
    if !valid_name || !expr.ends_with(')') || is_pattern_word(name) {
        return None;
    }
    Some((name, &expr[open + 1..expr.len() - 1]))
}

struct When {
    time: NaiveDateTime,
    /// `year_week` produces its text directly.
    year_week: Option<String>,
}

impl From<NaiveDateTime> for When {
    fn from(time: NaiveDateTime) -> Self {
        When {
            time,
            year_week: None,
        }
    }
}

struct Ctx<'a> {
    expr: &'a str,
}

impl<'a> Ctx<'a> {
    fn pattern(&self, problem: PatternProblem) -> ParamError {
        ParamError::InvalidTimePattern {
            expr: self.expr.to_string(),
            problem,
        }
    }

    fn offset_err(&self, offset: &str) -> ParamError {
        ParamError::InvalidOffset {
            expr: self.expr.to_string(),
            offset: offset.to_string(),
        }
    }

    fn range(&self) -> ParamError {
        ParamError::DateOutOfRange {
            expr: self.expr.to_string(),
        }
    }

    fn args(&self, function: &'static str, expected: &'static str) -> ParamError {
        ParamError::TimeFunctionArgs {
            expr: self.expr.to_string(),
            function,
            expected,
        }
    }

    /// Where the day/minute offset of a plain expression starts:
    /// `(operator index, negative)`.
    fn offset_split(&self) -> Option<(usize, bool)> {
        let e = self.expr;
        let (idx, neg) = if e.contains('+') {
            (e.rfind('+')?, false)
        } else {
            (e.rfind('-')?, true)
        };
        let digit_follows = e[idx + 1..].starts_with(|c: char| c.is_ascii_digit());
        digit_follows.then_some((idx, neg))
    }

    fn plain_pattern(&self) -> &'a str {
        match self.offset_split() {
            Some((idx, _)) => &self.expr[..idx],
            None => self.expr,
        }
    }

    fn shift_days_or_minutes(&self, base: NaiveDateTime) -> Result<When, ParamError> {
        let Some((idx, neg)) = self.offset_split() else {
            return Ok(base.into());
        };
        let offset = &self.expr[idx + 1..];
        let arith = match offset.find('/') {
            Some(slash) => format!(
                "{MINUTES_PER_DAY}*({}){}",
                &offset[..slash],
                &offset[slash..]
            ),
            None => format!("{MINUTES_PER_DAY}*({offset})"),
        };
        let minutes = eval_int(&arith).ok_or_else(|| self.offset_err(offset))?;
        let minutes = if neg {
            minutes.checked_neg()
        } else {
            Some(minutes)
        }
        .ok_or_else(|| self.offset_err(offset))?;
        let delta = Duration::try_minutes(minutes).ok_or_else(|| self.range())?;
        base.checked_add_signed(delta)
            .map(When::from)
            .ok_or_else(|| self.range())
    }

    fn int(&self, text: &str) -> Result<i64, ParamError> {
        eval_int(text).ok_or_else(|| self.offset_err(text))
    }

    fn add_days(&self, t: NaiveDateTime, days: i64) -> Result<NaiveDateTime, ParamError> {
        Duration::try_days(days)
            .and_then(|d| t.checked_add_signed(d))
            .ok_or_else(|| self.range())
    }

    fn add_months(&self, t: NaiveDateTime, months: i64) -> Result<NaiveDateTime, ParamError> {
        let m = u32::try_from(months.unsigned_abs()).map_err(|_| self.range())?;
        if months >= 0 {
            t.checked_add_months(Months::new(m))
        } else {
            t.checked_sub_months(Months::new(m))
        }
        .ok_or_else(|| self.range())
    }

    fn with_date(
        &self,
        t: NaiveDateTime,
        d: Option<NaiveDate>,
    ) -> Result<NaiveDateTime, ParamError> {
        d.map(|d| d.and_time(t.time())).ok_or_else(|| self.range())
    }

    fn month_first(&self, t: NaiveDateTime) -> Result<NaiveDateTime, ParamError> {
        self.with_date(t, t.date().with_day(1))
    }

    fn month_last(&self, t: NaiveDateTime) -> Result<NaiveDateTime, ParamError> {
        let first = self.month_first(t)?;
        let next = self.add_months(first, 1)?;
        self.add_days(next, -1)
    }

    fn monday(&self, t: NaiveDateTime) -> Result<NaiveDateTime, ParamError> {
        self.add_days(t, -i64::from(t.weekday().num_days_from_monday()))
    }

    fn call(
        &self,
        name: &str,
        args: &'a str,
        base: NaiveDateTime,
    ) -> Result<(When, &'a str), ParamError> {
        let two = |f: &'static str| -> Result<(&'a str, i64), ParamError> {
            let (fmt, n) = args
                .rsplit_once(',')
                .ok_or_else(|| self.args(f, "(format,offset)"))?;
            Ok((fmt, self.int(n)?))
        };
        let (time, fmt) = match name {
            "this_day" => (base, args),
            "last_day" => (self.add_days(base, -1)?, args),
            "add_months" => {
                let (fmt, n) = two("add_months")?;
                (self.add_months(base, n)?, fmt)
            }
            "month_first_day" => {
                let (fmt, n) = two("month_first_day")?;
                (self.month_first(self.add_months(base, n)?)?, fmt)
            }
            "month_last_day" => {
                let (fmt, n) = two("month_last_day")?;
                (self.month_last(self.add_months(base, n)?)?, fmt)
            }
            "week_first_day" => {
                let (fmt, n) = two("week_first_day")?;
                let shifted = self.add_days(base, n.checked_mul(7).ok_or_else(|| self.range())?)?;
                (self.monday(shifted)?, fmt)
            }
            "week_last_day" => {
                let (fmt, n) = two("week_last_day")?;
                let shifted = self.add_days(base, n.checked_mul(7).ok_or_else(|| self.range())?)?;
                (self.add_days(self.monday(shifted)?, 6)?, fmt)
            }
            "month_begin" => {
                let (fmt, n) = two("month_begin")?;
                (self.add_days(self.month_first(base)?, n)?, fmt)
            }
            "month_end" => {
                let (fmt, n) = two("month_end")?;
                (self.add_days(self.month_last(base)?, n)?, fmt)
            }
            "week_begin" => {
                let (fmt, n) = two("week_begin")?;
                (self.add_days(self.monday(base)?, n)?, fmt)
            }
            "week_end" => {
                let (fmt, n) = two("week_end")?;
                (
                    self.add_days(self.add_days(self.monday(base)?, 6)?, n)?,
                    fmt,
                )
            }
            "year_week" => return self.year_week(args, base),
            other => {
                return Err(ParamError::UnknownTimeFunction {
                    expr: self.expr.to_string(),
                    function: other.to_string(),
                });
            }
        };
        Ok((time.into(), fmt))
    }

    /// Week of year with weeks starting on `first_day` (1 = Monday) and at
    /// least four days in week 1, printed `yyyy-ww` when the format has a
    /// `-`, else `yyyyww`. The year is the week's year (the one holding most
    /// of its days).
    fn year_week(&self, args: &'a str, base: NaiveDateTime) -> Result<(When, &'a str), ParamError> {
        let (fmt, first_day) = match args.rsplit_once(',') {
            Some((fmt, n)) => (fmt, self.int(n)?),
            None => (args, 1),
        };
        if !(1..=7).contains(&first_day) {
            return Err(self.args("year_week", "(format[,first day of week 1..7])"));
        }
        let weekday = i64::from(base.weekday().number_from_monday());
        let week_start = self.add_days(base, -((weekday - first_day).rem_euclid(7)))?;
        let middle = self.add_days(week_start, 3)?;
        let week = (middle.ordinal() - 1) / 7 + 1;
        let text = if fmt.contains('-') {
            format!("{}-{week:02}", middle.year())
        } else {
            format!("{}{week:02}", middle.year())
        };
        Ok((
            When {
                time: base,
                year_week: Some(text),
            },
            fmt,
        ))
    }
}

/// Integer arithmetic with `+ - * /`, unary signs and parentheses, Java
/// `int`-style truncating division. `None` on syntax error, division by
/// zero or overflow.
pub(crate) fn eval_int(text: &str) -> Option<i64> {
    let tokens: Vec<char> = text.chars().filter(|c| !c.is_whitespace()).collect();
    let mut p = Parser { t: &tokens, i: 0 };
    let v = p.expr(0)?;
    (p.i == tokens.len()).then_some(v)
}

struct Parser<'t> {
    t: &'t [char],
    i: usize,
}

impl Parser<'_> {
    const MAX_DEPTH: usize = 64;

    fn peek(&self) -> Option<char> {
        self.t.get(self.i).copied()
    }

    fn expr(&mut self, depth: usize) -> Option<i64> {
        let mut v = self.term(depth)?;
        while let Some(op @ ('+' | '-')) = self.peek() {
            self.i += 1;
            let r = self.term(depth)?;
            v = if op == '+' {
                v.checked_add(r)?
            } else {
                v.checked_sub(r)?
            };
        }
        Some(v)
    }

    fn term(&mut self, depth: usize) -> Option<i64> {
        let mut v = self.unary(depth)?;
        while let Some(op @ ('*' | '/')) = self.peek() {
            self.i += 1;
            let r = self.unary(depth)?;
            v = if op == '*' {
                v.checked_mul(r)?
            } else {
                v.checked_div(r)?
            };
        }
        Some(v)
    }

    fn unary(&mut self, depth: usize) -> Option<i64> {
        if depth > Self::MAX_DEPTH {
            return None;
        }
        match self.peek()? {
            '-' => {
                self.i += 1;
                self.unary(depth + 1)?.checked_neg()
            }
            '+' => {
                self.i += 1;
                self.unary(depth + 1)
            }
            '(' => {
                self.i += 1;
                let v = self.expr(depth + 1)?;
                (self.peek()? == ')').then(|| self.i += 1)?;
                Some(v)
            }
            c if c.is_ascii_digit() => {
                let start = self.i;
                while self.peek().is_some_and(|c| c.is_ascii_digit()) {
                    self.i += 1;
                }
                self.t[start..self.i]
                    .iter()
                    .collect::<String>()
                    .parse()
                    .ok()
            }
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::eval_int;

    #[test]
    fn integer_arithmetic_follows_java_int_rules() {
        assert_eq!(eval_int("1440*(1)/24"), Some(60));
        assert_eq!(eval_int("1440*(1)/24/60"), Some(1));
        assert_eq!(eval_int("-12*2"), Some(-24));
        assert_eq!(eval_int("(1+2)*-7"), Some(-21));
        assert_eq!(eval_int("7/2"), Some(3));
        assert_eq!(eval_int("-7/2"), Some(-3));
        assert_eq!(eval_int(" 2 + 3 "), Some(5));
    }

    #[test]
    fn integer_arithmetic_rejects_garbage() {
        for bad in [
            "",
            "1/0",
            "1+",
            "(1",
            "1)",
            "a",
            "1x",
            "99999999999999999999",
        ] {
            assert_eq!(eval_int(bad), None, "{bad}");
        }
        let deep = format!("{}1{}", "(".repeat(200), ")".repeat(200));
        assert_eq!(eval_int(&deep), None);
    }
}
