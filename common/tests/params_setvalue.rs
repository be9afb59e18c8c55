//! `${setValue(k=v)}` / `#{setValue(k=v)}` parsing.

use orca_common::params::parse_set_values;

fn kv(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

#[test]
fn both_markers_are_recognised() {
    assert_eq!(parse_set_values("${setValue(a=1)}"), kv(&[("a", "1")]));
    assert_eq!(
        parse_set_values("log: #{setValue(b=two)} done"),
        kv(&[("b", "two")])
    );
}

#[test]
fn values_keep_spaces_equals_and_may_be_empty() {
    assert_eq!(
        parse_set_values("${setValue(q= x = y  )}"),
        kv(&[("q", " x = y  ")])
    );
    assert_eq!(
        parse_set_values("${setValue(empty=)}"),
        kv(&[("empty", "")])
    );
    assert_eq!(
        parse_set_values("${setValue(sql=select f(x) from t)}"),
        kv(&[("sql", "select f(x) from t")])
    );
}

#[test]
fn several_per_line_in_order_with_keys_trimmed() {
    assert_eq!(
        parse_set_values("#{setValue( k1 =a)} and ${setValue(k2=b)}#{setValue(k3=c)}"),
        kv(&[("k1", "a"), ("k2", "b"), ("k3", "c")])
    );
}

#[test]
fn malformed_occurrences_are_skipped() {
    assert!(parse_set_values("no markers here").is_empty());
    assert!(parse_set_values("${setValue(noequals)}").is_empty());
    assert!(parse_set_values("${setValue( =v)}").is_empty());
    assert!(parse_set_values("${setValue(k=unterminated").is_empty());
    assert!(parse_set_values("$ {setValue(k=v)} {setValue(k=v)}").is_empty());
    assert_eq!(
        parse_set_values("${setValue(bad)} ${setValue(ok=1)}"),
        kv(&[("ok", "1")])
    );
}
