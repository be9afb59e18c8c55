//! What every Orca server process exposes to operators: Prometheus metrics
//! and a health endpoint, plus signal handling.

use std::net::SocketAddr;
use std::sync::{Arc, OnceLock};

use anyhow::Context;
use axum::Router;
use axum::http::StatusCode;
use axum::routing::get;
use metrics_exporter_prometheus::PrometheusHandle;

/// The process-wide Prometheus recorder (installed once).
pub fn metrics_handle() -> Option<PrometheusHandle> {
    static HANDLE: OnceLock<Option<PrometheusHandle>> = OnceLock::new();
    HANDLE
        .get_or_init(|| {
            metrics_exporter_prometheus::PrometheusBuilder::new()
                .install_recorder()
                .ok()
        })
        .clone()
}

/// Health as (HTTP status, body) — e.g. a master answers 200 "leader" or
/// 200 "standby", and 503 when it cannot work.
pub type HealthFn = Arc<dyn Fn() -> (StatusCode, String) + Send + Sync>;

/// Serves `/health` and `/metrics` on `listen` in the background.
pub async fn serve_ops(listen: SocketAddr, health: HealthFn) -> anyhow::Result<SocketAddr> {
    let metrics = metrics_handle();
    let app = Router::new()
        .route(
            "/health",
            get(move || {
                let h = health.clone();
                async move { h() }
            }),
        )
        .route(
            "/metrics",
            get(move || {
                let m = metrics.clone();
                async move { m.map(|m| m.render()).unwrap_or_default() }
            }),
        );
    let listener = tokio::net::TcpListener::bind(listen)
        .await
        .with_context(|| format!("cannot listen on {listen} for /health and /metrics"))?;
    let addr = listener.local_addr()?;
    tokio::spawn(async move {
        if let Err(e) = axum::serve(listener, app).await {
            tracing::error!(error = %e, "ops HTTP server failed");
        }
    });
    Ok(addr)
}

/// Resolves on Ctrl-C or SIGTERM.
pub async fn shutdown_signal() {
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = term => {}
    }
}

/// This host's name, for default ids and advertised addresses.
pub fn hostname() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|s| s.trim().to_string())
        .ok()
        .filter(|s| !s.is_empty())
        .unwrap_or_else(|| "localhost".into())
}
