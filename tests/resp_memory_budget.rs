//! The buffers of every connection together stay within `server.max_connection_buffer_bytes`:
//! clients that pipeline large replies without reading them are held back (backpressure), the
//! accounted total never passes the budget, and each connection resumes once its client reads.

#[path = "resp_support/mod.rs"]
mod resp_support;

use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

const BUDGET: usize = 2 * 1024 * 1024;
const CLIENTS: usize = 12;
const COMMANDS: usize = 3000;

/// Number of whole bulk-string replies in `bytes` (what `INFO all` answers).
fn bulk_replies(bytes: &[u8]) -> usize {
    let mut n = 0;
    let mut pos = 0;
    while pos < bytes.len() {
        assert_eq!(bytes[pos], b'$', "a bulk string at {pos}");
        let eol = pos + bytes[pos..].windows(2).position(|w| w == b"\r\n").unwrap();
        let len: usize = std::str::from_utf8(&bytes[pos + 1..eol])
            .unwrap()
            .parse()
            .unwrap();
        pos = eol + 2 + len + 2;
        n += 1;
    }
    n
}

fn metric(text: &str, name: &str) -> f64 {
    text.lines()
        .find_map(|l| l.strip_prefix(name)?.strip_prefix(' ')?.parse().ok())
        .unwrap_or_else(|| panic!("{name} in {text}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pipelined_replies_nobody_reads_stay_within_the_budget_and_resume() {
    let s = resp_support::start_with(|o| o.max_connection_buffer_bytes = BUDGET);
    let budget = s.server.door().budget().clone();
    let base = budget.held();

    // Each client sends all its commands and reads nothing: its replies (megabytes each)
    // would fill the server's buffers without the budget.
    let mut clients = Vec::new();
    for _ in 0..CLIENTS {
        let c = TcpStream::connect(s.tcp()).await.unwrap();
        let (mut rd, mut wr) = c.into_split();
        let writer = tokio::spawn(async move {
            wr.write_all(&b"INFO all\r\n".repeat(COMMANDS))
                .await
                .unwrap();
            wr
        });
        clients.push((rd_keep(&mut rd), rd, writer));
    }
    // The budget refuses further growth: connections write what they have and read no more
    // until their clients read.
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    loop {
        let text = String::from_utf8(s.gate.render_metrics()).unwrap();
        if metric(&text, "tollgate_connection_buffer_backpressure_total") > 0.0 {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "no backpressure: {text}"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert!(
        budget.peak() <= BUDGET,
        "accounted {} bytes, budget {BUDGET}",
        budget.peak()
    );
    let text = String::from_utf8(s.gate.render_metrics()).unwrap();
    assert_eq!(
        metric(&text, "tollgate_connection_buffer_peak_bytes") as usize,
        budget.peak()
    );
    assert_eq!(
        metric(&text, "tollgate_connection_buffer_budget_bytes") as usize,
        BUDGET
    );

    // Once the clients read, every command is answered.
    let mut readers = Vec::new();
    for (_, mut rd, writer) in clients {
        readers.push(tokio::spawn(async move {
            let mut got = Vec::new();
            let mut n = 0;
            while n < COMMANDS {
                let mut chunk = vec![0u8; 256 * 1024];
                let k = rd.read(&mut chunk).await.unwrap();
                assert!(k > 0, "closed after {n} replies");
                got.extend_from_slice(&chunk[..k]);
                // Count only whole replies: cut at the last complete one.
                n = count_whole(&mut got, n);
            }
            let wr = writer.await.unwrap();
            drop((rd, wr));
            n
        }));
    }
    for r in readers {
        let n = tokio::time::timeout(Duration::from_secs(60), r)
            .await
            .expect("every reply arrives once the client reads")
            .unwrap();
        assert_eq!(n, COMMANDS);
    }
    assert!(budget.peak() <= BUDGET, "peak {}", budget.peak());
    // Closed connections give everything back.
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while budget.held() > base {
        assert!(
            std::time::Instant::now() < deadline,
            "held {}",
            budget.held()
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// Nothing: keeps the tuple's shape readable (the read half is used later).
fn rd_keep(_: &mut tokio::net::tcp::OwnedReadHalf) {}

/// Counts the whole replies at the front of `buf`, removes them, and returns `n` plus them.
fn count_whole(buf: &mut Vec<u8>, mut n: usize) -> usize {
    let mut pos = 0;
    loop {
        let rest = &buf[pos..];
        let Some(eol) = rest.windows(2).position(|w| w == b"\r\n") else {
            break;
        };
        let len: usize = std::str::from_utf8(&rest[1..eol]).unwrap().parse().unwrap();
        let end = eol + 2 + len + 2;
        if rest.len() < end {
            break;
        }
        assert_eq!(bulk_replies(&rest[..end]), 1);
        pos += end;
        n += 1;
    }
    buf.drain(..pos);
    n
}
