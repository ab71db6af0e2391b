//! The accept loop: HTTP/1.1 and HTTP/2 over hyper (optionally inside TLS) with handshake,
//! header-read (first request head, either protocol) and idle timeouts, bounded header sizes
//! and a cap on open connections, the peer address handed to handlers, and graceful shutdown
//! (stop accepting, let in-flight requests finish, up to a limit).

use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use axum::Router;
use axum::extract::ConnectInfo;
use hyper::body::Incoming;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto::Builder;
use hyper_util::server::graceful::GracefulShutdown;
use hyper_util::service::TowerToHyperService;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpListener;
use tokio::sync::{Notify, Semaphore};
use tokio_rustls::TlsAcceptor;
use tower::ServiceExt as _;

use crate::idle::IdleTimeout;

/// Connection-level limits.
#[derive(Debug, Clone, Copy)]
pub struct ServeOptions {
    /// Longest a client may take to send its request headers.
    pub header_timeout: Duration,
    /// Longest to wait for in-flight requests after the shutdown signal.
    pub shutdown_timeout: Duration,
    /// A connection with no traffic for this long is closed (more than the request timeout,
    /// so a slow request is never cut by it).
    pub idle_timeout: Duration,
    /// Most connections open at once; beyond it the server stops accepting until one closes.
    pub max_connections: usize,
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
    let slots = Arc::new(Semaphore::new(options.max_connections.max(1)));
    tokio::pin!(shutdown);
    loop {
        // Reap finished connection tasks so the set only holds live ones.
        while connections.try_join_next().is_some() {}
        let slot = tokio::select! {
            slot = slots.clone().acquire_owned() => match slot {
                Ok(slot) => slot,
                Err(_) => break,
            },
            () = &mut shutdown => break,
        };
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
        let first_request = Arc::new(Notify::new());
        let arrived = first_request.clone();
        let service = router.clone().map_request(move |mut request: hyper::Request<Incoming>| {
            arrived.notify_one();
            request.extensions_mut().insert(ConnectInfo::<SocketAddr>(peer));
            request
        });
        let service = TowerToHyperService::new(service);
        let (builder, watcher, tls) = (builder.clone(), graceful.watcher(), tls.clone());
        let (idle, header_timeout) = (options.idle_timeout, options.header_timeout);
        connections.spawn(async move {
            let _slot = slot;
            let result = match tls {
                None => {
                    let (stream, first_byte) = FirstByte::new(IdleTimeout::new(stream, idle));
                    let connection = builder.serve_connection(TokioIo::new(stream), service);
                    let connection = watcher.watch(connection.into_owned());
                    let first = (&*first_byte, &*first_request);
                    match first_request_within(header_timeout, first, connection).await {
                        Some(result) => result,
                        None => {
                            tracing::debug!(%peer, "no complete request head in time");
                            return;
                        }
                    }
                }
                Some(acceptor) => {
                    let stream = IdleTimeout::new(stream, idle);
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
                    let (stream, first_byte) = FirstByte::new(stream);
                    let connection = builder.serve_connection(TokioIo::new(stream), service);
                    let connection = watcher.watch(connection.into_owned());
                    let first = (&*first_byte, &*first_request);
                    match first_request_within(header_timeout, first, connection).await {
                        Some(result) => result,
                        None => {
                            tracing::debug!(%peer, "no complete request head in time");
                            return;
                        }
                    }
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

/// Drives `connection`, dropping it (`None`) unless, once its first byte has arrived
/// (`first.0` notified), a first request head follows (`first.1` notified) within `limit`.
/// Silence before the first byte is left to the idle timeout. hyper bounds HTTP/1 request
/// heads itself, but not the HTTP/2 preface or a first HEADERS frame, which a client could
/// otherwise send a byte at a time.
async fn first_request_within<F: Future>(
    limit: Duration,
    (first_byte, first_request): (&Notify, &Notify),
    connection: F,
) -> Option<F::Output> {
    tokio::pin!(connection);
    tokio::select! {
        output = &mut connection => return Some(output),
        () = first_byte.notified() => {}
    }
    tokio::select! {
        output = &mut connection => return Some(output),
        arrived = tokio::time::timeout(limit, first_request.notified()) => {
            if arrived.is_err() {
                return None;
            }
        }
    }
    Some(connection.await)
}

/// A stream that notifies once when its first byte has been read.
#[derive(Debug)]
struct FirstByte<S> {
    inner: S,
    notify: Option<Arc<Notify>>,
}

impl<S> FirstByte<S> {
    fn new(inner: S) -> (Self, Arc<Notify>) {
        let notify = Arc::new(Notify::new());
        (FirstByte { inner, notify: Some(notify.clone()) }, notify)
    }
}

impl<S: AsyncRead + Unpin> AsyncRead for FirstByte<S> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let before = buf.filled().len();
        let polled = Pin::new(&mut self.inner).poll_read(cx, buf);
        if buf.filled().len() > before
            && let Some(notify) = self.notify.take()
        {
            notify.notify_one();
        }
        polled
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for FirstByte<S> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        data: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write(cx, data)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }
}
