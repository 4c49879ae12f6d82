//! HTTP servers on loopback for the tests: a [`StaticServer`] serving a
//! release directory (manifest and archives, with `Range`) — what a custom
//! update server is — and a [`TestServer`] whose every answer a test
//! controls, down to the wire (truncated bodies, trickling, no length).

use std::io::{BufRead, BufReader, Write};
use std::net::{IpAddr, Ipv4Addr, Shutdown, SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;

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
    /// Serves the files under `root` on a free port of 127.0.0.1; `routes`
    /// maps extra URL paths to files (for API-shaped URLs).
    pub fn serve(
        root: impl Into<PathBuf>,
        routes: Vec<(String, PathBuf)>,
    ) -> std::io::Result<StaticServer> {
        let server =
            Arc::new(tiny_http::Server::http("127.0.0.1:0").map_err(std::io::Error::other)?);
        let address = format!("http://{}", server.server_addr());
        let stop = Arc::new(AtomicBool::new(false));
        let root = root.into();
        let thread = {
            let (server, stop) = (server.clone(), stop.clone());
            std::thread::spawn(move || {
                while !stop.load(Ordering::Relaxed) {
                    let Ok(Some(request)) =
                        server.recv_timeout(std::time::Duration::from_millis(100))
                    else {
                        continue;
                    };
                    respond(&root, &routes, request);
                }
            })
        };
        Ok(StaticServer {
            address,
            stop,
            server,
            thread: Some(thread),
        })
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

fn respond(root: &Path, routes: &[(String, PathBuf)], request: tiny_http::Request) {
    let url_path = request
        .url()
        .split(['?', '#'])
        .next()
        .unwrap_or("")
        .to_string();
    let routed = routes
        .iter()
        .find(|(route, _)| *route == url_path)
        .map(|(_, file)| file.clone());
    let Some(path) = routed.or_else(|| safe_join(root, request.url())) else {
        let _ = request.respond(tiny_http::Response::empty(400));
        return;
    };
    let Ok(mut file) = std::fs::File::open(&path) else {
        let _ = request.respond(tiny_http::Response::empty(404));
        return;
    };
    let Ok(length) = file.metadata().map(|m| m.len()) else {
        let _ = request.respond(tiny_http::Response::empty(404));
        return;
    };
    let range = request
        .headers()
        .iter()
        .find(|h| h.field.equiv("Range"))
        .and_then(|h| parse_range(h.value.as_str(), length));
    // Only the asked bytes are read (a delta fetches a few members of a big package).
    let response = match range {
        Some((start, end)) => {
            let mut bytes = vec![0u8; (end - start + 1) as usize];
            let read = std::io::Seek::seek(&mut file, std::io::SeekFrom::Start(start))
                .and_then(|_| std::io::Read::read_exact(&mut file, &mut bytes));
            if read.is_err() {
                let _ = request.respond(tiny_http::Response::empty(500));
                return;
            }
            let header = tiny_http::Header::from_bytes(
                "Content-Range",
                format!("bytes {start}-{end}/{length}"),
            )
            .unwrap();
            tiny_http::Response::from_data(bytes)
                .with_status_code(206)
                .with_header(header)
        }
        None => {
            let mut bytes = Vec::new();
            if std::io::Read::read_to_end(&mut file, &mut bytes).is_err() {
                let _ = request.respond(tiny_http::Response::empty(500));
                return;
            }
            tiny_http::Response::from_data(bytes)
        }
    };
    let _ = request.respond(response);
}

/// A `Range: bytes=START-[END]` header of one range within `length` bytes,
/// as inclusive `(start, end)`.
fn parse_range(value: &str, length: u64) -> Option<(u64, u64)> {
    let value = value.trim().strip_prefix("bytes=")?;
    let (start, end) = value.split_once('-')?;
    let start: u64 = start.trim().parse().ok()?;
    let end: u64 = if end.trim().is_empty() {
        length.checked_sub(1)?
    } else {
        end.trim().parse::<u64>().ok()?.min(length.checked_sub(1)?)
    };
    (start <= end).then_some((start, end))
}

/// A request as the server saw it.
#[derive(Debug, Clone)]
pub struct Request {
    /// `GET`, `HEAD`...
    pub method: String,
    /// Path and query, as sent.
    pub target: String,
    /// Lowercase names.
    pub headers: Vec<(String, String)>,
    /// The body (`Content-Length` bytes; empty without one).
    pub body: Vec<u8>,
}

impl Request {
    /// The path, without the query.
    pub fn path(&self) -> &str {
        self.target.split('?').next().unwrap_or_default()
    }

    /// The value of query parameter `name`.
    pub fn query(&self, name: &str) -> Option<String> {
        let query = self.target.split_once('?')?.1;
        query.split('&').find_map(|pair| {
            let (k, v) = pair.split_once('=')?;
            (k == name).then(|| v.to_string())
        })
    }

    /// The value of header `name` (any case).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    /// The `bytes=N-` start of a Range header (open-ended ranges only).
    pub fn range_start(&self) -> Option<u64> {
        self.header("range")?
            .strip_prefix("bytes=")?
            .strip_suffix('-')?
            .parse()
            .ok()
    }

    /// The range of a `Range: bytes=START-[END]` header: `(start, end)`,
    /// `end` inclusive when given.
    pub fn range(&self) -> Option<(u64, Option<u64>)> {
        let value = self.header("range")?.strip_prefix("bytes=")?;
        let (start, end) = value.split_once('-')?;
        let start = start.trim().parse().ok()?;
        let end = match end.trim() {
            "" => None,
            end => Some(end.parse().ok()?),
        };
        Some((start, end))
    }
}

/// How the body goes on the wire.
#[derive(Debug, Clone)]
pub enum BodyMode {
    /// All of it, with its length.
    Full,
    /// Announce the full length, send only this many bytes, close.
    CutAfter(usize),
    /// Send `chunk` bytes every `delay`.
    Trickle {
        /// Bytes per write.
        chunk: usize,
        /// Pause between writes.
        delay: Duration,
    },
    /// No Content-Length: the body ends when the connection closes.
    NoLength,
    /// Announce the full length, send `chunk` bytes every `delay`, close
    /// after `cut` bytes.
    TrickleThenCut {
        /// Bytes per write.
        chunk: usize,
        /// Pause between writes.
        delay: Duration,
        /// Bytes sent before the connection closes.
        cut: usize,
    },
}

/// What the server answers.
#[derive(Debug, Clone)]
pub struct Reply {
    /// The status code.
    pub status: u16,
    /// Headers, in order.
    pub headers: Vec<(String, String)>,
    /// The body.
    pub body: Vec<u8>,
    /// How the body goes on the wire.
    pub mode: BodyMode,
}

impl Reply {
    /// An empty answer with `status`.
    pub fn new(status: u16) -> Self {
        Reply {
            status,
            headers: Vec::new(),
            body: Vec::new(),
            mode: BodyMode::Full,
        }
    }

    /// Binary bytes.
    pub fn bytes(status: u16, body: impl Into<Vec<u8>>) -> Self {
        Reply {
            body: body.into(),
            ..Reply::new(status)
        }
        .header("content-type", "application/octet-stream")
    }

    /// A JSON document.
    pub fn json(status: u16, body: impl Into<String>) -> Self {
        Reply {
            body: body.into().into_bytes(),
            ..Reply::new(status)
        }
        .header("content-type", "application/json; charset=utf-8")
    }

    /// Sets a header (replacing one of the same name).
    pub fn header(mut self, name: &str, value: impl Into<String>) -> Self {
        self.headers.retain(|(k, _)| !k.eq_ignore_ascii_case(name));
        self.headers.push((name.to_string(), value.into()));
        self
    }

    /// Sets how the body goes on the wire.
    pub fn mode(mut self, mode: BodyMode) -> Self {
        self.mode = mode;
        self
    }

    /// A file answer honouring `Range: bytes=N-` and `bytes=N-M` (206)
    /// like a storage host.
    pub fn ranged(request: &Request, bytes: &[u8]) -> Self {
        let len = bytes.len() as u64;
        match request.range() {
            Some((start, end)) if start < len => {
                let end = end.unwrap_or(len - 1).min(len - 1);
                if end < start {
                    return Reply::new(416).header("content-range", format!("bytes */{len}"));
                }
                Reply::bytes(206, bytes[start as usize..=end as usize].to_vec())
                    .header("content-range", format!("bytes {start}-{end}/{len}"))
            }
            Some(_) => Reply::new(416).header("content-range", format!("bytes */{len}")),
            None => Reply::bytes(200, bytes.to_vec()).header("accept-ranges", "bytes"),
        }
    }
}

type Handler = dyn Fn(&Request) -> Reply + Send + Sync;

/// A server on a loopback address, port 0; stops when dropped.
pub struct TestServer {
    addr: SocketAddr,
    requests: Arc<Mutex<Vec<Request>>>,
    stop: Arc<AtomicBool>,
    accept: Option<JoinHandle<()>>,
}

impl std::fmt::Debug for TestServer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TestServer")
            .field("addr", &self.addr)
            .finish_non_exhaustive()
    }
}

impl TestServer {
    /// A server on 127.0.0.1 answering every request with `handler`.
    pub fn start(handler: impl Fn(&Request) -> Reply + Send + Sync + 'static) -> Self {
        Self::start_on(IpAddr::V4(Ipv4Addr::LOCALHOST), handler).unwrap()
    }

    /// A server on `ip` (e.g. `127.0.0.2` or `::1`), port 0; an error when
    /// that address cannot be bound here (no IPv6, say).
    pub fn start_on(
        ip: IpAddr,
        handler: impl Fn(&Request) -> Reply + Send + Sync + 'static,
    ) -> std::io::Result<Self> {
        let listener = TcpListener::bind(SocketAddr::new(ip, 0))?;
        let addr = listener.local_addr()?;
        let requests = Arc::new(Mutex::new(Vec::new()));
        let stop = Arc::new(AtomicBool::new(false));
        let handler: Arc<Handler> = Arc::new(handler);
        let accept = {
            let (requests, stop) = (Arc::clone(&requests), Arc::clone(&stop));
            std::thread::spawn(move || {
                for stream in listener.incoming() {
                    if stop.load(Ordering::SeqCst) {
                        break;
                    }
                    let Ok(stream) = stream else { continue };
                    let (handler, requests) = (Arc::clone(&handler), Arc::clone(&requests));
                    std::thread::spawn(move || serve(stream, &*handler, &requests));
                }
            })
        };
        Ok(TestServer {
            addr,
            requests,
            stop,
            accept: Some(accept),
        })
    }

    /// `http://IP:PORT` (`http://[::1]:PORT` for IPv6).
    pub fn base(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// `base()` followed by `path` (which starts with `/`).
    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base())
    }

    /// Every request so far.
    pub fn requests(&self) -> Vec<Request> {
        self.requests.lock().unwrap().clone()
    }

    /// The requests for `path`.
    pub fn requests_to(&self, path: &str) -> Vec<Request> {
        self.requests()
            .into_iter()
            .filter(|r| r.path() == path)
            .collect()
    }
}

impl Drop for TestServer {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        let _ = TcpStream::connect(self.addr);
        if let Some(accept) = self.accept.take() {
            let _ = accept.join();
        }
    }
}

fn serve(stream: TcpStream, handler: &Handler, requests: &Mutex<Vec<Request>>) {
    stream.set_read_timeout(Some(Duration::from_secs(5))).ok();
    let mut reader = BufReader::new(stream.try_clone().expect("clone the test connection"));
    let mut line = String::new();
    if reader.read_line(&mut line).unwrap_or(0) == 0 {
        return;
    }
    let mut parts = line.split_whitespace();
    let method = parts.next().unwrap_or_default().to_string();
    let target = parts.next().unwrap_or_default().to_string();
    let mut headers = Vec::new();
    loop {
        let mut header = String::new();
        if reader.read_line(&mut header).unwrap_or(0) == 0 || header.trim().is_empty() {
            break;
        }
        if let Some((k, v)) = header.split_once(':') {
            headers.push((k.trim().to_ascii_lowercase(), v.trim().to_string()));
        }
    }
    let length: usize = headers
        .iter()
        .find(|(k, _)| k == "content-length")
        .and_then(|(_, v)| v.parse().ok())
        .unwrap_or(0);
    let mut body = vec![0; length.min(16 << 20)];
    if std::io::Read::read_exact(&mut reader, &mut body).is_err() {
        body.clear();
    }
    let request = Request {
        method,
        target,
        headers,
        body,
    };
    requests.lock().unwrap().push(request.clone());
    let reply = handler(&request);
    let _ = write_reply(stream, &reply);
}

fn reason(status: u16) -> &'static str {
    match status {
        200 => "OK",
        206 => "Partial Content",
        302 => "Found",
        304 => "Not Modified",
        401 => "Unauthorized",
        403 => "Forbidden",
        404 => "Not Found",
        416 => "Range Not Satisfiable",
        429 => "Too Many Requests",
        500 => "Internal Server Error",
        503 => "Service Unavailable",
        _ => "Status",
    }
}

fn write_reply(mut stream: TcpStream, reply: &Reply) -> std::io::Result<()> {
    let mut head = format!("HTTP/1.1 {} {}\r\n", reply.status, reason(reply.status));
    for (k, v) in &reply.headers {
        head.push_str(&format!("{k}: {v}\r\n"));
    }
    if !matches!(reply.mode, BodyMode::NoLength) && reply.status != 304 {
        head.push_str(&format!("content-length: {}\r\n", reply.body.len()));
    }
    head.push_str("connection: close\r\n\r\n");
    stream.write_all(head.as_bytes())?;
    match &reply.mode {
        BodyMode::Full | BodyMode::NoLength => stream.write_all(&reply.body)?,
        BodyMode::CutAfter(n) => stream.write_all(&reply.body[..(*n).min(reply.body.len())])?,
        BodyMode::Trickle { chunk, delay } => {
            for piece in reply.body.chunks(*chunk) {
                stream.write_all(piece)?;
                stream.flush()?;
                std::thread::sleep(*delay);
            }
        }
        BodyMode::TrickleThenCut { chunk, delay, cut } => {
            for piece in reply.body[..(*cut).min(reply.body.len())].chunks(*chunk) {
                stream.write_all(piece)?;
                stream.flush()?;
                std::thread::sleep(*delay);
            }
        }
    }
    stream.flush()?;
    stream.shutdown(Shutdown::Both)
}

/// Runs `f` with every `tracing` event of this thread (all levels) written
/// as text into the returned string.
pub fn capture_logs<R>(f: impl FnOnce() -> R) -> (R, String) {
    #[derive(Clone, Default)]
    struct Buffer(Arc<Mutex<Vec<u8>>>);
    impl Write for Buffer {
        fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(bytes);
            Ok(bytes.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }
    let buffer = Buffer::default();
    let subscriber = tracing_subscriber::fmt()
        .with_max_level(tracing::Level::TRACE)
        .with_ansi(false)
        .with_writer({
            let buffer = buffer.clone();
            move || buffer.clone()
        })
        .finish();
    let result = tracing::subscriber::with_default(subscriber, f);
    let text = String::from_utf8_lossy(&buffer.0.lock().unwrap()).into_owned();
    (result, text)
}
