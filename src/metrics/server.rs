//! `GET /metrics` over HTTP/1.1 on TCP or a Unix socket. A few dozen lines of our own
//! rather than hyper (not in the tree; it and its http/h2 stack would roughly double the
//! dependencies for one GET): one request per connection, answered and closed, which is
//! what Prometheus' scraper does anyway.

use std::sync::Arc;
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::sync::{watch, Semaphore};
use tracing::{debug, warn};

use super::snapshot::{AccountingSnapshot, EngineSnapshot};

/// The OpenMetrics 1.0 text format (Prometheus asks for it first).
pub const CONTENT_TYPE: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";
/// A request head larger than this is refused (a scraper's is a few hundred bytes).
const MAX_HEAD: usize = 8192;
/// A client has this long to send its request and take the answer.
const IO_TIMEOUT: Duration = Duration::from_secs(10);
/// Scrapes served at once; more are answered 503 at once.
const MAX_CONCURRENT: usize = 8;

#[derive(Clone)]
pub(super) struct Sources {
    pub engine: watch::Receiver<Arc<EngineSnapshot>>,
    pub accounting: Option<watch::Receiver<Arc<AccountingSnapshot>>>,
    pub slots: Arc<Semaphore>,
}

impl Sources {
    pub fn new(
        engine: watch::Receiver<Arc<EngineSnapshot>>,
        accounting: Option<watch::Receiver<Arc<AccountingSnapshot>>>,
    ) -> Sources {
        Sources {
            engine,
            accounting,
            slots: Arc::new(Semaphore::new(MAX_CONCURRENT)),
        }
    }
}

/// What the request asked for: the status line and whether the body is wanted.
fn route(head: &str) -> (&'static str, bool, bool) {
    let mut words = head.lines().next().unwrap_or("").split(' ');
    let (method, target) = (words.next().unwrap_or(""), words.next().unwrap_or(""));
    let path = target.split('?').next().unwrap_or("");
    match (method, path) {
        ("GET", "/metrics") => ("200 OK", true, true),
        ("HEAD", "/metrics") => ("200 OK", true, false),
        (_, "/metrics") => ("405 Method Not Allowed", false, false),
        _ => ("404 Not Found", false, false),
    }
}

/// One connection: read the head, answer from the latest snapshots, close.
pub(super) async fn serve<S: AsyncRead + AsyncWrite + Unpin>(mut s: S, src: Sources) {
    let Ok(_slot) = src.slots.clone().try_acquire_owned() else {
        let _ = respond(&mut s, "503 Service Unavailable", "text/plain", b"busy\n").await;
        return;
    };
    let head = match tokio::time::timeout(IO_TIMEOUT, read_head(&mut s)).await {
        Ok(Some(h)) => h,
        Ok(None) => {
            let _ = respond(&mut s, "400 Bad Request", "text/plain", b"bad request\n").await;
            return;
        }
        Err(_) => return,
    };
    let (status, ok, body) = route(&head);
    if !ok {
        let _ = respond(&mut s, status, "text/plain", b"GET /metrics\n").await;
        return;
    }
    // Clones of the Arcs, then the encoding off this thread: the daemon's runtime has one
    // thread, and 10,000 sessions take milliseconds to format.
    let engine = src.engine.borrow().clone();
    let accounting = src.accounting.as_ref().map(|a| a.borrow().clone());
    let text = match tokio::task::spawn_blocking(move || super::encode::encode(engine, accounting))
        .await
    {
        Ok(t) => t,
        Err(e) => {
            warn!("metrics: encoding failed: {e}");
            let _ = respond(&mut s, "500 Internal Server Error", "text/plain", b"").await;
            return;
        }
    };
    let payload = if body { text.as_bytes() } else { b"" };
    let r = tokio::time::timeout(IO_TIMEOUT, async {
        if body {
            respond(&mut s, status, CONTENT_TYPE, payload).await
        } else {
            head_only(&mut s, text.len()).await
        }
    })
    .await;
    if !matches!(r, Ok(Ok(()))) {
        debug!("metrics: the scraper went away before taking the answer");
    }
}

/// The request head (up to the blank line), or `None` if it is too long or not text.
async fn read_head<S: AsyncRead + Unpin>(s: &mut S) -> Option<String> {
    let mut buf = Vec::with_capacity(512);
    let mut chunk = [0u8; 1024];
    loop {
        let n = s.read(&mut chunk).await.ok()?;
        if n == 0 {
            return None;
        }
        buf.extend_from_slice(&chunk[..n]);
        if let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            buf.truncate(end);
            return String::from_utf8(buf).ok();
        }
        if buf.len() > MAX_HEAD {
            return None;
        }
    }
}

async fn respond<S: AsyncWrite + Unpin>(
    s: &mut S,
    status: &str,
    content_type: &str,
    body: &[u8],
) -> std::io::Result<()> {
    let head = format!(
        "HTTP/1.1 {status}\r\nContent-Type: {content_type}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    );
    s.write_all(head.as_bytes()).await?;
    s.write_all(body).await?;
    s.shutdown().await
}

async fn head_only<S: AsyncWrite + Unpin>(s: &mut S, len: usize) -> std::io::Result<()> {
    let head = format!(
        "HTTP/1.1 200 OK\r\nContent-Type: {CONTENT_TYPE}\r\nContent-Length: {len}\r\nConnection: close\r\n\r\n"
    );
    s.write_all(head.as_bytes()).await?;
    s.shutdown().await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_get_and_head_of_metrics_are_served() {
        assert_eq!(
            route("GET /metrics HTTP/1.1\r\nHost: x"),
            ("200 OK", true, true)
        );
        assert_eq!(route("GET /metrics?x=1 HTTP/1.1"), ("200 OK", true, true));
        assert_eq!(route("HEAD /metrics HTTP/1.1"), ("200 OK", true, false));
        assert_eq!(route("POST /metrics HTTP/1.1").0, "405 Method Not Allowed");
        assert_eq!(route("GET / HTTP/1.1").0, "404 Not Found");
        assert_eq!(route("").0, "404 Not Found");
    }

    #[tokio::test]
    async fn a_scrape_is_answered_from_the_snapshot() {
        let (tx, rx) = watch::channel(Arc::new(EngineSnapshot::default()));
        tx.send_replace(Arc::new(EngineSnapshot {
            child_sas: 3,
            ..EngineSnapshot::default()
        }));
        let (mut client, server) = tokio::io::duplex(1 << 16);
        let task = tokio::spawn(serve(server, Sources::new(rx, None)));
        client
            .write_all(b"GET /metrics HTTP/1.1\r\nHost: vpnd\r\n\r\n")
            .await
            .unwrap();
        let mut out = String::new();
        client.read_to_string(&mut out).await.unwrap();
        task.await.unwrap();
        assert!(out.starts_with("HTTP/1.1 200 OK\r\n"), "{out}");
        assert!(out.contains(CONTENT_TYPE), "{out}");
        assert!(out.contains("\nvpnd_child_sas 3\n"), "{out}");
        assert!(out.ends_with("# EOF\n"), "{out}");
    }
}
