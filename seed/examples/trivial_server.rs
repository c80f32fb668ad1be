//! A server that answers every request at once with `200 ok`, to measure how
//! many requests per second `seed` itself can send:
//!
//!     cargo run --release -p seed --example trivial_server -- 8080 &
//!     target/release/seed --votes 300000 http://127.0.0.1:8080/
//!
//! It runs on one thread so that on a small machine the load generator gets
//! the other cores. Keep-alive HTTP/1.1 only; just enough HTTP for seed.

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

const RESPONSE: &[u8] =
    b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\nset-cookie: voter_id=trivial; Path=/\r\n\r\nok";

#[tokio::main(flavor = "current_thread")]
async fn main() -> std::io::Result<()> {
    let port: u16 = match std::env::args().nth(1).map(|p| p.parse()) {
        None => 8080,
        Some(Ok(port)) => port,
        Some(Err(_)) => {
            eprintln!("usage: trivial_server [PORT]");
            std::process::exit(2);
        }
    };
    let listener = TcpListener::bind(("127.0.0.1", port)).await?;
    eprintln!("trivial_server: listening on 127.0.0.1:{port}");
    loop {
        let (stream, _) = listener.accept().await?;
        stream.set_nodelay(true)?;
        tokio::spawn(serve(stream));
    }
}

/// Answers each request on the connection until the client closes it.
async fn serve(mut stream: TcpStream) {
    let mut buffer = Vec::with_capacity(4096);
    let mut chunk = [0u8; 4096];
    loop {
        while let Some(length) = request_length(&buffer) {
            buffer.drain(..length);
            if stream.write_all(RESPONSE).await.is_err() {
                return;
            }
        }
        match stream.read(&mut chunk).await {
            Ok(0) | Err(_) => return,
            Ok(n) => buffer.extend_from_slice(&chunk[..n]),
        }
    }
}

/// The length of the first complete request in `buffer`: its head plus the
/// body its `content-length` announces.
fn request_length(buffer: &[u8]) -> Option<usize> {
    let head_end = buffer.windows(4).position(|w| w == b"\r\n\r\n")? + 4;
    let head = std::str::from_utf8(&buffer[..head_end]).ok()?;
    let body = head
        .lines()
        .filter_map(|line| line.split_once(':'))
        .find(|(name, _)| name.trim().eq_ignore_ascii_case("content-length"))
        .and_then(|(_, value)| value.trim().parse::<usize>().ok())
        .unwrap_or(0);
    (buffer.len() >= head_end + body).then_some(head_end + body)
}
