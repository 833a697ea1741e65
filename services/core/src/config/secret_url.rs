//! Connection strings carry passwords (`postgres://user:pw@host/db`), and
//! configs are printed (`Debug`) in logs and panics. A `SecretUrl` prints
//! with its password replaced, so no config can leak one by being logged.

use std::fmt;

/// A connection URL whose password never prints.
#[derive(Clone, PartialEq, Eq)]
pub struct SecretUrl(String);

impl SecretUrl {
    pub fn new(url: impl Into<String>) -> Self {
        Self(url.into())
    }

    /// The URL itself, password included: for connecting, never for logs.
    pub fn expose(&self) -> &str {
        &self.0
    }

    /// The URL with its password (if any) replaced by `***`.
    pub fn redacted(&self) -> String {
        let Some((scheme, rest)) = self.0.split_once("://") else { return self.0.clone() };
        // The user info ends at the last '@' before the path: a password may
        // itself contain '@' if the client accepts it unencoded.
        let authority_end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
        let (authority, tail) = rest.split_at(authority_end);
        match authority.rsplit_once('@') {
            Some((user_info, host)) => match user_info.split_once(':') {
                Some((user, _password)) => format!("{scheme}://{user}:***@{host}{tail}"),
                None => self.0.clone(),
            },
            None => self.0.clone(),
        }
    }
}

impl fmt::Debug for SecretUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:?}", self.redacted())
    }
}

impl fmt::Display for SecretUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.redacted())
    }
}

#[cfg(test)]
mod tests {
    use super::SecretUrl;

    #[test]
    fn passwords_never_print() {
        let url = SecretUrl::new("postgres://app:s3cr%40t@db.internal:5432/meterline?sslmode=require");
        assert_eq!(url.redacted(), "postgres://app:***@db.internal:5432/meterline?sslmode=require");
        assert!(!format!("{url:?} {url}").contains("s3cr"));
        assert_eq!(url.expose(), "postgres://app:s3cr%40t@db.internal:5432/meterline?sslmode=require");
        let raw_at = SecretUrl::new("postgres://app:p@ss@db/x");
        assert_eq!(raw_at.redacted(), "postgres://app:***@db/x");
    }

    #[test]
    fn urls_without_a_password_print_as_they_are() {
        for u in ["postgres://postgres@127.0.0.1:5432/meterline", "http://127.0.0.1:8123", "not a url"] {
            assert_eq!(SecretUrl::new(u).redacted(), u);
        }
    }
}
