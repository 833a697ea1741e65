use clickhouse::Client;
use meterline_core::config::{defaults, Env};

/// Where ClickHouse is and who we are there.
#[derive(Clone)]
pub struct ClickHouseConfig {
    /// HTTP interface, e.g. `http://127.0.0.1:8123`.
    pub url: String,
    pub database: String,
    pub user: String,
    /// Never logged (see the `Debug` impl).
    pub password: String,
    /// LZ4 on the wire (`METERLINE_CLICKHOUSE_LZ4`: `on`, `off`, or `auto`,
    /// the default: on unless the URL's host is a loopback address). Worth
    /// it across a network; on the same host it only spends CPU on both
    /// sides (the rollup's inserts took ~30 % longer with it).
    pub lz4: bool,
}

impl std::fmt::Debug for ClickHouseConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ClickHouseConfig")
            .field("url", &self.url)
            .field("database", &self.database)
            .field("user", &self.user)
            .finish_non_exhaustive()
    }
}

impl ClickHouseConfig {
    /// From `METERLINE_CLICKHOUSE_{URL,DATABASE,USER,PASSWORD,LZ4}` in the
    /// process environment, with local defaults.
    pub fn from_env() -> Self {
        Self::from(&Env::process())
    }

    /// From `METERLINE_CLICKHOUSE_*` in `env`. Credentials travel only in
    /// the client's `X-ClickHouse-User`/`-Key` headers: a `user:password@`
    /// written into the URL is taken out of it (URLs end up in logs, error
    /// messages and proxies' access logs) and used as the credentials,
    /// unless the variables name them.
    pub fn from(env: &Env) -> Self {
        let (url, url_user, url_password) = split_credentials(&env.string("METERLINE_CLICKHOUSE_URL", defaults::CLICKHOUSE_URL));
        let lz4 = match env.string("METERLINE_CLICKHOUSE_LZ4", "auto").as_str() {
            "off" | "0" | "false" => false,
            "on" | "1" | "true" => true,
            _ => !is_loopback(&url),
        };
        Self {
            database: env.string("METERLINE_CLICKHOUSE_DATABASE", defaults::CLICKHOUSE_DATABASE),
            user: env.get("METERLINE_CLICKHOUSE_USER").or(url_user).unwrap_or_else(|| defaults::CLICKHOUSE_USER.to_owned()),
            password: env.get("METERLINE_CLICKHOUSE_PASSWORD").or(url_password).unwrap_or_else(|| defaults::CLICKHOUSE_PASSWORD.to_owned()),
            url,
            lz4,
        }
    }

    /// A client bound to the configured database.
    pub fn client(&self) -> Client {
        self.server_client().with_database(&self.database)
    }

    /// A client with no database selected, for creating it.
    pub fn server_client(&self) -> Client {
        // Validation would use RowBinaryWithNamesAndTypes and settings that
        // ClickHouse 18.16 does not know; plain RowBinary works on both.
        Client::default()
            .with_url(&self.url)
            .with_user(&self.user)
            .with_password(&self.password)
            .with_validation(false)
            .with_compression(if self.lz4 { clickhouse::Compression::Lz4 } else { clickhouse::Compression::None })
    }
}

/// Splits `scheme://user:password@host...` into the URL without its user
/// info, and the user and password it named.
fn split_credentials(url: &str) -> (String, Option<String>, Option<String>) {
    let Some((scheme, rest)) = url.split_once("://") else { return (url.to_owned(), None, None) };
    let authority_end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    let (authority, tail) = rest.split_at(authority_end);
    let Some((user_info, host)) = authority.rsplit_once('@') else { return (url.to_owned(), None, None) };
    let (user, password) = match user_info.split_once(':') {
        Some((u, p)) => (u, Some(p.to_owned())),
        None => (user_info, None),
    };
    (format!("{scheme}://{host}{tail}"), Some(user.to_owned()).filter(|u| !u.is_empty()), password)
}

/// Whether an `http://host:port/...` URL points at this machine.
fn is_loopback(url: &str) -> bool {
    let rest = url.split_once("://").map_or(url, |(_, r)| r);
    let authority = rest.split('/').next().unwrap_or(rest);
    let authority = authority.rsplit_once('@').map_or(authority, |(_, a)| a);
    let host = match authority.strip_prefix('[') {
        Some(v6) => v6.split(']').next().unwrap_or(v6),
        None => authority.split(':').next().unwrap_or(authority),
    };
    host.eq_ignore_ascii_case("localhost") || host.parse::<std::net::IpAddr>().is_ok_and(|ip| ip.is_loopback())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn credentials_in_the_url_move_to_headers() {
        let c = ClickHouseConfig::from(&Env::from_pairs(&[("METERLINE_CLICKHOUSE_URL", "https://app:pw@ch.internal:8443/")]));
        assert_eq!((c.url.as_str(), c.user.as_str(), c.password.as_str()), ("https://ch.internal:8443/", "app", "pw"));
        let c = ClickHouseConfig::from(&Env::from_pairs(&[
            ("METERLINE_CLICKHOUSE_URL", "http://app:pw@ch:8123"),
            ("METERLINE_CLICKHOUSE_USER", "other"),
            ("METERLINE_CLICKHOUSE_PASSWORD", "secret"),
        ]));
        assert_eq!((c.url.as_str(), c.user.as_str(), c.password.as_str()), ("http://ch:8123", "other", "secret"));
        assert!(!format!("{c:?}").contains("secret"));
        let c = ClickHouseConfig::from(&Env::from_pairs(&[]));
        assert_eq!((c.url.as_str(), c.user.as_str(), c.password.as_str()), ("http://127.0.0.1:8123", "default", ""));
    }

    #[test]
    fn loopback_hosts_are_recognised() {
        for url in ["http://127.0.0.1:8123", "http://localhost:8123/", "http://[::1]:8123", "http://u:p@127.0.0.2:8123", "127.0.0.1:8123"] {
            assert!(is_loopback(url), "{url}");
        }
        for url in ["http://clickhouse:8123", "https://10.0.0.5:8443", "http://[2001:db8::1]:8123", "http://localhost.example.com"] {
            assert!(!is_loopback(url), "{url}");
        }
    }
}
