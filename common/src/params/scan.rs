//! Finding `${name}` references and `$[...]` time expressions in text.

/// A `${name}` reference starting at byte `at` of `s` (which must start with
/// `${` there): the name and the byte index just past the closing `}`.
///
/// Names cannot hold `{`, `}`, `$` or line breaks; `${setValue(...)}` is
/// never a reference.
pub(crate) fn reference_at(s: &str, at: usize) -> Option<(&str, usize)> {
    let rest = s.get(at..)?.strip_prefix("${")?;
    let close = rest.find('}')?;
    let name = &rest[..close];
    let bad =
        name.is_empty() || name.starts_with("setValue(") || name.contains(['{', '$', '\n', '\r']);
    (!bad).then_some((name, at + 2 + close + 1))
}

/// A `$[...]` time expression starting at byte `at` of `s`: the inner text
/// and the byte index just past the matching `]` (nested `[` `]` pairs are
/// kept inside). `None` when unterminated or when a line ends first.
pub(crate) fn time_expr_at(s: &str, at: usize) -> Option<(&str, usize)> {
    let rest = s.get(at..)?.strip_prefix("$[")?;
    let mut depth = 0usize;
    for (i, b) in rest.bytes().enumerate() {
        match b {
            b'[' => depth += 1,
            b']' if depth == 0 => return Some((&rest[..i], at + 2 + i + 1)),
            b']' => depth -= 1,
            b'\n' => return None,
            _ => {}
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_references_but_not_set_value() {
        assert_eq!(reference_at("x${a.b}y", 1), Some(("a.b", 7)));
        assert_eq!(reference_at("${}", 0), None);
        assert_eq!(reference_at("${a", 0), None);
        assert_eq!(reference_at("${setValue(k=v)}", 0), None);
        assert_eq!(reference_at("${a${b}", 0), None);
    }

    #[test]
    fn finds_time_expressions_with_nesting() {
        assert_eq!(time_expr_at("$[yyyy]x", 0), Some(("yyyy", 7)));
        assert_eq!(time_expr_at("$[a[b]c]", 0), Some(("a[b]c", 8)));
        assert_eq!(time_expr_at("$[yyyy", 0), None);
        assert_eq!(time_expr_at("$[yy\n]", 0), None);
    }
}
