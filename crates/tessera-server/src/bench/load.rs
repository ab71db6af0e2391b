//! A small HTTP/1.1 load generator for `tessera bench`: C keep-alive connections on a thread
//! of their own, each sending requests back to back for a fixed time and reading each answer
//! in full. Requests rotate through a pool of credentials, so a pool as large as the user base
//! makes every request carry a different session or token.

use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// What one load run sends.
#[derive(Debug, Clone)]
pub struct Load {
    /// `host:port` of the server.
    pub addr: std::net::SocketAddr,
    /// The full request heads (and bodies), one per credential, sent round robin.
    pub requests: Arc<Vec<Vec<u8>>>,
    /// Concurrent connections.
    pub connections: usize,
    /// How long to send.
    pub duration: Duration,
}

/// What a load run measured.
#[derive(Debug, Clone, Copy)]
pub struct Outcome {
    /// Answers received, all 2xx.
    pub requests: u64,
    /// Requests per second.
    pub per_second: f64,
    /// 99th percentile latency.
    pub p99: Duration,
    /// CPU time the load generator itself used (to subtract from the process's).
    pub generator_cpu: Duration,
}

/// A `GET path` request head with `header` (e.g. `Cookie: …`).
pub fn get(path: &str, header: &str) -> Vec<u8> {
    format!("GET {path} HTTP/1.1\r\nHost: bench\r\n{header}\r\n\r\n").into_bytes()
}

/// A `POST path` of a JSON body.
pub fn post_json(path: &str, body: &str) -> Vec<u8> {
    format!(
        "POST {path} HTTP/1.1\r\nHost: bench\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    )
    .into_bytes()
}

/// Runs `load` on a new thread with its own single-threaded runtime and waits for it.
pub async fn run(load: Load) -> anyhow::Result<Outcome> {
    if load.requests.is_empty() || load.connections == 0 {
        bail!("nothing to send: no request or no connection");
    }
    let (tx, rx) = tokio::sync::oneshot::channel();
    std::thread::Builder::new()
        .name("tessera-bench-load".into())
        .spawn(move || {
            let result = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .context("starting the load generator's runtime")
                .and_then(|runtime| runtime.block_on(drive(load)));
            let _ = tx.send(result);
        })
        .context("starting the load generator thread")?;
    rx.await.context("the load generator stopped")?
}

async fn drive(load: Load) -> anyhow::Result<Outcome> {
    let cpu_before = super::thread_cpu();
    let started = Instant::now();
    let deadline = started + load.duration;
    let mut tasks = Vec::with_capacity(load.connections);
    let stride = load.requests.len() / load.connections.max(1);
    for connection in 0..load.connections {
        let requests = Arc::clone(&load.requests);
        let first = connection * stride;
        tasks.push(tokio::spawn(connection_loop(load.addr, requests, first, deadline)));
    }
    let mut latencies = Vec::new();
    for task in tasks {
        latencies.extend(task.await.context("a load connection failed")??);
    }
    let elapsed = started.elapsed();
    let generator_cpu = super::thread_cpu().saturating_sub(cpu_before);
    if latencies.is_empty() {
        bail!("no request was answered");
    }
    latencies.sort_unstable();
    let p99 = latencies[(latencies.len() * 99 / 100).min(latencies.len() - 1)];
    Ok(Outcome {
        requests: latencies.len() as u64,
        per_second: latencies.len() as f64 / elapsed.as_secs_f64(),
        p99: Duration::from_micros(p99.into()),
        generator_cpu,
    })
}

/// Sends requests from `first` on, round robin, until `deadline`; returns each latency in µs.
async fn connection_loop(
    addr: std::net::SocketAddr,
    requests: Arc<Vec<Vec<u8>>>,
    first: usize,
    deadline: Instant,
) -> anyhow::Result<Vec<u32>> {
    let mut stream = TcpStream::connect(addr).await.context("connecting to the server")?;
    stream.set_nodelay(true)?;
    let mut buffer = Vec::with_capacity(4096);
    let mut latencies = Vec::new();
    let mut next = first % requests.len().max(1);
    while Instant::now() < deadline {
        let sent = Instant::now();
        stream.write_all(&requests[next]).await.context("sending a request")?;
        let status = read_response(&mut stream, &mut buffer).await?;
        if !(200..300).contains(&status) {
            bail!("the server answered {status}");
        }
        latencies.push(u32::try_from(sent.elapsed().as_micros()).unwrap_or(u32::MAX));
        next = (next + 1) % requests.len();
    }
    Ok(latencies)
}

/// Reads one response (head and `Content-Length` body); returns its status code.
async fn read_response(stream: &mut TcpStream, buffer: &mut Vec<u8>) -> anyhow::Result<u16> {
    loop {
        if let Some(end) = find(buffer, b"\r\n\r\n") {
            let head = std::str::from_utf8(&buffer[..end]).context("a non-UTF-8 response head")?;
            let status = head
                .split(' ')
                .nth(1)
                .and_then(|s| s.parse().ok())
                .context("a response without a status")?;
            let length = head
                .lines()
                .filter_map(|line| line.split_once(':'))
                .find(|(name, _)| name.eq_ignore_ascii_case("content-length"))
                .and_then(|(_, value)| value.trim().parse::<usize>().ok())
                .unwrap_or(0);
            let total = end + 4 + length;
            while buffer.len() < total {
                read_more(stream, buffer).await?;
            }
            buffer.drain(..total);
            return Ok(status);
        }
        read_more(stream, buffer).await?;
    }
}

async fn read_more(stream: &mut TcpStream, buffer: &mut Vec<u8>) -> anyhow::Result<()> {
    let mut chunk = [0u8; 4096];
    let read = stream.read(&mut chunk).await.context("reading a response")?;
    if read == 0 {
        bail!("the server closed the connection");
    }
    buffer.extend_from_slice(&chunk[..read]);
    Ok(())
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}
