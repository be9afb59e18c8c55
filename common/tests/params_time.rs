//! Time expressions `$[...]`, checked against fixed schedule times.

use chrono::{NaiveDate, NaiveDateTime};
use orca_common::params::{ParamError, PatternProblem, eval_time_expr};

fn at(y: i32, m: u32, d: u32, hh: u32, mm: u32, ss: u32) -> NaiveDateTime {
    NaiveDate::from_ymd_opt(y, m, d)
        .and_then(|d| d.and_hms_opt(hh, mm, ss))
        .expect("valid test date")
}

fn ev(expr: &str, base: NaiveDateTime) -> String {
    eval_time_expr(expr, base).unwrap_or_else(|e| panic!("{expr}: {e}"))
}

/// DolphinScheduler's own test date: Friday 2022-08-26 00:00:00.
fn ds_base() -> NaiveDateTime {
    at(2022, 8, 26, 0, 0, 0)
}

#[test]
fn plain_patterns_format_the_schedule_time() {
    let b = at(2022, 8, 26, 13, 4, 5);
    assert_eq!(ev("yyyyMMdd", b), "20220826");
    assert_eq!(ev("yyyy-MM-dd", b), "2022-08-26");
    assert_eq!(ev("yyyyMMddHHmmss", b), "20220826130405");
    assert_eq!(ev("HHmmss", b), "130405");
    assert_eq!(ev("yyyy-MM-dd HH:mm:ss", b), "2022-08-26 13:04:05");
    assert_eq!(ev("yyyy/M/d 'at' H", b), "2022/8/26 at 13");
}

#[test]
fn day_offsets_cross_month_and_leap_boundaries() {
    let b = at(2024, 3, 1, 0, 30, 0);
    assert_eq!(ev("yyyyMMdd-1", b), "20240229");
    assert_eq!(ev("yyyyMMdd+1", b), "20240302");
    assert_eq!(ev("yyyy-MM-dd+7", b), "2024-03-08");
    assert_eq!(ev("yyyyMMdd-7*2", b), "20240216");
    assert_eq!(ev("yyyyMMdd+3*7", b), "20240322");
    assert_eq!(ev("yyyyMMdd-1", at(2023, 3, 1, 0, 0, 0)), "20230228");
    assert_eq!(ev("yyyyMMdd+1", at(2022, 12, 31, 0, 0, 0)), "20230101");
}

#[test]
fn fraction_of_day_offsets_shift_hours_and_minutes() {
    let b = at(2024, 3, 1, 0, 30, 0);
    assert_eq!(ev("HHmmss-1/24", b), "233000");
    assert_eq!(ev("yyyyMMddHHmmss-1/24", b), "20240229233000");
    assert_eq!(ev("yyyyMMddHHmmss+3/24", b), "20240301033000");
    assert_eq!(ev("yyyyMMddHHmmss-1/24/60", b), "20240301002900");
    assert_eq!(ev("yyyyMMddHHmmss+90/24/60", b), "20240301020000");
    assert_eq!(ev("yyyy-MM-dd HH:mm-31/24/60", b), "2024-02-29 23:59");
}

#[test]
fn a_dash_not_followed_by_a_digit_is_part_of_the_pattern() {
    let b = ds_base();
    assert_eq!(ev("yyyy-MM-dd", b), "2022-08-26");
    assert_eq!(ev("yyyy-MM-dd-1", b), "2022-08-25");
    assert_eq!(ev("yyyy-MM-dd HH:mm:ss", b), "2022-08-26 00:00:00");
}

#[test]
fn add_months_clamps_to_month_end() {
    assert_eq!(
        ev("add_months(yyyyMMdd,1)", at(2023, 1, 31, 0, 0, 0)),
        "20230228"
    );
    assert_eq!(
        ev("add_months(yyyyMMdd,1)", at(2024, 1, 31, 0, 0, 0)),
        "20240229"
    );
    assert_eq!(
        ev("add_months(yyyyMMdd,-1)", at(2024, 3, 31, 0, 0, 0)),
        "20240229"
    );
    assert_eq!(ev("add_months(yyyy-MM-dd,-1)", ds_base()), "2022-07-26");
    assert_eq!(
        ev("add_months(yyyyMMdd,12*2)", at(2024, 2, 29, 0, 0, 0)),
        "20260228"
    );
    assert_eq!(ev("add_months(yyyyMMdd,-12)", ds_base()), "20210826");
    assert_eq!(
        ev("add_months(yyyyMMddHHmm,1)", at(2024, 1, 31, 9, 15, 0)),
        "202402290915"
    );
}

#[test]
fn business_day_functions_match_dolphinscheduler() {
    let b = ds_base();
    assert_eq!(ev("this_day(yyyy-MM-dd)", b), "2022-08-26");
    assert_eq!(ev("this_day(yyyyMMdd)", b), "20220826");
    assert_eq!(ev("last_day(yyyy-MM-dd)", b), "2022-08-25");
    assert_eq!(
        ev("last_day(yyyyMMdd)", at(2024, 3, 1, 0, 0, 0)),
        "20240229"
    );
    assert_eq!(ev("month_first_day(yyyy-MM-dd,-1)", b), "2022-07-01");
    assert_eq!(ev("month_first_day(yyyyMMdd,0)", b), "20220801");
    assert_eq!(
        ev("month_last_day(yyyy-MM-dd,-1)", at(2022, 8, 28, 0, 0, 0)),
        "2022-07-31"
    );
    assert_eq!(
        ev("month_last_day(yyyyMMdd,0)", at(2024, 2, 10, 0, 0, 0)),
        "20240229"
    );
    assert_eq!(
        ev("month_last_day(yyyyMMdd,-1)", at(2024, 3, 31, 0, 0, 0)),
        "20240229"
    );
    assert_eq!(
        ev("month_last_day(yyyyMMdd,1)", at(2023, 1, 31, 0, 0, 0)),
        "20230228"
    );
    assert_eq!(ev("week_first_day(yyyy-MM-dd,0)", b), "2022-08-22");
    assert_eq!(ev("week_first_day(yyyy-MM-dd,-1)", b), "2022-08-15");
    assert_eq!(ev("week_last_day(yyyy-MM-dd,0)", b), "2022-08-28");
    assert_eq!(ev("week_last_day(yyyyMMdd,-1)", b), "20220821");
    // Sunday belongs to the week that started the Monday before.
    assert_eq!(
        ev("week_first_day(yyyyMMdd,0)", at(2022, 8, 28, 0, 0, 0)),
        "20220822"
    );
}

#[test]
fn day_offset_boundary_functions() {
    let b = ds_base();
    assert_eq!(ev("month_begin(yyyy-MM-dd,1)", b), "2022-08-02");
    assert_eq!(ev("month_end(yyyy-MM-dd,-1)", b), "2022-08-30");
    assert_eq!(ev("week_begin(yyyy-MM-dd,0)", b), "2022-08-22");
    assert_eq!(ev("week_end(yyyy-MM-dd,1)", b), "2022-08-29");
}

#[test]
fn year_week_numbers_weeks_with_four_day_rule() {
    let b = ds_base();
    assert_eq!(ev("year_week(yyyy-MM-dd)", b), "2022-34");
    assert_eq!(ev("year_week(yyyyMMdd)", b), "202234");
    assert_eq!(ev("year_week(yyyy-MM-dd,5)", b), "2022-35");
    assert_eq!(ev("year_week(yyyyMMdd,5)", b), "202235");
    // ISO: 2021-01-01 is in week 53 of 2020; 2024-12-30 in week 1 of 2025.
    assert_eq!(
        ev("year_week(yyyy-MM-dd)", at(2021, 1, 1, 0, 0, 0)),
        "2020-53"
    );
    assert_eq!(
        ev("year_week(yyyy-MM-dd)", at(2024, 12, 30, 0, 0, 0)),
        "2025-01"
    );
    assert_eq!(ev("year_week(yyyyMMdd)", at(2024, 1, 1, 0, 0, 0)), "202401");
}

#[test]
fn invalid_expressions_are_errors_naming_the_expression() {
    let b = ds_base();
    let err = |e: &str| eval_time_expr(e, b).expect_err(e);

    let e = err("YYYYMMdd");
    assert_eq!(
        e,
        ParamError::InvalidTimePattern {
            expr: "YYYYMMdd".into(),
            problem: PatternProblem::UnsupportedLetter('Y')
        }
    );
    assert!(e.to_string().starts_with("ORCA-PARAM-TIME-PATTERN"), "{e}");
    assert!(e.to_string().contains("$[YYYYMMdd]"), "{e}");

    let e = err("next_day(yyyyMMdd)");
    assert_eq!(e.code(), "ORCA-PARAM-TIME-FUNCTION");
    assert!(e.to_string().contains("next_day"), "{e}");

    assert_eq!(err("add_months(yyyyMMdd)").code(), "ORCA-PARAM-TIME-ARGS");
    assert_eq!(err("year_week(yyyyMMdd,9)").code(), "ORCA-PARAM-TIME-ARGS");
    assert_eq!(err("yyyyMMdd-1/0").code(), "ORCA-PARAM-TIME-OFFSET");
    assert_eq!(err("yyyyMMdd-1x").code(), "ORCA-PARAM-TIME-OFFSET");
    assert_eq!(
        err("add_months(yyyyMMdd,one)").code(),
        "ORCA-PARAM-TIME-OFFSET"
    );
    assert_eq!(
        err("add_months(yyyyMMdd,99999999)").code(),
        "ORCA-PARAM-TIME-RANGE"
    );
    assert_eq!(err("yyyyMMdd+999999999999").code(), "ORCA-PARAM-TIME-RANGE");
    assert_eq!(
        err("yyyyMMdd+99999999999999999").code(),
        "ORCA-PARAM-TIME-OFFSET"
    );
    assert_eq!(err("yyyy'MM").code(), "ORCA-PARAM-TIME-PATTERN");
    assert_eq!(err("").code(), "ORCA-PARAM-TIME-PATTERN");
    assert_eq!(err("yyyyww").code(), "ORCA-PARAM-TIME-PATTERN");
}
