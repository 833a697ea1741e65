//! What every usage-event consumer needs besides the pure intake in core:
//! the codec, with extra writer schemas from a directory. Shared by the
//! rollup and the budget service. (Their price book, kept fresh from
//! Postgres, is `meterline_storage::postgres::live_price_book`.)

use meterline_core::avro::Codec;
use tracing::info;

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
