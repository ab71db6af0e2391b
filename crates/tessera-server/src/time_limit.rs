//! The per-request time limit (`server.request_timeout`), and whose fault it was when it
//! strikes: a client that has not finished sending its body gets 408 `request_timeout`; a
//! request the server was too slow to answer gets 503 `timeout`.

use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::task::{Context, Poll};
use std::time::Duration;

use axum::body::{Body, Bytes};
use axum::extract::Request;
use axum::response::{IntoResponse, Response};
use http_body::{Body as _, Frame, SizeHint};
use tessera_axum::ApiError;

/// Runs `handle` on `request` and answers within `limit` or with a timeout problem.
pub async fn within<F>(
    limit: Duration,
    request: Request,
    handle: impl FnOnce(Request) -> F,
) -> Response
where
    F: Future<Output = Response>,
{
    // A request without a body (most GETs) has nothing to track: no allocation for it.
    if request.body().is_end_stream() {
        return match tokio::time::timeout(limit, handle(request)).await {
            Ok(response) => response,
            Err(_) => ApiError::Timeout.into_response(),
        };
    }
    let (parts, body) = request.into_parts();
    let received = Arc::new(AtomicBool::new(false));
    let body = Body::new(TrackedBody { inner: body, received: received.clone() });
    match tokio::time::timeout(limit, handle(Request::from_parts(parts, body))).await {
        Ok(response) => response,
        Err(_) if !received.load(Ordering::Acquire) => ApiError::RequestTimeout.into_response(),
        Err(_) => ApiError::Timeout.into_response(),
    }
}

struct TrackedBody {
    inner: Body,
    received: Arc<AtomicBool>,
}

impl http_body::Body for TrackedBody {
    type Data = Bytes;
    type Error = axum::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Self::Data>, Self::Error>>> {
        let polled = Pin::new(&mut self.inner).poll_frame(cx);
        if matches!(polled, Poll::Ready(None)) || self.inner.is_end_stream() {
            self.received.store(true, Ordering::Release);
        }
        polled
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}
