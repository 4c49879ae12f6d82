//! A tiny static HTTP server on 127.0.0.1 for the examples: it serves a
//! directory (a release manifest and its assets, or GitHub-shaped JSON) the
//! way any static host would, in a background thread.

use std::path::{Component, Path, PathBuf};
use std::sync::Arc;
use std::thread::JoinHandle;

/// A running server; stops when dropped.
pub struct StaticServer {
    server: Arc<tiny_http::Server>,
    address: String,
    thread: Option<JoinHandle<()>>,
}

impl std::fmt::Debug for StaticServer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StaticServer")
            .field("address", &self.address)
            .finish()
    }
}

impl StaticServer {
    /// Serves the files under `root` on a free port of 127.0.0.1.
    /// `routes` maps extra URL paths to files (for API-shaped URLs).
    pub fn serve(
        root: impl Into<PathBuf>,
        routes: Vec<(String, PathBuf)>,
    ) -> std::io::Result<StaticServer> {
        let root = root.into();
        let server =
            Arc::new(tiny_http::Server::http("127.0.0.1:0").map_err(std::io::Error::other)?);
        let address = match server.server_addr().to_ip() {
            Some(addr) => format!("http://{addr}"),
            None => return Err(std::io::Error::other("no IP address")),
        };
        let serving = Arc::clone(&server);
        let thread = std::thread::spawn(move || {
            for request in serving.incoming_requests() {
                let url = request.url().split('?').next().unwrap_or("/").to_string();
                let file = routes
                    .iter()
                    .find(|(route, _)| *route == url)
                    .map(|(_, file)| file.clone())
                    .or_else(|| safe_join(&root, &url));
                let response = match file.and_then(|f| std::fs::File::open(f).ok()) {
                    Some(file) => {
                        let length = file.metadata().map(|m| m.len()).ok();
                        let content_type = if url.ends_with(".json") || !url.contains('.') {
                            "application/json"
                        } else {
                            "application/octet-stream"
                        };
                        let header =
                            tiny_http::Header::from_bytes("Content-Type", content_type).ok();
                        let mut response = tiny_http::Response::new(
                            tiny_http::StatusCode(200),
                            header.into_iter().collect(),
                            file,
                            length.and_then(|l| usize::try_from(l).ok()),
                            None,
                        )
                        .boxed();
                        if length.is_none() {
                            response = tiny_http::Response::from_string("")
                                .with_status_code(500)
                                .boxed();
                        }
                        response
                    }
                    None => tiny_http::Response::from_string("not found")
                        .with_status_code(404)
                        .boxed(),
                };
                let _ = request.respond(response);
            }
        });
        Ok(StaticServer {
            server,
            address,
            thread: Some(thread),
        })
    }

    /// `http://127.0.0.1:PORT`.
    pub fn address(&self) -> &str {
        &self.address
    }
}

impl Drop for StaticServer {
    fn drop(&mut self) {
        self.server.unblock();
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// `root` + the URL path, refusing anything but plain names.
fn safe_join(root: &Path, url: &str) -> Option<PathBuf> {
    let relative = Path::new(url.trim_start_matches('/'));
    if relative.as_os_str().is_empty()
        || !relative
            .components()
            .all(|c| matches!(c, Component::Normal(_)))
    {
        return None;
    }
    Some(root.join(relative))
}
