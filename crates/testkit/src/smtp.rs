//! A real SMTP sink on loopback for tests: it speaks enough SMTP for a
//! client to deliver (EHLO/HELO, MAIL, RCPT, DATA, RSET, NOOP, QUIT) and
//! keeps every message it received, headers and body as sent.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpListener;

pub struct SmtpSink {
    pub addr: SocketAddr,
    received: Arc<Mutex<Vec<String>>>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for SmtpSink {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl SmtpSink {
    /// A sink on a free loopback port.
    pub async fn start() -> SmtpSink {
        Self::on("127.0.0.1:0".parse().expect("address")).await
    }

    /// A sink on `addr` (e.g. the port a relay that was down comes back on).
    pub async fn on(addr: SocketAddr) -> SmtpSink {
        Self::on_with(addr, Duration::ZERO).await
    }

    /// A sink that takes `delay` to accept each message, like a slow relay.
    pub async fn slow(delay: Duration) -> SmtpSink {
        Self::on_with("127.0.0.1:0".parse().expect("address"), delay).await
    }

    async fn on_with(addr: SocketAddr, delay: Duration) -> SmtpSink {
        let listener = TcpListener::bind(addr).await.expect("the sink binds");
        let addr = listener.local_addr().expect("local address");
        let received = Arc::new(Mutex::new(Vec::new()));
        let kept = received.clone();
        let task = tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                let kept = kept.clone();
                tokio::spawn(async move {
                    let (read, mut write) = stream.into_split();
                    let mut lines = BufReader::new(read).lines();
                    let _ = write.write_all(b"220 changegate-test-sink\r\n").await;
                    let mut data: Option<String> = None;
                    while let Ok(Some(line)) = lines.next_line().await {
                        if let Some(message) = data.as_mut() {
                            if line == "." {
                                if !delay.is_zero() {
                                    tokio::time::sleep(delay).await;
                                }
                                kept.lock()
                                    .unwrap_or_else(|p| p.into_inner())
                                    .push(std::mem::take(message));
                                data = None;
                                let _ = write.write_all(b"250 queued\r\n").await;
                            } else {
                                // Undo dot-stuffing.
                                message.push_str(line.strip_prefix('.').unwrap_or(&line));
                                message.push('\n');
                            }
                            continue;
                        }
                        let verb = line
                            .split_whitespace()
                            .next()
                            .unwrap_or("")
                            .to_ascii_uppercase();
                        let reply: &[u8] = match verb.as_str() {
                            "EHLO" | "HELO" => b"250 changegate-test-sink\r\n",
                            "DATA" => {
                                data = Some(String::new());
                                b"354 end with a dot\r\n"
                            }
                            "QUIT" => {
                                let _ = write.write_all(b"221 bye\r\n").await;
                                break;
                            }
                            _ => b"250 ok\r\n",
                        };
                        let _ = write.write_all(reply).await;
                    }
                });
            }
        });
        SmtpSink {
            addr,
            received,
            task,
        }
    }

    /// `smtp://` URL of the sink.
    pub fn url(&self) -> String {
        format!("smtp://{}", self.addr)
    }

    /// The messages received, with quoted-printable bodies decoded as a
    /// mail client shows them.
    pub fn messages(&self) -> Vec<String> {
        self.received
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .iter()
            .map(|m| decoded(m))
            .collect()
    }

    /// Wait until `n` messages arrived (or fail after ten seconds).
    pub async fn wait_for(&self, n: usize) -> Vec<String> {
        for _ in 0..1000 {
            let got = self.messages();
            if got.len() >= n {
                return got;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        panic!(
            "the sink received {} messages, expected {n}",
            self.messages().len()
        );
    }
}

/// `raw` with its body decoded when it is quoted-printable (soft line
/// breaks joined, `=XX` octets decoded as UTF-8).
pub fn decoded(raw: &str) -> String {
    let Some((head, body)) = raw.split_once("\n\n") else {
        return raw.to_string();
    };
    if !head
        .to_ascii_lowercase()
        .contains("content-transfer-encoding: quoted-printable")
    {
        return raw.to_string();
    }
    let joined = body.replace("=\n", "");
    let bytes = joined.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let hex = bytes
            .get(i + 1..i + 3)
            .and_then(|h| std::str::from_utf8(h).ok())
            .and_then(|h| u8::from_str_radix(h, 16).ok());
        match (bytes[i], hex) {
            (b'=', Some(octet)) => {
                out.push(octet);
                i += 3;
            }
            (b, _) => {
                out.push(b);
                i += 1;
            }
        }
    }
    format!("{head}\n\n{}", String::from_utf8_lossy(&out))
}
