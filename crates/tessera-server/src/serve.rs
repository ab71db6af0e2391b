//! The accept loop: HTTP/1.1 and HTTP/2 over hyper (optionally inside TLS) with handshake and
//! header-read timeouts and bounded header sizes, the peer address handed to handlers, and
//! graceful shutdown (stop accepting, let in-flight requests finish, up to a limit).

use std::future::Future;
use std::net::SocketAddr;
use std::time::Duration;

use axum::Router;
use axum::extract::ConnectInfo;
use hyper::body::Incoming;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto::Builder;
use hyper_util::server::graceful::GracefulShutdown;
use hyper_util::service::TowerToHyperService;
use tokio::net::TcpListener;
use tokio_rustls::TlsAcceptor;
use tower::ServiceExt as _;

/// Connection-level limits.
#[derive(Debug, Clone, Copy)]
pub struct ServeOptions {
    /// Longest a client may take to send its request headers.
    pub header_timeout: Duration,
    /// Longest to wait for in-flight requests after the shutdown signal.
    pub shutdown_timeout: Duration,
}

/// Largest header block accepted (HTTP/1 read buffer, HTTP/2 header list).
const MAX_HEADER_BYTES: usize = 32 * 1024;

/// Serves `router` on `listener` (through `tls` if given) until `shutdown` completes, then
/// drains connections.
pub async fn serve(
    listener: TcpListener,
    router: Router,
    tls: Option<TlsAcceptor>,
    options: ServeOptions,
    shutdown: impl Future<Output = ()>,
) {
    let mut builder = Builder::new(TokioExecutor::new());
    builder
        .http1()
        .timer(TokioTimer::new())
        .header_read_timeout(options.header_timeout)
        .max_buf_size(MAX_HEADER_BYTES);
    builder.http2().timer(TokioTimer::new()).max_header_list_size(MAX_HEADER_BYTES as u32);
    let graceful = GracefulShutdown::new();
    let mut connections = tokio::task::JoinSet::new();
    tokio::pin!(shutdown);
    loop {
        // Reap finished connection tasks so the set only holds live ones.
        while connections.try_join_next().is_some() {}
        let (stream, peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(e) => {
                    // Out of file descriptors and the like: back off instead of spinning.
                    tracing::warn!("accept failed: {e}");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
            () = &mut shutdown => break,
        };
        let _ = stream.set_nodelay(true);
        let service = router.clone().map_request(move |mut request: hyper::Request<Incoming>| {
            request.extensions_mut().insert(ConnectInfo::<SocketAddr>(peer));
            request
        });
        let service = TowerToHyperService::new(service);
        let (builder, watcher, tls) = (builder.clone(), graceful.watcher(), tls.clone());
        connections.spawn(async move {
            let result = match tls {
                None => {
                    let connection = builder.serve_connection(TokioIo::new(stream), service);
                    watcher.watch(connection.into_owned()).await
                }
                Some(acceptor) => {
                    // A client gets as long for the handshake as for its request headers.
                    let handshake =
                        tokio::time::timeout(options.header_timeout, acceptor.accept(stream));
                    let stream = match handshake.await {
                        Ok(Ok(stream)) => stream,
                        Ok(Err(e)) => {
                            tracing::debug!(%peer, "TLS handshake failed: {e}");
                            return;
                        }
                        Err(_) => {
                            tracing::debug!(%peer, "TLS handshake timed out");
                            return;
                        }
                    };
                    let connection = builder.serve_connection(TokioIo::new(stream), service);
                    watcher.watch(connection.into_owned()).await
                }
            };
            if let Err(e) = result {
                tracing::debug!(%peer, "connection ended with an error: {e}");
            }
        });
    }
    drop(listener);
    tokio::select! {
        () = graceful.shutdown() => tracing::info!("all connections closed"),
        () = tokio::time::sleep(options.shutdown_timeout) => {
            tracing::warn!(
                connections = connections.len(),
                "shutdown timeout: dropping connections with requests still in flight"
            );
            connections.abort_all();
        }
    }
    // Wait for aborted tasks to unwind, so nothing holds the stores when they close.
    while connections.join_next().await.is_some() {}
}
