//! The public gRPC API (`orca.v1.OrcaApi`, `proto/orca/v1/api.proto`): thin
//! adapters over the REST handlers of [`crate::routes`], with the same
//! authorisation as their routes in the route table — the bearer token is
//! read from the `authorization` metadata and checked with
//! [`crate::auth::authenticate`], and the project permission with
//! [`crate::authz`]'s rules. Served beside gRPC health
//! (`grpc.health.v1.Health`) and server reflection (v1 and v1alpha), so
//! `grpcurl` works without the `.proto` files.

mod access;
mod audit;
mod convert;
mod resources;
mod service;

use std::net::SocketAddr;

use orca_proto::v1::orca_api_server::OrcaApiServer;
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio_stream::wrappers::TcpListenerStream;
use tonic::{Code, Status};

use crate::AppState;
use crate::BindError;
use crate::auth::AuthError;
use crate::error::ApiError;

pub use service::GrpcApi;

/// The gRPC status of an API failure; the message starts with the stable
/// `ORCA-API-…` code.
pub fn status_of(e: AuthError) -> Status {
    let code = match &e {
        AuthError::Unauthenticated | AuthError::BadCredentials => Code::Unauthenticated,
        AuthError::Forbidden(_) => Code::PermissionDenied,
        AuthError::Api(api) => match api {
            ApiError::Unauthorized => Code::Unauthenticated,
            ApiError::NotFound { .. } => Code::NotFound,
            ApiError::Invalid(_) => Code::InvalidArgument,
            ApiError::Conflict(_) => Code::FailedPrecondition,
            ApiError::Unavailable(_) => Code::Unavailable,
            ApiError::Internal(_) => Code::Internal,
        },
    };
    let stable = match &e {
        AuthError::Api(api) => api.status_and_code().1,
        other => other.code(),
    };
    Status::new(code, format!("{stable}: {e}"))
}

impl From<ApiError> for Status {
    fn from(e: ApiError) -> Self {
        status_of(AuthError::Api(e))
    }
}

impl From<AuthError> for Status {
    fn from(e: AuthError) -> Self {
        status_of(e)
    }
}

/// A running gRPC API server.
pub struct GrpcHandle {
    pub addr: SocketAddr,
    shutdown: watch::Sender<bool>,
    task: tokio::task::JoinHandle<()>,
}

impl GrpcHandle {
    pub async fn shutdown(self) {
        let _ = self.shutdown.send(true);
        let _ = self.task.await;
    }
}

/// Binds `listen` and serves `orca.v1.OrcaApi`, gRPC health (SERVING) and
/// server reflection in the background (plain text).
pub async fn serve_grpc(listen: SocketAddr, state: AppState) -> Result<GrpcHandle, BindError> {
    serve_grpc_with_tls(listen, state, None).await
}

/// As [`serve_grpc`], over TLS when `tls` is given.
pub async fn serve_grpc_with_tls(
    listen: SocketAddr,
    state: AppState,
    tls: Option<&crate::tls::ApiTls>,
) -> Result<GrpcHandle, BindError> {
    let bind_err = |source| BindError {
        addr: listen,
        source,
    };
    let listener = TcpListener::bind(listen).await.map_err(bind_err)?;
    let addr = listener.local_addr().map_err(bind_err)?;
    let audit = audit::AuditLayer {
        state: state.clone(),
    };
    let api = OrcaApiServer::new(GrpcApi::new(state));
    let (health_reporter, health) = tonic_health::server::health_reporter();
    health_reporter
        .set_serving::<OrcaApiServer<GrpcApi>>()
        .await;
    let reflection = tonic_reflection::server::Builder::configure()
        .register_encoded_file_descriptor_set(orca_proto::API_FILE_DESCRIPTOR_SET)
        .build_v1()
        .map_err(|e| bind_err(std::io::Error::other(format!("reflection: {e}"))))?;
    let reflection_alpha = tonic_reflection::server::Builder::configure()
        .register_encoded_file_descriptor_set(orca_proto::API_FILE_DESCRIPTOR_SET)
        .build_v1alpha()
        .map_err(|e| bind_err(std::io::Error::other(format!("reflection: {e}"))))?;
    let mut builder = tonic::transport::Server::builder();
    if let Some(tls) = tls {
        builder = builder
            .tls_config(tls.tonic())
            .map_err(|e| bind_err(std::io::Error::other(format!("TLS: {e}"))))?;
    }
    let (tx, mut rx) = watch::channel(false);
    let task = tokio::spawn(async move {
        let res = builder
            .layer(audit)
            .add_service(health)
            .add_service(reflection)
            .add_service(reflection_alpha)
            .add_service(api)
            .serve_with_incoming_shutdown(TcpListenerStream::new(listener), async move {
                let _ = rx.wait_for(|s| *s).await;
            })
            .await;
        if let Err(e) = res {
            tracing::error!(error = %e, "gRPC API server failed");
        }
    });
    tracing::info!(%addr, tls = tls.is_some(), "gRPC API listening");
    Ok(GrpcHandle {
        addr,
        shutdown: tx,
        task,
    })
}
