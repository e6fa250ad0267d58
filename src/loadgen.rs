//! `verigate bench`: an end-to-end load generator for loopback figures.
//! Every request is signed in advance with a unique body (so none is a
//! replay), then `concurrency` keep-alive connections send them as fast as
//! the server answers. The same run can measure a no-op endpoint (GET
//! `/healthz`) as the baseline the full path is compared with.
//!
//! The client writes HTTP/1.1 by hand: a heavyweight client would cost more
//! CPU than the server on a small machine and blur the figures.

use std::{
    sync::{
        Arc,
        atomic::{AtomicUsize, Ordering},
    },
    time::{Duration, Instant},
};

use tokio::{
    io::{AsyncReadExt, AsyncWriteExt},
    net::TcpStream,
};

use crate::{domain::timestamp::now_millis, sign};

/// One prepared request: the bytes to write.
pub type Prepared = Arc<[u8]>;

/// The outcome of one load run.
#[derive(Debug, Clone)]
pub struct Report {
    /// What was measured.
    pub label: String,
    /// Requests answered.
    pub requests: usize,
    /// Answers by status code.
    pub statuses: Vec<(u16, usize)>,
    /// Wall time of the run.
    pub elapsed: Duration,
    /// Sorted latencies.
    pub latencies: Vec<Duration>,
}

impl Report {
    /// Requests per second.
    pub fn throughput(&self) -> f64 {
        self.requests as f64 / self.elapsed.as_secs_f64().max(f64::EPSILON)
    }

    /// The `p`-th percentile latency (0–100).
    pub fn percentile(&self, p: f64) -> Duration {
        if self.latencies.is_empty() {
            return Duration::ZERO;
        }
        let rank = ((p / 100.0) * (self.latencies.len() - 1) as f64).round() as usize;
        self.latencies[rank.min(self.latencies.len() - 1)]
    }
}

impl std::fmt::Display for Report {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let statuses: Vec<String> = self
            .statuses
            .iter()
            .map(|(s, n)| format!("{s}×{n}"))
            .collect();
        write!(
            f,
            "{:<28} {:>8.0} req/s  p50 {:>7.3} ms  p90 {:>7.3} ms  p99 {:>7.3} ms  max {:>7.3} ms  [{}]",
            self.label,
            self.throughput(),
            ms(self.percentile(50.0)),
            ms(self.percentile(90.0)),
            ms(self.percentile(99.0)),
            ms(self.latencies.last().copied().unwrap_or_default()),
            statuses.join(" ")
        )
    }
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

/// `requests` signed Contiple POSTs to `path` on `host`, each body the
/// `template` object with a unique `"_n"` member added.
pub fn signed_contiple_requests(
    key: &[u8],
    host: &str,
    path: &str,
    template: &str,
    requests: usize,
) -> Vec<Prepared> {
    let template = template.trim();
    let open = template.strip_suffix('}').unwrap_or(template);
    let separator = if open.trim_end().ends_with('{') {
        ""
    } else {
        ","
    };
    let timestamp = now_millis();
    (0..requests)
        .map(|n| {
            let body = format!("{open}{separator}\"_n\":{n}}}");
            let headers = sign::contiple(key, None, body.as_bytes(), timestamp);
            let request = format!(
                "POST {path} HTTP/1.1\r\nHost: {host}\r\nContent-Type: application/json\r\n\
                 Content-Length: {}\r\nX-TC-Timestamp: {}\r\nAuthorization: {}\r\n\r\n{body}",
                body.len(),
                headers.timestamp,
                headers.authorization
            );
            Arc::from(request.into_bytes())
        })
        .collect()
}

/// `requests` copies of `GET path` (the no-op baseline).
pub fn get_requests(host: &str, path: &str, requests: usize) -> Vec<Prepared> {
    let request: Prepared =
        Arc::from(format!("GET {path} HTTP/1.1\r\nHost: {host}\r\n\r\n").into_bytes());
    vec![request; requests]
}

/// Sends `prepared` over `concurrency` keep-alive connections to `address`.
pub async fn run(
    label: &str,
    address: &str,
    prepared: Vec<Prepared>,
    concurrency: usize,
) -> std::io::Result<Report> {
    let prepared = Arc::new(prepared);
    let next = Arc::new(AtomicUsize::new(0));
    let started = Instant::now();
    let mut tasks = Vec::with_capacity(concurrency);
    for _ in 0..concurrency.max(1) {
        let prepared = Arc::clone(&prepared);
        let next = Arc::clone(&next);
        let address = address.to_owned();
        tasks.push(tokio::spawn(async move {
            let mut results: Vec<(u16, Duration)> = Vec::new();
            let mut stream: Option<TcpStream> = None;
            let mut buffer = Vec::with_capacity(4096);
            loop {
                let index = next.fetch_add(1, Ordering::Relaxed);
                let Some(request) = prepared.get(index) else {
                    break;
                };
                let sent = Instant::now();
                let connection = match stream.as_mut() {
                    Some(s) => s,
                    None => stream.insert(TcpStream::connect(&address).await?),
                };
                connection.set_nodelay(true)?;
                connection.write_all(request).await?;
                let (status, keep_alive) = read_response(connection, &mut buffer).await?;
                results.push((status, sent.elapsed()));
                if !keep_alive {
                    stream = None;
                }
            }
            Ok::<_, std::io::Error>(results)
        }));
    }
    let mut latencies = Vec::with_capacity(prepared.len());
    let mut statuses: Vec<(u16, usize)> = Vec::new();
    for task in tasks {
        let results = task.await.map_err(std::io::Error::other)??;
        for (status, latency) in results {
            latencies.push(latency);
            match statuses.iter_mut().find(|(s, _)| *s == status) {
                Some((_, n)) => *n += 1,
                None => statuses.push((status, 1)),
            }
        }
    }
    let elapsed = started.elapsed();
    latencies.sort_unstable();
    statuses.sort_unstable();
    Ok(Report {
        label: label.to_owned(),
        requests: latencies.len(),
        statuses,
        elapsed,
        latencies,
    })
}

/// Reads one response; returns its status and whether the connection stays open.
async fn read_response(
    stream: &mut TcpStream,
    buffer: &mut Vec<u8>,
) -> std::io::Result<(u16, bool)> {
    buffer.clear();
    let mut chunk = [0u8; 4096];
    let head_end = loop {
        if let Some(end) = find(buffer, b"\r\n\r\n") {
            break end;
        }
        let n = stream.read(&mut chunk).await?;
        if n == 0 {
            return Err(std::io::ErrorKind::UnexpectedEof.into());
        }
        buffer.extend_from_slice(&chunk[..n]);
    };
    let head = String::from_utf8_lossy(&buffer[..head_end]).to_ascii_lowercase();
    let status = head
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    let length: usize = head
        .lines()
        .find_map(|l| l.strip_prefix("content-length:"))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or(0);
    let keep_alive = !head.contains("connection: close");
    let total = head_end + 4 + length;
    while buffer.len() < total {
        let n = stream.read(&mut chunk).await?;
        if n == 0 {
            return Err(std::io::ErrorKind::UnexpectedEof.into());
        }
        buffer.extend_from_slice(&chunk[..n]);
    }
    Ok((status, keep_alive))
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_prepared_body_is_unique_and_valid_json() {
        let requests = signed_contiple_requests(b"k", "h", "/p", r#"{"callNum":"1"}"#, 3);
        let bodies: Vec<String> = requests
            .iter()
            .map(|r| {
                let text = String::from_utf8_lossy(r).into_owned();
                text.split("\r\n\r\n").nth(1).unwrap_or("").to_owned()
            })
            .collect();
        for body in &bodies {
            serde_json::from_str::<serde_json::Value>(body).unwrap();
        }
        assert_ne!(bodies[0], bodies[1]);
        let empty = signed_contiple_requests(b"k", "h", "/p", "{}", 1);
        assert!(String::from_utf8_lossy(&empty[0]).ends_with("{\"_n\":0}"));
    }

    #[test]
    fn percentiles_pick_from_the_sorted_latencies() {
        let report = Report {
            label: "x".into(),
            requests: 100,
            statuses: vec![(200, 100)],
            elapsed: Duration::from_secs(1),
            latencies: (1..=100).map(Duration::from_millis).collect(),
        };
        assert_eq!(report.percentile(50.0), Duration::from_millis(51));
        assert_eq!(report.percentile(99.0), Duration::from_millis(99));
        assert_eq!(report.throughput(), 100.0);
    }
}
