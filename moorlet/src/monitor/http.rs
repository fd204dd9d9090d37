//! httpGet lifecycle handlers: an HTTP/1.1 GET from the host to the pod's IP (or `host`), as the
//! kubelet makes it. Only http: an https handler is refused (no TLS client here).

use std::io::{Read, Write};
use std::net::{IpAddr, SocketAddr, TcpStream};
use std::time::Duration;

use anyhow::{Context, Result};
use k8s_openapi::api::core::v1::{Container, HTTPGetAction};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;

/// Runs the handler; Ok when the answer's status is 2xx or 3xx, as the kubelet counts it.
pub fn get(action: &HTTPGetAction, container: &Container, pod_ip: Option<IpAddr>, timeout: Duration) -> Result<()> {
    anyhow::ensure!(
        action.scheme.as_deref().is_none_or(|s| s.eq_ignore_ascii_case("http")),
        "httpGet.scheme {:?}: only HTTP is supported",
        action.scheme
    );
    let port = match &action.port {
        IntOrString::Int(p) => u16::try_from(*p).ok(),
        IntOrString::String(name) => container
            .ports
            .iter()
            .flatten()
            .find(|p| p.name.as_deref() == Some(name.as_str()))
            .and_then(|p| u16::try_from(p.container_port).ok()),
    }
    .with_context(|| format!("httpGet.port {:?} is not a port of the container", action.port))?;
    let ip = match action.host.as_deref().filter(|h| !h.is_empty()) {
        Some(h) => h
            .parse()
            .with_context(|| format!("httpGet.host {h:?} is not an IP address"))?,
        None => pod_ip.context("httpGet needs the pod's IP (hostNetwork pods: 127.0.0.1 as host)")?,
    };
    let addr = SocketAddr::new(ip, port);
    let mut stream = TcpStream::connect_timeout(&addr, timeout).with_context(|| format!("connect to {addr}"))?;
    stream.set_read_timeout(Some(timeout)).context("set a read timeout")?;
    let path = action.path.as_deref().filter(|p| p.starts_with('/')).unwrap_or("/");
    let mut request = format!("GET {path} HTTP/1.1\r\nHost: {addr}\r\nUser-Agent: moorlet\r\nConnection: close\r\n");
    for h in action.http_headers.iter().flatten() {
        anyhow::ensure!(
            !h.name.contains(['\r', '\n', ':']) && !h.value.contains(['\r', '\n']),
            "httpGet.httpHeaders: {:?} is not a header",
            h.name
        );
        request.push_str(&format!("{}: {}\r\n", h.name, h.value));
    }
    request.push_str("\r\n");
    stream
        .write_all(request.as_bytes())
        .with_context(|| format!("send to {addr}"))?;
    let mut head = [0u8; 64];
    let n = stream.read(&mut head).with_context(|| format!("read from {addr}"))?;
    let line = String::from_utf8_lossy(&head[..n]);
    let code: u16 = line
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .with_context(|| format!("{addr} did not answer HTTP"))?;
    anyhow::ensure!((200..400).contains(&code), "{addr}{path} answered {code}");
    Ok(())
}
