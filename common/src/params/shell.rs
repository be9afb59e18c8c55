//! Rendering a SHELL task's script.
//!
//! Security invariant: a user-provided value never becomes shell text. User
//! `${name}` references stay references and the values travel in the
//! environment, so bash expands them as data (expansion results are never
//! parsed as code). Only Orca-generated values made of inert characters
//! (`[A-Za-z0-9_.:/+=@%-]`) and `$[...]` results are pasted as text.
//!
//! To keep DolphinScheduler scripts working, the renderer follows shell
//! quoting: inside `'...'` a reference becomes `'"${NAME}"'` (and inside
//! `$'...'`, `'"${NAME}"$'`) so the value still appears; names that are not
//! shell identifiers (or are reserved, like `PATH`) are rewritten to
//! `${ORCA_P_<n>}`. Comments, `${setValue(...)}`/`#{setValue(...)}` and
//! unknown `${x}` are left alone; in quoted here-documents (`<<'EOF'`) user
//! references stay literal, since nothing there is expanded.

use chrono::NaiveDateTime;

use super::error::ParamError;
use super::render::{ParamTable, Rendered};
use super::resolve::ResolvedParam;
use super::scan::{reference_at, time_expr_at};
use super::time::eval_time_expr;

/// Renders a SHELL script: `$[...]` and inert generated `${name}` are
/// replaced textually, every other known `${name}` is left for bash to
/// expand from the returned environment (renamed when needed).
pub fn render_shell(
    script: &str,
    params: &[ResolvedParam],
    schedule_time: NaiveDateTime,
) -> Result<Rendered, ParamError> {
    let table = ParamTable::new(params)?;
    let mut r = ShellRenderer {
        src: script,
        b: script.as_bytes(),
        out: String::with_capacity(script.len()),
        table: &table,
        base: schedule_time,
        stack: Vec::new(),
        heredocs: Vec::new(),
    };
    r.run()?;
    Ok(Rendered {
        script: r.out,
        env: table.env(),
    })
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Frame {
    Single,
    AnsiC,
    Double,
    /// `$(...)`, with its count of open `(`.
    Sub(u32),
    Backtick,
    /// `((...))` / `$((...))`, with its count of open `(`.
    Arith(u32),
}

/// How a reference is written back, by where it sits.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Place {
    Expanding,
    Single,
    AnsiC,
    Literal,
}

struct Heredoc {
    delim: String,
    strip_tabs: bool,
    quoted: bool,
}

struct ShellRenderer<'a, 't> {
    src: &'a str,
    b: &'a [u8],
    out: String,
    table: &'t ParamTable<'t>,
    base: NaiveDateTime,
    stack: Vec<Frame>,
    heredocs: Vec<Heredoc>,
}

impl ShellRenderer<'_, '_> {
    fn copy(&mut self, from: usize, to: usize) -> usize {
        let mut to = to.min(self.b.len());
        while !self.src.is_char_boundary(to) {
            to += 1;
        }
        self.out.push_str(&self.src[from..to]);
        to
    }

    fn at(&self, i: usize, s: &str) -> bool {
        self.b[i..].starts_with(s.as_bytes())
    }

    fn in_code(&self) -> bool {
        matches!(
            self.stack.last(),
            None | Some(Frame::Sub(_)) | Some(Frame::Backtick)
        )
    }

    fn place(&self) -> Place {
        match self.stack.last() {
            Some(Frame::Single) => Place::Single,
            Some(Frame::AnsiC) => Place::AnsiC,
            _ => Place::Expanding,
        }
    }

    /// Handles `${..}` / `$[..]` at `i`; returns the next index if consumed.
    fn dollar(&mut self, i: usize, place: Place) -> Result<Option<usize>, ParamError> {
        if let Some((name, end)) = reference_at(self.src, i) {
            let Some(e) = self.table.get(name) else {
                return Ok(Some(self.copy(i, end)));
            };
            if e.shell_inline {
                self.out.push_str(e.value);
            } else {
                let env = &e.env;
                match place {
                    Place::Expanding => self.out.push_str(&format!("${{{env}}}")),
                    Place::Single => self.out.push_str(&format!("'\"${{{env}}}\"'")),
                    Place::AnsiC => self.out.push_str(&format!("'\"${{{env}}}\"$'")),
                    Place::Literal => self.out.push_str(&self.src[i..end]),
                }
            }
            return Ok(Some(end));
        }
        if let Some((expr, end)) = time_expr_at(self.src, i) {
            self.out.push_str(&eval_time_expr(expr, self.base)?);
            return Ok(Some(end));
        }
        Ok(None)
    }

    fn run(&mut self) -> Result<(), ParamError> {
        let mut i = 0;
        while i < self.b.len() {
            let c = self.b[i];
            if c == b'$'
                && let Some(next) = self.dollar(i, self.place())?
            {
                i = next;
                continue;
            }
            i = match self.stack.last().copied() {
                Some(Frame::Single) => self.in_single(i, c),
                Some(Frame::AnsiC) => self.in_ansi_c(i, c),
                Some(Frame::Double) => self.in_double(i, c),
                Some(Frame::Arith(depth)) => self.in_arith(i, c, depth),
                _ => self.in_code_char(i, c)?,
            };
        }
        Ok(())
    }

    fn in_single(&mut self, i: usize, c: u8) -> usize {
        if c == b'\'' {
            self.stack.pop();
        }
        self.copy(i, i + 1)
    }

    fn in_ansi_c(&mut self, i: usize, c: u8) -> usize {
        match c {
            b'\\' => self.copy(i, i + 2),
            b'\'' => {
                self.stack.pop();
                self.copy(i, i + 1)
            }
            _ => self.copy(i, i + 1),
        }
    }

    fn in_double(&mut self, i: usize, c: u8) -> usize {
        match c {
            b'\\' => self.copy(i, i + 2),
            b'"' => {
                self.stack.pop();
                self.copy(i, i + 1)
            }
            b'`' => {
                self.stack.push(Frame::Backtick);
                self.copy(i, i + 1)
            }
            b'$' if self.at(i, "$((") => {
                self.stack.push(Frame::Arith(0));
                self.copy(i, i + 3)
            }
            b'$' if self.at(i, "$(") => {
                self.stack.push(Frame::Sub(0));
                self.copy(i, i + 2)
            }
            _ => self.copy(i, i + 1),
        }
    }

    fn in_arith(&mut self, i: usize, c: u8, depth: u32) -> usize {
        let top = self.stack.len() - 1;
        match c {
            b'(' => self.stack[top] = Frame::Arith(depth + 1),
            b')' if depth == 0 && self.at(i, "))") => {
                self.stack.pop();
                return self.copy(i, i + 2);
            }
            b')' => self.stack[top] = Frame::Arith(depth.saturating_sub(1)),
            _ => {}
        }
        self.copy(i, i + 1)
    }

    fn word_start(&self, i: usize) -> bool {
        i == 0
            || matches!(
                self.b[i - 1],
                b' ' | b'\t' | b'\n' | b';' | b'&' | b'|' | b'(' | b')' | b'<' | b'>'
            )
    }

    fn in_code_char(&mut self, i: usize, c: u8) -> Result<usize, ParamError> {
        debug_assert!(self.in_code());
        let top = self.stack.last().copied();
        let next = match c {
            b'\\' => self.copy(i, i + 2),
            b'\'' => {
                self.stack.push(Frame::Single);
                self.copy(i, i + 1)
            }
            b'"' => {
                self.stack.push(Frame::Double);
                self.copy(i, i + 1)
            }
            b'`' if top == Some(Frame::Backtick) => {
                self.stack.pop();
                self.copy(i, i + 1)
            }
            b'`' => {
                self.stack.push(Frame::Backtick);
                self.copy(i, i + 1)
            }
            b'$' if self.at(i, "$'") => {
                self.stack.push(Frame::AnsiC);
                self.copy(i, i + 2)
            }
            b'$' if self.at(i, "$((") => {
                self.stack.push(Frame::Arith(0));
                self.copy(i, i + 3)
            }
            b'$' if self.at(i, "$(") => {
                self.stack.push(Frame::Sub(0));
                self.copy(i, i + 2)
            }
            b'(' if self.at(i, "((") && self.word_start(i) => {
                self.stack.push(Frame::Arith(0));
                self.copy(i, i + 2)
            }
            b'(' => {
                if let (Some(Frame::Sub(d)), Some(f)) = (top, self.stack.last_mut()) {
                    *f = Frame::Sub(d + 1);
                }
                self.copy(i, i + 1)
            }
            b')' => {
                match top {
                    Some(Frame::Sub(0)) => {
                        self.stack.pop();
                    }
                    Some(Frame::Sub(d)) => {
                        if let Some(f) = self.stack.last_mut() {
                            *f = Frame::Sub(d - 1);
                        }
                    }
                    _ => {}
                }
                self.copy(i, i + 1)
            }
            b'#' if self.word_start(i) => {
                let end = self.src[i..].find('\n').map_or(self.b.len(), |n| i + n);
                self.copy(i, end)
            }
            b'<' if self.at(i, "<<") && !self.at(i, "<<<") => self.heredoc_operator(i),
            b'\n' => {
                let next = self.copy(i, i + 1);
                self.heredoc_bodies(next)?
            }
            _ => self.copy(i, i + 1),
        };
        Ok(next)
    }

    /// Records the here-document opened at `i` (`<<` or `<<-`) and copies the
    /// operator and its delimiter word.
    fn heredoc_operator(&mut self, i: usize) -> usize {
        let mut j = i + 2;
        let strip_tabs = self.b.get(j) == Some(&b'-');
        if strip_tabs {
            j += 1;
        }
        while matches!(self.b.get(j), Some(b' ' | b'\t')) {
            j += 1;
        }
        let (mut delim, mut quoted) = (String::new(), false);
        let mut quote: Option<char> = None;
        let mut stop = self.b.len() - j;
        for (off, ch) in self.src[j..].char_indices() {
            match (quote, ch) {
                (Some(q), ch) if ch == q => quote = None,
                (Some(_), ch) => delim.push(ch),
                (None, '\'' | '"') => {
                    quote = Some(ch);
                    quoted = true;
                }
                (None, '\\') => quoted = true,
                (None, ' ' | '\t' | '\n' | ';' | '&' | '|' | '<' | '>' | '(' | ')') => {
                    stop = off;
                    break;
                }
                (None, ch) => delim.push(ch),
            }
        }
        let j = j + stop;
        if !delim.is_empty() {
            self.heredocs.push(Heredoc {
                delim,
                strip_tabs,
                quoted,
            });
        }
        self.copy(i, j.max(i + 2))
    }

    /// Copies the bodies of pending here-documents starting at `i` (the start
    /// of the line after their command); returns the index after them.
    fn heredoc_bodies(&mut self, mut i: usize) -> Result<usize, ParamError> {
        let docs = std::mem::take(&mut self.heredocs);
        for doc in docs {
            while i < self.b.len() {
                let end = self.src[i..].find('\n').map_or(self.b.len(), |n| i + n);
                let line = &self.src[i..end];
                let candidate = if doc.strip_tabs {
                    line.trim_start_matches('\t')
                } else {
                    line
                };
                if candidate == doc.delim {
                    i = self.copy(i, end + 1);
                    break;
                }
                self.heredoc_line(i, end, doc.quoted)?;
                i = self.copy(end, end + 1);
            }
        }
        Ok(i)
    }

    fn heredoc_line(&mut self, mut i: usize, end: usize, quoted: bool) -> Result<(), ParamError> {
        let place = if quoted {
            Place::Literal
        } else {
            Place::Expanding
        };
        while i < end {
            match self.b[i] {
                b'\\' if !quoted => i = self.copy(i, (i + 2).min(end)),
                b'$' => match self.dollar(i, place)? {
                    Some(next) => i = next,
                    None => i = self.copy(i, i + 1),
                },
                _ => i = self.copy(i, i + 1),
            }
        }
        Ok(())
    }
}
