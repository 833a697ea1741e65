//! The price book a service prices with, loaded from Postgres and reloaded
//! periodically, so imported prices apply without a restart.

use std::sync::{Arc, RwLock};

use meterline_core::PriceBook;
use tokio::sync::watch;
use tracing::warn;

use super::{load_price_book, PgPool};
use crate::StorageError;

/// Reloads the price book periodically, so imported prices apply without a
/// restart. A failed reload keeps the book in use. `on_reload` gets the
/// number of entries (for a gauge).
async fn refresh_prices(
    pool: PgPool,
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
        match load_price_book(&pool).await {
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
    pool: PgPool,
    every: std::time::Duration,
    on_load: impl Fn(usize) + Send + 'static,
    stop: watch::Receiver<bool>,
) -> Result<LivePriceBook, StorageError> {
    let book = load_price_book(&pool).await?;
    on_load(book.len());
    if book.is_empty() {
        warn!("the price book is empty: every event will be unpriced");
    }
    let prices = Arc::new(RwLock::new(Arc::new(book)));
    tokio::spawn(refresh_prices(pool, prices.clone(), every, on_load, stop));
    Ok(prices)
}
