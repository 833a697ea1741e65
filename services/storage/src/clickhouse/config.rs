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
    /// LZ4 on the wire (`METERLINE_CLICKHOUSE_LZ4`, default on): worth it
    /// across a network, wasted CPU when ClickHouse is on the same host.
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
        Self {
            url: var("METERLINE_CLICKHOUSE_URL", "http://127.0.0.1:8123"),
            database: var("METERLINE_CLICKHOUSE_DATABASE", "meterline"),
            user: var("METERLINE_CLICKHOUSE_USER", "default"),
            password: var("METERLINE_CLICKHOUSE_PASSWORD", ""),
            lz4: !matches!(var("METERLINE_CLICKHOUSE_LZ4", "on").as_str(), "off" | "0" | "false"),
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
