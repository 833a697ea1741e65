//! What every usage-event consumer needs besides the pure intake in core:
//! the codec (with extra writer schemas from a directory) and a price book
//! kept fresh from Postgres. Shared by the rollup and the budget service.

use std::sync::{Arc, RwLock};

use meterline_core::avro::Codec;
use meterline_core::PriceBook;
use meterline_storage::postgres;
use tokio::sync::watch;
use tracing::{info, warn};

/// The built-in codec plus every `*.avsc` writer schema in `dir`.
pub fn codec(dir: Option<&str>) -> Result<Codec, String> {
    let mut codec = Codec::new();
    let Some(dir) = dir else { return Ok(codec) };
    let entries = std::fs::read_dir(dir).map_err(|e| format!("{dir}: {e}"))?;
    for entry in entries {
        let path = entry.map_err(|e| format!("{dir}: {e}"))?.path();
        if path.extension().is_some_and(|e| e == "avsc") {
            let json = std::fs::read_to_string(&path).map_err(|e| format!("{}: {e}", path.display()))?;
            let fp = codec.register_writer_schema(&json).map_err(|e| format!("{}: {e}", path.display()))?;
            info!(schema = %path.display(), fingerprint = format!("{fp:016x}"), "accepting extra writer schema");
        }
    }
    Ok(codec)
}

/// Reloads the price book periodically, so imported prices apply without a
/// restart. A failed reload keeps the book in use. `on_reload` gets the
/// number of entries (for a gauge).
async fn refresh_prices(
    pool: postgres::PgPool,
    prices: Arc<RwLock<Arc<PriceBook>>>,
    every: std::time::Duration,
    on_reload: impl Fn(usize) + Send + 'static,
    mut stop: watch::Receiver<bool>,
) {
    loop {
        tokio::select! {
            _ = tokio::time::sleep(every) => {}
            _ = stop.changed() => return,
        }
        match postgres::load_price_book(&pool).await {
            Ok(book) => {
                on_reload(book.len());
                *prices.write().unwrap_or_else(|e| e.into_inner()) = Arc::new(book);
            }
            Err(e) => warn!(error = %e, "price book reload failed; keeping the current one"),
        }
    }
}

/// The price book shared by a service's batches.
pub type LivePriceBook = Arc<RwLock<Arc<PriceBook>>>;

/// Loads the price book, reports its size through `on_load` (now and on
/// every reload) and keeps it fresh every `every` until `stop`.
pub async fn live_price_book(
    pool: postgres::PgPool,
    every: std::time::Duration,
    on_load: impl Fn(usize) + Send + 'static,
    stop: watch::Receiver<bool>,
) -> Result<LivePriceBook, meterline_storage::StorageError> {
    let book = postgres::load_price_book(&pool).await?;
    on_load(book.len());
    if book.is_empty() {
        warn!("the price book is empty: every event will be unpriced");
    }
    let prices = Arc::new(RwLock::new(Arc::new(book)));
    tokio::spawn(refresh_prices(pool, prices.clone(), every, on_load, stop));
    Ok(prices)
}
