//! Orca's API server: REST under `/api/v1` over the metadata store.
//!
//! API boundary: only this crate knows HTTP and JSON request shapes. It
//! writes commands and nudges the leader; it never runs tasks.
//! Users authenticate with bearer tokens (login sessions or personal access
//! tokens, [`auth`]); each route declares what it needs in the route table
//! and one layer enforces it ([`authz`]).

pub mod audit;
pub mod auth;
pub mod authz;
pub mod error;
pub mod grpc;
pub mod nudge;
pub mod openapi;
pub mod page;
pub mod routes;
pub mod tls;

use std::net::SocketAddr;
use std::sync::Arc;

use axum::Router;
use axum::routing::get;
use orca_store::Store;
use tokio::net::TcpListener;
use tokio::sync::watch;

pub use error::ApiError;

/// Wakes the leader after a command was written.
pub type Nudger = Arc<dyn Fn() + Send + Sync>;

#[derive(Clone)]
pub struct AppState {
    pub store: Store,
    pub nudge: Nudger,
    pub worker_clients: routes::logs::WorkerLogClients,
    pub metrics: Option<metrics_exporter_prometheus::PrometheusHandle>,
    /// The cluster registry, for `GET /workers` and `GET /masters`; `None`
    /// answers them 502.
    pub registry: Option<Arc<dyn orca_common::registry::Registry>>,
}

/// The full router: `/health`, `/metrics`, the API reference page
/// `/api/docs` (of [`openapi::document`]), and `/api/v1` where every route
/// is authenticated and authorised by its rule in the route table
/// ([`routes::route_permissions`]).
pub fn router(state: AppState) -> Router {
    let api = routes::api_routes(&state)
        .layer(axum::middleware::map_response(error::problemize))
        .layer(axum::middleware::from_fn_with_state(
            state.clone(),
            audit::record,
        ));
    Router::new()
        .route("/health", get(|| async { "ok" }))
        .route("/metrics", get(metrics))
        .route("/api/docs", get(routes::docs::docs_page))
        .nest("/api/v1", api)
        .with_state(state)
}

async fn metrics(axum::extract::State(state): axum::extract::State<AppState>) -> String {
    state
        .metrics
        .as_ref()
        .map(|h| h.render())
        .unwrap_or_default()
}

/// A running API server.
pub struct ApiHandle {
    pub addr: SocketAddr,
    shutdown: watch::Sender<bool>,
    task: tokio::task::JoinHandle<()>,
}

impl ApiHandle {
    pub async fn shutdown(self) {
        let _ = self.shutdown.send(true);
        let _ = self.task.await;
    }
}

#[derive(Debug, thiserror::Error)]
#[error("ORCA-API-BIND: cannot listen on {addr}: {source}")]
pub struct BindError {
    pub addr: SocketAddr,
    pub source: std::io::Error,
}

/// Binds and serves the API in the background (plain HTTP).
pub async fn serve(listen: SocketAddr, state: AppState) -> Result<ApiHandle, BindError> {
    serve_with_tls(listen, state, None).await
}

/// Binds and serves the API in the background, over TLS when `tls` is
/// given (HTTP/1.1 and HTTP/2 by ALPN).
pub async fn serve_with_tls(
    listen: SocketAddr,
    state: AppState,
    tls: Option<&tls::ApiTls>,
) -> Result<ApiHandle, BindError> {
    let listener = TcpListener::bind(listen)
        .await
        .map_err(|source| BindError {
            addr: listen,
            source,
        })?;
    let addr = listener.local_addr().map_err(|source| BindError {
        addr: listen,
        source,
    })?;
    let (tx, mut rx) = watch::channel(false);
    let app = router(state);
    let shutdown = async move {
        let _ = rx.wait_for(|s| *s).await;
    };
    let task = match tls {
        None => tokio::spawn(async move {
            let res = axum::serve(listener, app)
                .with_graceful_shutdown(shutdown)
                .await;
            if let Err(e) = res {
                tracing::error!(error = %e, "API server failed");
            }
        }),
        Some(tls) => {
            let listener = tls::TlsListener::new(listener, tls).map_err(|source| BindError {
                addr: listen,
                source,
            })?;
            tokio::spawn(async move {
                let res = axum::serve(listener, app)
                    .with_graceful_shutdown(shutdown)
                    .await;
                if let Err(e) = res {
                    tracing::error!(error = %e, "API server failed");
                }
            })
        }
    };
    tracing::info!(%addr, tls = tls.is_some(), "API listening");
    Ok(ApiHandle {
        addr,
        shutdown: tx,
        task,
    })
}
