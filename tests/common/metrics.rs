//! Scraping a broker's `/metrics` (`seedlog serve --metrics-listen`).

use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::time::Duration;

/// `GET url` over a plain TCP connection: (status line, body).
pub fn http_get(url: &str) -> (String, String) {
    let rest = url.strip_prefix("http://").expect("an http:// url");
    let (address, path) = rest.split_at(rest.find('/').unwrap_or(rest.len()));
    let mut stream = std::net::TcpStream::connect(address).expect("metrics listener reachable");
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    write!(
        stream,
        "GET {path} HTTP/1.1\r\nHost: {address}\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut response = String::new();
    stream.read_to_string(&mut response).expect("a response");
    let (head, body) = response.split_once("\r\n\r\n").expect("head and body");
    (
        head.lines().next().unwrap_or("").to_string(),
        body.to_string(),
    )
}

/// Every sample of a scrape: `name{labels}` -> value.
pub fn scrape(url: &str) -> BTreeMap<String, f64> {
    let (status, body) = http_get(url);
    assert!(status.contains("200"), "{status}");
    assert!(
        body.ends_with("# EOF\n"),
        "OpenMetrics text ends with # EOF"
    );
    body.lines()
        .filter(|l| !l.starts_with('#') && !l.is_empty())
        .map(|l| {
            let (name, value) = l.rsplit_once(' ').expect("name value");
            (name.to_string(), value.parse().expect("a number"))
        })
        .collect()
}

pub fn value(samples: &BTreeMap<String, f64>, name: &str) -> f64 {
    samples.get(name).copied().unwrap_or(0.0)
}
