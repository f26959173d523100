//! The service the example playbook deploys: a stand-in for a Go/Gin binary.
//! `/healthz` answers 200 (or 500 when built with DEMO_UNHEALTHY=1, to exercise
//! rollback), `/version` the version it was built as (DEMO_VERSION), on $PORT.

use std::io::{BufRead, BufReader, Write};
use std::net::TcpListener;

const VERSION: &str = match option_env!("DEMO_VERSION") {
    Some(v) => v,
    None => "dev",
};
const UNHEALTHY: bool = option_env!("DEMO_UNHEALTHY").is_some();

fn main() -> std::io::Result<()> {
    let port = std::env::var("PORT").unwrap_or_else(|_| "8080".into());
    let listener = TcpListener::bind(("127.0.0.1", port.parse().unwrap_or(8080)))?;
    println!("demo-app {VERSION} listening on 127.0.0.1:{port}");
    for stream in listener.incoming() {
        let Ok(mut stream) = stream else { continue };
        let mut line = String::new();
        if BufReader::new(&stream).read_line(&mut line).is_err() {
            continue;
        }
        let path = line.split_whitespace().nth(1).unwrap_or("/");
        let (status, body) = match path {
            "/healthz" if UNHEALTHY => ("500 Internal Server Error", "unhealthy\n".to_string()),
            "/healthz" => ("200 OK", "ok\n".to_string()),
            "/version" => ("200 OK", format!("{VERSION}\n")),
            _ => ("404 Not Found", "not found\n".to_string()),
        };
        println!("GET {path} -> {status}");
        let _ = write!(
            stream,
            "HTTP/1.1 {status}\r\nContent-Type: text/plain\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
            body.len()
        );
    }
    Ok(())
}
