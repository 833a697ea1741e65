//! How a service learns it must stop: SIGINT (Ctrl-C) or SIGTERM, which
//! orchestrators send before they kill. Every binary uses this one future,
//! so every service drains the same way.

/// Resolves on SIGINT or SIGTERM. If no SIGTERM handler can be installed
/// (a restricted sandbox), only Ctrl-C stops the service, and it says so
/// instead of panicking at start-up.
pub async fn shutdown_signal() {
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(e) => {
                tracing::warn!(error = %e, "cannot listen for SIGTERM; only Ctrl-C stops the service");
                std::future::pending::<()>().await
            }
        }
    };
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = term => {}
    }
    tracing::info!("shutdown requested; finishing the work in hand");
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    #[tokio::test]
    async fn sigterm_resolves_it() {
        let signal = tokio::spawn(super::shutdown_signal());
        // Let the handler be installed before the signal is sent: once it
        // is, SIGTERM no longer kills the test process.
        tokio::time::sleep(Duration::from_millis(200)).await;
        // SAFETY: sends SIGTERM to this very process, whose handler is set.
        assert_eq!(unsafe { libc::kill(libc::getpid(), libc::SIGTERM) }, 0);
        tokio::time::timeout(Duration::from_secs(5), signal).await.expect("resolved on SIGTERM").unwrap();
    }
}
