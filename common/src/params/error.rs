//! Errors of parameter resolution, time expressions and rendering.

use thiserror::Error;

/// Everything that can go wrong while resolving or rendering parameters.
///
/// Each message starts with a stable code (`ORCA-PARAM-…`) and names the
/// parameter or expression at fault.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum ParamError {
    /// A date pattern inside `$[...]` uses a letter Orca does not support,
    /// or has an unterminated quote.
    #[error("ORCA-PARAM-TIME-PATTERN: time expression $[{expr}]: {problem}")]
    InvalidTimePattern {
        /// The expression, without `$[` `]`.
        expr: String,
        /// What is wrong with the pattern.
        problem: PatternProblem,
    },
    /// `$[name(...)]` names a function Orca does not know.
    #[error(
        "ORCA-PARAM-TIME-FUNCTION: time expression $[{expr}]: unknown function {function:?}; \
         known: add_months, this_day, last_day, year_week, month_first_day, month_last_day, \
         week_first_day, week_last_day, month_begin, month_end, week_begin, week_end"
    )]
    UnknownTimeFunction {
        /// The expression, without `$[` `]`.
        expr: String,
        /// The unknown function name.
        function: String,
    },
    /// A known time function got the wrong number or kind of arguments.
    #[error("ORCA-PARAM-TIME-ARGS: time expression $[{expr}]: {function} expects {expected}")]
    TimeFunctionArgs {
        /// The expression, without `$[` `]`.
        expr: String,
        /// The function name.
        function: &'static str,
        /// The expected argument shape, e.g. `(format,offset)`.
        expected: &'static str,
    },
    /// The offset arithmetic (`-1`, `+7*2`, `-1/24/60`) is not valid integer
    /// arithmetic, divides by zero or overflows.
    #[error("ORCA-PARAM-TIME-OFFSET: time expression $[{expr}]: invalid offset {offset:?}")]
    InvalidOffset {
        /// The expression, without `$[` `]`.
        expr: String,
        /// The offending offset text.
        offset: String,
    },
    /// The computed date falls outside the supported calendar range.
    #[error("ORCA-PARAM-TIME-RANGE: time expression $[{expr}]: date out of range")]
    DateOutOfRange {
        /// The expression, without `$[` `]`.
        expr: String,
    },
    /// Parameter values reference each other in a loop.
    #[error("ORCA-PARAM-CYCLE: parameters reference each other in a cycle: {}", chain.join(" -> "))]
    Cycle {
        /// The parameters on the cycle, first one repeated at the end.
        chain: Vec<String>,
    },
    /// An error inside the value of a parameter.
    #[error("ORCA-PARAM-VALUE: in parameter {param:?}: {source}")]
    InValue {
        /// The parameter whose value failed to resolve.
        param: String,
        /// What failed.
        #[source]
        source: Box<ParamError>,
    },
    /// A resolved value grew past the size limit (e.g. exponential
    /// `${a}${a}` chains).
    #[error("ORCA-PARAM-TOO-LARGE: parameter {param:?} resolves to more than {limit} bytes")]
    ValueTooLarge {
        /// The parameter.
        param: String,
        /// The limit in bytes.
        limit: usize,
    },
    /// A value holds a NUL byte, which cannot travel in an environment
    /// variable.
    #[error("ORCA-PARAM-NUL: parameter {param:?} contains a NUL byte")]
    NulByte {
        /// The parameter.
        param: String,
    },
}

/// Why a date pattern was rejected.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum PatternProblem {
    /// A pattern letter with no supported meaning (e.g. `Y`, `w`, `z`).
    #[error("unsupported pattern letter {0:?}")]
    UnsupportedLetter(char),
    /// A `'` quote that is never closed.
    #[error("unterminated quote")]
    UnterminatedQuote,
    /// The expression is empty.
    #[error("empty expression")]
    Empty,
}

impl ParamError {
    /// The stable code of this error, e.g. `ORCA-PARAM-CYCLE`.
    pub fn code(&self) -> &'static str {
        match self {
            ParamError::InvalidTimePattern { .. } => "ORCA-PARAM-TIME-PATTERN",
            ParamError::UnknownTimeFunction { .. } => "ORCA-PARAM-TIME-FUNCTION",
            ParamError::TimeFunctionArgs { .. } => "ORCA-PARAM-TIME-ARGS",
            ParamError::InvalidOffset { .. } => "ORCA-PARAM-TIME-OFFSET",
            ParamError::DateOutOfRange { .. } => "ORCA-PARAM-TIME-RANGE",
            ParamError::Cycle { .. } => "ORCA-PARAM-CYCLE",
            ParamError::InValue { .. } => "ORCA-PARAM-VALUE",
            ParamError::ValueTooLarge { .. } => "ORCA-PARAM-TOO-LARGE",
            ParamError::NulByte { .. } => "ORCA-PARAM-NUL",
        }
    }
}
