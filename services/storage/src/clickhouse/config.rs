use clickhouse::Client;

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
    /// From `METERLINE_CLICKHOUSE_{URL,DATABASE,USER,PASSWORD}`, with local defaults.
    pub fn from_env() -> Self {
        let var = |k: &str, d: &str| std::env::var(k).unwrap_or_else(|_| d.to_owned());
        let url = var("METERLINE_CLICKHOUSE_URL", "http://127.0.0.1:8123");
        let lz4 = match var("METERLINE_CLICKHOUSE_LZ4", "auto").as_str() {
            "off" | "0" | "false" => false,
            "on" | "1" | "true" => true,
            _ => !is_loopback(&url),
        };
        Self {
            url,
            database: var("METERLINE_CLICKHOUSE_DATABASE", "meterline"),
            user: var("METERLINE_CLICKHOUSE_USER", "default"),
            password: var("METERLINE_CLICKHOUSE_PASSWORD", ""),
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
    use super::is_loopback;

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
