//! Rendering a PYTHON task's source.
//!
//! Like DolphinScheduler, `${name}` is substituted into the source so that
//! `open("${path}")` works. Safety comes from knowing where the reference
//! sits:
//! - inside a string literal, the value is escaped so it cannot end the
//!   literal (backslash, both quotes, line breaks, control characters; braces
//!   too inside f-strings, so they cannot open an expression);
//! - in code (including f-string `{...}` fields), the value is pasted only
//!   when it is a plain number or `True`/`False`/`None`; anything else
//!   becomes an escaped `"..."` string literal;
//! - comments are left alone.
//!
//! `$[...]` is evaluated everywhere but in comments, and every parameter is
//! also exported in the environment (same naming rule as SHELL).

use chrono::NaiveDateTime;

use super::error::ParamError;
use super::render::{ParamTable, Rendered};
use super::resolve::ResolvedParam;
use super::scan::{reference_at, time_expr_at};
use super::time::eval_time_expr;

/// Renders a PYTHON script; see the module documentation for the rules.
pub fn render_python(
    script: &str,
    params: &[ResolvedParam],
    schedule_time: NaiveDateTime,
) -> Result<Rendered, ParamError> {
    let table = ParamTable::new(params)?;
    let mut r = PyRenderer {
        src: script,
        b: script.as_bytes(),
        out: String::with_capacity(script.len()),
        stack: Vec::new(),
    };
    let mut i = 0;
    while i < r.b.len() {
        if r.b[i] == b'$' {
            if let Some((name, end)) = reference_at(script, i) {
                match table.get(name) {
                    Some(e) => r.push_value(e.value),
                    None => r.out.push_str(&script[i..end]),
                }
                i = end;
                continue;
            }
            if let Some((expr, end)) = time_expr_at(script, i) {
                let text = eval_time_expr(expr, schedule_time)?;
                r.push_value(&text);
                i = end;
                continue;
            }
        }
        i = r.step(i);
    }
    Ok(Rendered {
        script: r.out,
        env: table.env(),
    })
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Frame {
    Str {
        quote: u8,
        triple: bool,
        fstring: bool,
    },
    /// A `{...}` replacement field of an f-string, with its open bracket count.
    Field(u32),
}

struct PyRenderer<'a> {
    src: &'a str,
    b: &'a [u8],
    out: String,
    stack: Vec<Frame>,
}

impl PyRenderer<'_> {
    fn copy(&mut self, from: usize, to: usize) -> usize {
        let mut to = to.min(self.b.len());
        while !self.src.is_char_boundary(to) {
            to += 1;
        }
        self.out.push_str(&self.src[from..to]);
        to
    }

    fn at(&self, i: usize, s: &[u8]) -> bool {
        self.b[i..].starts_with(s)
    }

    fn push_value(&mut self, value: &str) {
        match self.stack.last() {
            Some(Frame::Str { fstring, .. }) => {
                let fstring = *fstring;
                escape_into(&mut self.out, value, fstring);
            }
            _ if is_plain_literal(value) => self.out.push_str(value),
            _ => {
                let q = self.code_quote();
                self.out.push(q);
                escape_into(&mut self.out, value, true);
                self.out.push(q);
            }
        }
    }

    /// The quote for a string literal written in code: inside an f-string
    /// field, the one that does not close the enclosing f-string.
    fn code_quote(&self) -> char {
        let enclosing = self.stack.iter().rev().find_map(|f| match f {
            Frame::Str { quote, .. } => Some(*quote),
            Frame::Field(_) => None,
        });
        if enclosing == Some(b'"') { '\'' } else { '"' }
    }

    /// Copies the source at `i`, tracking strings; returns the next index.
    fn step(&mut self, i: usize) -> usize {
        let c = self.b[i];
        match self.stack.last().copied() {
            Some(Frame::Str {
                quote,
                triple,
                fstring,
            }) => match c {
                b'\\' => self.copy(i, i + 2),
                b'{' | b'}' if fstring && self.b.get(i + 1) == Some(&c) => self.copy(i, i + 2),
                b'{' if fstring => {
                    self.stack.push(Frame::Field(0));
                    self.copy(i, i + 1)
                }
                q if q == quote && triple && self.at(i, &[q, q, q]) => {
                    self.stack.pop();
                    self.copy(i, i + 3)
                }
                q if q == quote && !triple => {
                    self.stack.pop();
                    self.copy(i, i + 1)
                }
                b'\n' if !triple => {
                    self.stack.pop();
                    self.copy(i, i + 1)
                }
                _ => self.copy(i, i + 1),
            },
            top => self.step_code(i, c, top),
        }
    }

    fn step_code(&mut self, i: usize, c: u8, top: Option<Frame>) -> usize {
        let set_depth = |s: &mut Self, d: u32| {
            if let Some(f) = s.stack.last_mut() {
                *f = Frame::Field(d);
            }
        };
        match (c, top) {
            (b'#', _) => {
                let end = self.src[i..].find('\n').map_or(self.b.len(), |n| i + n);
                self.copy(i, end)
            }
            (b'\'' | b'"', _) => {
                let prefix = self.string_prefix(i);
                let triple = self.at(i, &[c, c, c]);
                self.stack.push(Frame::Str {
                    quote: c,
                    triple,
                    fstring: prefix.contains(['f', 'F']),
                });
                self.copy(i, if triple { i + 3 } else { i + 1 })
            }
            (b'(' | b'[' | b'{', Some(Frame::Field(d))) => {
                set_depth(self, d + 1);
                self.copy(i, i + 1)
            }
            (b'}', Some(Frame::Field(0))) => {
                self.stack.pop();
                self.copy(i, i + 1)
            }
            (b')' | b']' | b'}', Some(Frame::Field(d))) => {
                set_depth(self, d.saturating_sub(1));
                self.copy(i, i + 1)
            }
            _ => self.copy(i, i + 1),
        }
    }

    /// The string prefix (`r`, `b`, `f`, `rb`, …) just before the quote at
    /// `i`, or `""` when the letters before it are part of a longer name.
    fn string_prefix(&self, i: usize) -> &str {
        let mut start = i;
        while start > 0 && self.b[start - 1].is_ascii_alphabetic() && i - start < 3 {
            start -= 1;
        }
        let prefix = &self.src[start..i];
        let before_ok = start == 0 || {
            let p = self.b[start - 1];
            !(p.is_ascii_alphanumeric() || p == b'_' || p >= 0x80)
        };
        let valid = prefix.len() <= 2 && prefix.chars().all(|c| "rRbBfFuU".contains(c));
        if before_ok && valid { prefix } else { "" }
    }
}

/// A value that reads as the same plain literal in Python: an integer without
/// leading zeros, a decimal number, `True`, `False` or `None`.
fn is_plain_literal(v: &str) -> bool {
    if matches!(v, "True" | "False" | "None") {
        return true;
    }
    let digits = v.strip_prefix('-').unwrap_or(v);
    let (int, frac) = match digits.split_once('.') {
        Some((i, f)) => (i, Some(f)),
        None => (digits, None),
    };
    let all_digits = |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit());
    let int_ok = all_digits(int) && (int == "0" || !int.starts_with('0') || frac.is_some());
    int_ok && frac.is_none_or(all_digits)
}

/// Escapes `v` for the inside of any Python string literal.
fn escape_into(out: &mut String, v: &str, braces: bool) {
    for ch in v.chars() {
        match ch {
            '\\' => out.push_str("\\\\"),
            '\'' => out.push_str("\\'"),
            '"' => out.push_str("\\\""),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            '{' if braces => out.push_str("\\x7b"),
            '}' if braces => out.push_str("\\x7d"),
            c if (c as u32) < 0x20 || c == '\u{7f}' || c == '\u{85}' => {
                out.push_str(&format!("\\x{:02x}", c as u32));
            }
            '\u{2028}' | '\u{2029}' | '\u{feff}' => out.push_str(&format!("\\u{:04x}", ch as u32)),
            c => out.push(c),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plain_literals() {
        for ok in ["0", "42", "-7", "3.14", "0.5", "True", "None"] {
            assert!(is_plain_literal(ok), "{ok}");
        }
        for no in [
            "", "08", "1e3", "1.", ".5", "true", "1_000", "0x1", "-", "1 ",
        ] {
            assert!(!is_plain_literal(no), "{no}");
        }
    }

    #[test]
    fn escaping_covers_quotes_breaks_and_braces() {
        let mut s = String::new();
        escape_into(&mut s, "a'b\"c\\d\ne\rf{g}\u{0}", true);
        assert_eq!(s, "a\\'b\\\"c\\\\d\\ne\\rf\\x7bg\\x7d\\x00");
    }
}
