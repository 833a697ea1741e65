//! Reading settings from the environment, one rule for every service: a
//! variable that is unset *or empty* takes its default (compose files and
//! shells often export `VAR=` to mean "nothing set"), and a value that does
//! not parse is an error naming the variable, never a silent default.
//!
//! The lookup is a function, so tests pass a map instead of mutating the
//! process environment, which every test thread shares.

use std::fmt;
use std::str::FromStr;
use std::sync::Arc;

/// A setting that is present but unusable, naming the variable to fix.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{var}={value:?} is invalid: {reason}")]
pub struct EnvError {
    pub var: String,
    pub value: String,
    pub reason: String,
}

/// A variable's value by name.
type Lookup = dyn Fn(&str) -> Option<String> + Send + Sync;

/// Where settings come from: the process environment, or a map in tests.
#[derive(Clone)]
pub struct Env {
    lookup: Arc<Lookup>,
}

impl fmt::Debug for Env {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Values may be secrets; never print them.
        f.write_str("Env")
    }
}

impl Env {
    /// The process environment.
    pub fn process() -> Self {
        Self::from_lookup(|k| std::env::var(k).ok())
    }

    /// Any lookup function.
    pub fn from_lookup(lookup: impl Fn(&str) -> Option<String> + Send + Sync + 'static) -> Self {
        Self { lookup: Arc::new(lookup) }
    }

    /// Exactly these variables (tests).
    pub fn from_pairs(pairs: &[(&str, &str)]) -> Self {
        let map: std::collections::HashMap<String, String> = pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
        Self::from_lookup(move |k| map.get(k).cloned())
    }

    /// The value of `var`, if set and not empty.
    pub fn get(&self, var: &str) -> Option<String> {
        (self.lookup)(var).filter(|v| !v.is_empty())
    }

    /// The value of `var`, or `default`.
    pub fn string(&self, var: &str, default: &str) -> String {
        self.get(var).unwrap_or_else(|| default.to_owned())
    }

    /// `var` parsed (surrounding blanks ignored), if set.
    pub fn parse_opt<T>(&self, var: &str) -> Result<Option<T>, EnvError>
    where
        T: FromStr,
        T::Err: fmt::Display,
    {
        let Some(value) = self.get(var) else { return Ok(None) };
        match value.trim().parse() {
            Ok(v) => Ok(Some(v)),
            Err(e) => Err(EnvError { var: var.to_owned(), reason: e.to_string(), value }),
        }
    }

    /// `var` parsed, or `default` if unset.
    pub fn parse<T>(&self, var: &str, default: T) -> Result<T, EnvError>
    where
        T: FromStr,
        T::Err: fmt::Display,
    {
        Ok(self.parse_opt(var)?.unwrap_or(default))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unset_and_empty_take_the_default() {
        let env = Env::from_pairs(&[("A", ""), ("B", "x")]);
        assert_eq!(env.string("A", "d"), "d");
        assert_eq!(env.string("MISSING", "d"), "d");
        assert_eq!(env.string("B", "d"), "x");
        assert_eq!(env.get("A"), None);
    }

    #[test]
    fn numbers_parse_with_blanks_and_bad_ones_name_their_variable() {
        let env = Env::from_pairs(&[("N", " 42 "), ("BAD", "soon")]);
        assert_eq!(env.parse("N", 1u32), Ok(42));
        assert_eq!(env.parse("MISSING", 7u64), Ok(7));
        let err = env.parse("BAD", 1u32).unwrap_err();
        assert_eq!(err.var, "BAD");
        assert!(err.to_string().starts_with("BAD=\"soon\" is invalid"), "{err}");
        assert_eq!(env.parse_opt::<u16>("MISSING"), Ok(None));
    }

    #[test]
    fn debug_prints_no_values() {
        let env = Env::from_pairs(&[("SECRET", "hunter2")]);
        assert!(!format!("{env:?}").contains("hunter2"));
    }
}
