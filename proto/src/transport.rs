//! The transport under the generated clients: a gRPC channel, or a direct
//! call into a server of the same process.
//!
//! When a master and a worker run in one process (`orca standalone`), every
//! hop would otherwise cross loopback TCP and HTTP/2 twice (the report, the
//! next dispatch). [`LocalRoutes`] maps a server's advertised URL to its
//! generated service object; a client for that URL then calls the service
//! directly with the same protobuf-encoded request, so handlers, limits and
//! errors are those of the real server. URLs not registered (another
//! process) go over [`Channel`] as before.

use std::collections::HashMap;
use std::convert::Infallible;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tonic::body::Body;
use tonic::codegen::http::{Request, Response};
use tonic::codegen::{BoxFuture, Context, Poll, Service, StdError};
use tonic::transport::Channel;

type Call = dyn Fn(Request<Body>) -> BoxFuture<Response<Body>, StdError> + Send + Sync;

/// A server of this process, called directly.
#[derive(Clone)]
pub struct LocalService {
    call: Arc<Call>,
    open: Arc<AtomicBool>,
    timeout: Option<Duration>,
}

impl LocalService {
    /// Wraps a generated server (`XxxServer::new(..)`, with its limits).
    pub fn new<S>(server: S) -> LocalService
    where
        S: Service<Request<Body>, Response = Response<Body>, Error = Infallible>
            + Clone
            + Send
            + Sync
            + 'static,
        S::Future: Send + 'static,
    {
        let call = move |req: Request<Body>| -> BoxFuture<Response<Body>, StdError> {
            let mut server = server.clone();
            Box::pin(async move { Ok(server.call(req).await?) })
        };
        LocalService {
            call: Arc::new(call),
            open: Arc::new(AtomicBool::new(true)),
            timeout: None,
        }
    }

    /// This service for a caller whose calls fail when no response comes
    /// within `timeout`, as with `Channel`'s timeout.
    pub fn with_timeout(mut self, timeout: Duration) -> LocalService {
        self.timeout = Some(timeout);
        self
    }
}

/// What a generated client runs on.
#[derive(Clone)]
pub enum Transport {
    Remote(Channel),
    Local(LocalService),
}

impl Service<Request<Body>> for Transport {
    type Response = Response<Body>;
    type Error = StdError;
    type Future = BoxFuture<Response<Body>, StdError>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        match self {
            Transport::Remote(ch) => ch.poll_ready(cx).map_err(Into::into),
            Transport::Local(_) => Poll::Ready(Ok(())),
        }
    }

    fn call(&mut self, req: Request<Body>) -> Self::Future {
        match self {
            Transport::Remote(ch) => {
                let call = ch.call(req);
                Box::pin(async move { call.await.map_err(Into::into) })
            }
            Transport::Local(local) => {
                if !local.open.load(Ordering::Acquire) {
                    // As a connection to a server that has stopped.
                    return Box::pin(async { Err("in-process server stopped".into()) });
                }
                let response = (local.call)(req);
                match local.timeout {
                    None => response,
                    Some(t) => Box::pin(async move {
                        tokio::time::timeout(t, response)
                            .await
                            .map_err(|_| -> StdError { "in-process call timed out".into() })?
                    }),
                }
            }
        }
    }
}

/// Servers of this process by advertised URL (shared by the components of
/// one process; empty elsewhere).
#[derive(Clone, Default)]
pub struct LocalRoutes {
    routes: Arc<Mutex<HashMap<String, LocalService>>>,
}

impl std::fmt::Debug for LocalRoutes {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let urls: Vec<String> = self.lock().keys().cloned().collect();
        f.debug_struct("LocalRoutes").field("urls", &urls).finish()
    }
}

impl LocalRoutes {
    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, LocalService>> {
        self.routes.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Serves `url` in-process until the returned guard is dropped (then
    /// calls fail as to a stopped server, and new clients go over the
    /// network again).
    pub fn register(&self, url: &str, service: LocalService) -> LocalRegistration {
        let open = service.open.clone();
        if let Some(old) = self.lock().insert(url.to_string(), service) {
            old.open.store(false, Ordering::Release);
        }
        LocalRegistration {
            routes: self.clone(),
            url: url.to_string(),
            open,
        }
    }

    /// The in-process server for `url`, if there is one.
    pub fn get(&self, url: &str) -> Option<LocalService> {
        self.lock().get(url).cloned()
    }
}

/// Keeps a server reachable in-process; dropping it stops that.
pub struct LocalRegistration {
    routes: LocalRoutes,
    url: String,
    open: Arc<AtomicBool>,
}

impl Drop for LocalRegistration {
    fn drop(&mut self) {
        self.open.store(false, Ordering::Release);
        let mut routes = self.routes.lock();
        if routes
            .get(&self.url)
            .is_some_and(|s| Arc::ptr_eq(&s.open, &self.open))
        {
            routes.remove(&self.url);
        }
    }
}
