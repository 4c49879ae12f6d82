//! A static file server on 127.0.0.1 for release directories (manifest and
//! archives), with `Range` support: what a custom update server is.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::JoinHandle;

/// Serves the files of a directory over HTTP on an ephemeral loopback port
/// until dropped.
pub struct StaticServer {
    address: String,
    stop: Arc<AtomicBool>,
    server: Arc<tiny_http::Server>,
    thread: Option<JoinHandle<()>>,
}

impl std::fmt::Debug for StaticServer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StaticServer")
            .field("address", &self.address)
            .finish_non_exhaustive()
    }
}

impl StaticServer {
    /// Serves `root`.
    pub fn serve(root: &Path) -> StaticServer {
        let server = Arc::new(tiny_http::Server::http("127.0.0.1:0").unwrap());
        let address = format!("http://{}", server.server_addr());
        let stop = Arc::new(AtomicBool::new(false));
        let root = root.to_path_buf();
        let thread = {
            let (server, stop) = (server.clone(), stop.clone());
            std::thread::spawn(move || {
                while !stop.load(Ordering::Relaxed) {
                    let Ok(Some(request)) =
                        server.recv_timeout(std::time::Duration::from_millis(100))
                    else {
                        continue;
                    };
                    respond(&root, request);
                }
            })
        };
        StaticServer {
            address,
            stop,
            server,
            thread: Some(thread),
        }
    }

    /// `http://127.0.0.1:<port>`.
    pub fn address(&self) -> &str {
        &self.address
    }

    /// The URL of `path` (relative to the served directory).
    pub fn url(&self, path: &str) -> String {
        format!("{}/{}", self.address, path.trim_start_matches('/'))
    }
}

impl Drop for StaticServer {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        self.server.unblock();
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

fn safe_join(root: &Path, url: &str) -> Option<PathBuf> {
    let path = url.split(['?', '#']).next().unwrap_or("");
    let mut out = root.to_path_buf();
    for part in path.split('/').filter(|p| !p.is_empty()) {
        if part == ".." || part == "." {
            return None;
        }
        out.push(part);
    }
    Some(out)
}

fn respond(root: &Path, request: tiny_http::Request) {
    let Some(path) = safe_join(root, request.url()) else {
        let _ = request.respond(tiny_http::Response::empty(400));
        return;
    };
    let Ok(bytes) = std::fs::read(&path) else {
        let _ = request.respond(tiny_http::Response::empty(404));
        return;
    };
    let range = request
        .headers()
        .iter()
        .find(|h| h.field.equiv("Range"))
        .and_then(|h| {
            let value = h.value.as_str().strip_prefix("bytes=")?;
            let (start, end) = value.split_once('-')?;
            let start: usize = start.parse().ok()?;
            let end: usize = if end.is_empty() {
                bytes.len().checked_sub(1)?
            } else {
                end.parse().ok()?
            };
            (start <= end && end < bytes.len()).then_some((start, end))
        });
    let response = match range {
        Some((start, end)) => {
            let header = tiny_http::Header::from_bytes(
                "Content-Range",
                format!("bytes {start}-{end}/{}", bytes.len()),
            )
            .unwrap();
            tiny_http::Response::from_data(bytes[start..=end].to_vec())
                .with_status_code(206)
                .with_header(header)
        }
        None => tiny_http::Response::from_data(bytes),
    };
    let _ = request.respond(response);
}
