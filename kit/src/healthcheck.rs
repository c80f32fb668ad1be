//! `<service> healthcheck`: the container healthcheck for images without
//! curl. GETs `/healthz` on the service's own port; exit status 0 on 200.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::process::ExitCode;
use std::time::Duration;

/// The subcommand every service has: `<service> healthcheck`.
#[derive(clap::Subcommand, Clone, Debug)]
pub enum Command {
    /// Exit 0 if the service on PORT answers /healthz (for container healthchecks).
    Healthcheck,
}

pub fn probe(port: u16) -> ExitCode {
    match get_status(port, "/healthz") {
        Ok(200) => ExitCode::SUCCESS,
        Ok(status) => {
            eprintln!("healthcheck: /healthz answered {status}");
            ExitCode::FAILURE
        }
        Err(e) => {
            eprintln!("healthcheck: 127.0.0.1:{port}: {e}");
            ExitCode::FAILURE
        }
    }
}

fn get_status(port: u16, path: &str) -> std::io::Result<u16> {
    let timeout = Duration::from_secs(2);
    let address = ([127, 0, 0, 1], port).into();
    let mut stream = TcpStream::connect_timeout(&address, timeout)?;
    stream.set_read_timeout(Some(timeout))?;
    stream.set_write_timeout(Some(timeout))?;
    let request = format!("GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n");
    stream.write_all(request.as_bytes())?;
    let mut head = [0u8; 12];
    stream.read_exact(&mut head)?;
    // "HTTP/1.1 200"
    std::str::from_utf8(&head[9..12])
        .ok()
        .and_then(|code| code.parse().ok())
        .ok_or_else(|| std::io::Error::other("not an HTTP response"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::TcpListener;

    #[test]
    fn reads_the_status_code() {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        std::thread::spawn(move || {
            let (mut s, _) = listener.accept().unwrap();
            let mut request = Vec::new();
            let mut byte = [0u8; 1];
            while !request.ends_with(b"\r\n\r\n") && s.read(&mut byte).unwrap() == 1 {
                request.push(byte[0]);
            }
            s.write_all(b"HTTP/1.1 503 Service Unavailable\r\n\r\n")
                .unwrap();
        });
        assert_eq!(get_status(port, "/healthz").unwrap(), 503);
    }

    #[test]
    fn nothing_listening_fails() {
        let port = TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        assert_eq!(probe(port), ExitCode::FAILURE);
    }
}
