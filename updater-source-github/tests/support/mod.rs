//! A small HTTP/1.1 server on loopback (127.0.0.1 unless asked otherwise) for the tests, with full control
//! over what goes on the wire (truncated bodies, trickling, no length), and
//! a GitHub-shaped fake API built on it.
#![allow(dead_code, unreachable_pub)]

pub mod github;

use std::io::{BufRead, BufReader, Write};
use std::net::{IpAddr, Ipv4Addr, Shutdown, SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;

/// A request as the server saw it.
#[derive(Debug, Clone)]
pub struct Request {
    pub method: String,
    /// Path and query, as sent.
    pub target: String,
    /// Lowercase names.
    pub headers: Vec<(String, String)>,
}

impl Request {
    pub fn path(&self) -> &str {
        self.target.split('?').next().unwrap_or_default()
    }

    pub fn query(&self, name: &str) -> Option<String> {
        let query = self.target.split_once('?')?.1;
        query.split('&').find_map(|pair| {
            let (k, v) = pair.split_once('=')?;
            (k == name).then(|| v.to_string())
        })
    }

    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    /// The `bytes=N-` start of a Range header.
    pub fn range_start(&self) -> Option<u64> {
        self.header("range")?
            .strip_prefix("bytes=")?
            .strip_suffix('-')?
            .parse()
            .ok()
    }
}

/// How the body goes on the wire.
#[derive(Debug, Clone)]
pub enum BodyMode {
    Full,
    /// Announce the full length, send only this many bytes, close.
    CutAfter(usize),
    /// Send `chunk` bytes every `delay`.
    Trickle {
        chunk: usize,
        delay: Duration,
    },
    /// No Content-Length: the body ends when the connection closes.
    NoLength,
    /// Announce the full length, send `chunk` bytes every `delay`, close
    /// after `cut` bytes.
    TrickleThenCut {
        chunk: usize,
        delay: Duration,
        cut: usize,
    },
}

#[derive(Debug, Clone)]
pub struct Reply {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
    pub mode: BodyMode,
}

impl Reply {
    pub fn new(status: u16) -> Self {
        Reply {
            status,
            headers: Vec::new(),
            body: Vec::new(),
            mode: BodyMode::Full,
        }
    }

    pub fn bytes(status: u16, body: impl Into<Vec<u8>>) -> Self {
        Reply {
            body: body.into(),
            ..Reply::new(status)
        }
        .header("content-type", "application/octet-stream")
    }

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

    pub fn mode(mut self, mode: BodyMode) -> Self {
        self.mode = mode;
        self
    }

    /// A file answer honouring `Range: bytes=N-` (206) like a storage host.
    pub fn ranged(request: &Request, bytes: &[u8]) -> Self {
        match request.range_start() {
            Some(start) if (start as usize) < bytes.len() => {
                Reply::bytes(206, bytes[start as usize..].to_vec()).header(
                    "content-range",
                    format!("bytes {start}-{}/{}", bytes.len() - 1, bytes.len()),
                )
            }
            Some(_) => Reply::new(416).header("content-range", format!("bytes */{}", bytes.len())),
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

impl TestServer {
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

    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base())
    }

    pub fn requests(&self) -> Vec<Request> {
        self.requests.lock().unwrap().clone()
    }

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
    let mut reader = BufReader::new(stream.try_clone().unwrap());
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
    let request = Request {
        method,
        target,
        headers,
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
