//! SMTP servers on loopback for the tests: [`SmtpReceiver`], a small one in
//! Rust (plain SMTP, optional AUTH PLAIN/LOGIN, scripted refusals — enough
//! for the quickstart and for CLI tests without Python), and [`Aiosmtpd`], a
//! real server (Python's `aiosmtpd`) with STARTTLS or implicit TLS and AUTH,
//! with a throwaway CA made by `openssl`. Both give [`Mail`]s, parsed with
//! `mailparse`.

use std::io::{BufRead, BufReader, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use updater_core::conformance::notifier::Received;

use crate::services::{has_program, unavailable};

/// One message as the server received it.
#[derive(Debug, Clone)]
pub struct Mail {
    /// `MAIL FROM`.
    pub from: String,
    /// `RCPT TO`s.
    pub to: Vec<String>,
    /// The message as sent (headers and body).
    pub raw: Vec<u8>,
}

impl Mail {
    fn parsed(&self) -> mailparse::ParsedMail<'_> {
        mailparse::parse_mail(&self.raw).unwrap()
    }

    /// The decoded value of header `name`.
    pub fn header(&self, name: &str) -> Option<String> {
        use mailparse::MailHeaderMap;
        self.parsed().headers.get_first_value(name)
    }

    /// The decoded subject.
    pub fn subject(&self) -> String {
        self.header("Subject").unwrap_or_default()
    }

    /// The content types of the parts, in order (`multipart/alternative`, `text/plain`, `text/html`).
    pub fn content_types(&self) -> Vec<String> {
        fn walk(part: &mailparse::ParsedMail<'_>, out: &mut Vec<String>) {
            out.push(part.ctype.mimetype.clone());
            for sub in &part.subparts {
                walk(sub, out);
            }
        }
        let mut out = Vec::new();
        walk(&self.parsed(), &mut out);
        out
    }

    fn part(&self, mimetype: &str) -> Option<String> {
        fn find(part: &mailparse::ParsedMail<'_>, mimetype: &str) -> Option<String> {
            if part.ctype.mimetype == mimetype {
                return part.get_body().ok();
            }
            part.subparts.iter().find_map(|p| find(p, mimetype))
        }
        find(&self.parsed(), mimetype)
    }

    /// The decoded `text/plain` part.
    pub fn text(&self) -> Option<String> {
        self.part("text/plain")
    }

    /// The decoded `text/html` part.
    pub fn html(&self) -> Option<String> {
        self.part("text/html")
    }

    /// As the notifier conformance suite reads it: the event id from
    /// `X-Updater-Event-Id`, the subject and text part as the text.
    pub fn received(&self) -> Received {
        Received {
            event_id: self.header("X-Updater-Event-Id").unwrap_or_default(),
            text: format!("{}\n{}", self.subject(), self.text().unwrap_or_default()),
        }
    }
}

/// What the Rust receiver answers to `DATA`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SmtpMode {
    /// `250`: accepted.
    Accept,
    /// `451`: try again later.
    TemporaryFailure,
}

struct Shared {
    mails: Mutex<Vec<Mail>>,
    mode: Mutex<SmtpMode>,
    auth: Option<(String, String)>,
    stop: AtomicBool,
}

/// A plain-SMTP server in Rust on 127.0.0.1 (port 0), stopped when dropped.
pub struct SmtpReceiver {
    port: u16,
    shared: Arc<Shared>,
    accept: Option<JoinHandle<()>>,
}

impl std::fmt::Debug for SmtpReceiver {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SmtpReceiver")
            .field("port", &self.port)
            .finish_non_exhaustive()
    }
}

impl SmtpReceiver {
    /// A server accepting every message, without AUTH.
    pub fn start() -> SmtpReceiver {
        Self::start_with(None)
    }

    /// A server that requires AUTH (PLAIN or LOGIN) with `user` and `password`.
    pub fn start_with_auth(user: &str, password: &str) -> SmtpReceiver {
        Self::start_with(Some((user.to_string(), password.to_string())))
    }

    fn start_with(auth: Option<(String, String)>) -> SmtpReceiver {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let shared = Arc::new(Shared {
            mails: Mutex::new(Vec::new()),
            mode: Mutex::new(SmtpMode::Accept),
            auth,
            stop: AtomicBool::new(false),
        });
        let accept = {
            let shared = Arc::clone(&shared);
            std::thread::spawn(move || {
                for stream in listener.incoming() {
                    if shared.stop.load(Ordering::SeqCst) {
                        break;
                    }
                    let Ok(stream) = stream else { continue };
                    let shared = Arc::clone(&shared);
                    std::thread::spawn(move || {
                        let _ = session(stream, &shared);
                    });
                }
            })
        };
        SmtpReceiver {
            port,
            shared,
            accept: Some(accept),
        }
    }

    /// The port on 127.0.0.1.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// Changes what `DATA` is answered.
    pub fn set_mode(&self, mode: SmtpMode) {
        *self.shared.mode.lock().unwrap() = mode;
    }

    /// Every message accepted so far.
    pub fn mails(&self) -> Vec<Mail> {
        self.shared.mails.lock().unwrap().clone()
    }

    /// Waits up to `timeout` for `count` messages.
    pub fn wait_for(&self, count: usize, timeout: Duration) -> Vec<Mail> {
        let deadline = Instant::now() + timeout;
        loop {
            let mails = self.mails();
            if mails.len() >= count || Instant::now() >= deadline {
                return mails;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for SmtpReceiver {
    fn drop(&mut self) {
        self.shared.stop.store(true, Ordering::SeqCst);
        let _ = TcpStream::connect(("127.0.0.1", self.port));
        if let Some(accept) = self.accept.take() {
            let _ = accept.join();
        }
    }
}

fn base64_decode(text: &str) -> Vec<u8> {
    const ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = Vec::new();
    let mut buffer = 0u32;
    let mut bits = 0;
    for c in text.trim().bytes() {
        let Some(value) = ALPHABET.iter().position(|&a| a == c) else {
            continue;
        };
        buffer = (buffer << 6) | value as u32;
        bits += 6;
        if bits >= 8 {
            bits -= 8;
            out.push((buffer >> bits) as u8);
        }
    }
    out
}

fn session(stream: TcpStream, shared: &Shared) -> std::io::Result<()> {
    stream.set_read_timeout(Some(Duration::from_secs(10)))?;
    let mut writer = stream.try_clone()?;
    let mut reader = BufReader::new(stream);
    let mut say = |line: &str| writer.write_all(format!("{line}\r\n").as_bytes());
    say("220 127.0.0.1 updater-testkit SMTP")?;
    let mut authenticated = shared.auth.is_none();
    let (mut from, mut to) = (String::new(), Vec::new());
    let mut line = String::new();
    loop {
        line.clear();
        if reader.read_line(&mut line)? == 0 {
            return Ok(());
        }
        let command = line.trim_end().to_string();
        let upper = command.to_ascii_uppercase();
        let check = |user: &str, password: &str| {
            shared
                .auth
                .as_ref()
                .is_some_and(|(u, p)| u == user && p == password)
        };
        if upper.starts_with("EHLO") {
            say("250-127.0.0.1")?;
            if shared.auth.is_some() {
                say("250-AUTH PLAIN LOGIN")?;
            }
            say("250 8BITMIME")?;
        } else if upper.starts_with("HELO") {
            say("250 127.0.0.1")?;
        } else if upper.starts_with("AUTH PLAIN") {
            let data = command.split_whitespace().nth(2).map(str::to_string);
            let data = match data {
                Some(d) => d,
                None => {
                    say("334 ")?;
                    let mut next = String::new();
                    reader.read_line(&mut next)?;
                    next
                }
            };
            let decoded = base64_decode(&data);
            let parts: Vec<&[u8]> = decoded.split(|&b| b == 0).collect();
            let ok = parts.len() == 3
                && check(
                    &String::from_utf8_lossy(parts[1]),
                    &String::from_utf8_lossy(parts[2]),
                );
            authenticated = ok;
            say(if ok {
                "235 2.7.0 Authentication successful"
            } else {
                "535 5.7.8 Authentication credentials invalid"
            })?;
        } else if upper.starts_with("AUTH LOGIN") {
            say("334 VXNlcm5hbWU6")?;
            let mut user = String::new();
            reader.read_line(&mut user)?;
            say("334 UGFzc3dvcmQ6")?;
            let mut password = String::new();
            reader.read_line(&mut password)?;
            let ok = check(
                &String::from_utf8_lossy(&base64_decode(&user)),
                &String::from_utf8_lossy(&base64_decode(&password)),
            );
            authenticated = ok;
            say(if ok {
                "235 2.7.0 Authentication successful"
            } else {
                "535 5.7.8 Authentication credentials invalid"
            })?;
        } else if upper.starts_with("MAIL FROM:") {
            if !authenticated {
                say("530 5.7.0 Authentication required")?;
                continue;
            }
            from = command[10..].trim().trim_matches(['<', '>']).to_string();
            to.clear();
            say("250 OK")?;
        } else if upper.starts_with("RCPT TO:") {
            to.push(command[8..].trim().trim_matches(['<', '>']).to_string());
            say("250 OK")?;
        } else if upper == "DATA" {
            say("354 End data with <CR><LF>.<CR><LF>")?;
            let mut raw = Vec::new();
            loop {
                let mut data = String::new();
                if reader.read_line(&mut data)? == 0 {
                    return Ok(());
                }
                if data == ".\r\n" || data == ".\n" {
                    break;
                }
                let data = data.strip_prefix('.').unwrap_or(&data);
                raw.extend_from_slice(data.as_bytes());
            }
            if *shared.mode.lock().unwrap() == SmtpMode::TemporaryFailure {
                say("451 4.3.0 Try again later")?;
                continue;
            }
            shared.mails.lock().unwrap().push(Mail {
                from: from.clone(),
                to: to.clone(),
                raw,
            });
            say("250 2.0.0 OK queued")?;
        } else if upper == "RSET" || upper == "NOOP" {
            say("250 OK")?;
        } else if upper == "QUIT" {
            say("221 Bye")?;
            return Ok(());
        } else {
            say("502 Command not implemented")?;
        }
    }
}

/// How the aiosmtpd server protects connections.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TlsMode {
    /// `STARTTLS` offered and required before AUTH and mail.
    StartTls,
    /// TLS from the first byte.
    Implicit,
}

const AIOSMTPD_SCRIPT: &str = r#"
import os, ssl, sys, time
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult, LoginPassword

out, port, mode, user, password, cert, key = sys.argv[1:8]

class Handler:
    async def handle_DATA(self, server, session, envelope):
        if os.path.exists(os.path.join(out, "FAIL")):
            return "451 4.3.0 try again later"
        name = os.path.join(out, "%d.eml" % time.time_ns())
        with open(name + ".tmp", "wb") as f:
            f.write(envelope.original_content or envelope.content)
        os.rename(name + ".tmp", name)
        return "250 2.0.0 OK queued"

def authenticator(server, session, envelope, mechanism, auth_data):
    ok = isinstance(auth_data, LoginPassword) and auth_data.login == user.encode() and auth_data.password == password.encode()
    return AuthResult(success=ok, handled=False)

context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
context.load_cert_chain(cert, key)
kwargs = dict(hostname="127.0.0.1", port=int(port), authenticator=authenticator, auth_required=True)
if mode == "starttls":
    controller = Controller(Handler(), tls_context=context, require_starttls=True, auth_require_tls=True, **kwargs)
else:
    controller = Controller(Handler(), ssl_context=context, auth_require_tls=False, server_hostname="localhost", **kwargs)
controller.start()
print("READY", flush=True)
try:
    sys.stdin.read()
finally:
    controller.stop()
"#;

/// A real SMTP server (Python's aiosmtpd) on 127.0.0.1 with TLS and AUTH,
/// stopped when dropped.
pub struct Aiosmtpd {
    dir: tempfile::TempDir,
    port: u16,
    mode: TlsMode,
    user: String,
    password: String,
    child: Option<Child>,
}

impl std::fmt::Debug for Aiosmtpd {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Aiosmtpd")
            .field("port", &self.port)
            .field("mode", &self.mode)
            .finish_non_exhaustive()
    }
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn run(command: &mut Command) -> bool {
    command
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

/// A CA and a certificate for `localhost` and 127.0.0.1 signed by it, in `dir`:
/// `ca.pem`, `cert.pem`, `key.pem`. `None` when `openssl` fails.
fn make_certificates(dir: &Path) -> Option<()> {
    let at = |name: &str| dir.join(name);
    let ok = run(Command::new("openssl").args(["req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2", "-subj", "/CN=updater test CA", "-keyout"]).arg(at("ca.key")).arg("-out").arg(at("ca.pem")))
        && run(Command::new("openssl").args(["req", "-newkey", "rsa:2048", "-nodes", "-subj", "/CN=localhost", "-keyout"]).arg(at("key.pem")).arg("-out").arg(at("req.csr")))
        && std::fs::write(
            at("ext.cnf"),
            "subjectAltName=DNS:localhost,IP:127.0.0.1\nbasicConstraints=CA:FALSE\nkeyUsage=digitalSignature,keyEncipherment\nextendedKeyUsage=serverAuth\n",
        )
        .is_ok()
        && run(Command::new("openssl").args(["x509", "-req", "-days", "2", "-CAcreateserial", "-in"]).arg(at("req.csr")).arg("-CA").arg(at("ca.pem")).arg("-CAkey").arg(at("ca.key")).arg("-out").arg(at("cert.pem")).arg("-extfile").arg(at("ext.cnf")));
    ok.then_some(())
}

impl Aiosmtpd {
    /// Starts aiosmtpd in `mode` requiring AUTH as `user`/`password`. `None`
    /// (after printing why) when Python, aiosmtpd or openssl is missing;
    /// under `CI=true` that is a failure.
    pub fn start(mode: TlsMode, user: &str, password: &str) -> Option<Aiosmtpd> {
        if !has_program("python3") {
            unavailable("aiosmtpd", "cannot run: python3 is not on PATH");
            return None;
        }
        let import = Command::new("python3")
            .args(["-c", "import aiosmtpd"])
            .stderr(Stdio::null())
            .status();
        if !import.is_ok_and(|s| s.success()) {
            unavailable("aiosmtpd", "is not installed (pip install aiosmtpd)");
            return None;
        }
        if !has_program("openssl") {
            unavailable("aiosmtpd", "needs openssl to make a test certificate");
            return None;
        }
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir(dir.path().join("mail")).unwrap();
        std::fs::write(dir.path().join("server.py"), AIOSMTPD_SCRIPT).unwrap();
        if make_certificates(dir.path()).is_none() {
            unavailable("aiosmtpd", "openssl could not make a test certificate");
            return None;
        }
        let mut server = Aiosmtpd {
            dir,
            port: free_port(),
            mode,
            user: user.to_string(),
            password: password.to_string(),
            child: None,
        };
        server.restart();
        Some(server)
    }

    /// The port on 127.0.0.1.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// The CA certificate (PEM) the server's certificate is signed by.
    pub fn ca_file(&self) -> PathBuf {
        self.dir.path().join("ca.pem")
    }

    /// Kills the server (connections are refused until [`restart`](Self::restart)).
    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Starts the server again on the same port.
    pub fn restart(&mut self) {
        self.stop();
        let d = self.dir.path();
        let mut child = Command::new("python3")
            .arg(d.join("server.py"))
            .arg(d.join("mail"))
            .arg(self.port.to_string())
            .arg(match self.mode {
                TlsMode::StartTls => "starttls",
                TlsMode::Implicit => "tls",
            })
            .arg(&self.user)
            .arg(&self.password)
            .arg(d.join("cert.pem"))
            .arg(d.join("key.pem"))
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .unwrap();
        let stdout = child.stdout.take().unwrap();
        let mut line = String::new();
        BufReader::new(stdout).read_line(&mut line).unwrap();
        assert_eq!(line.trim(), "READY", "aiosmtpd did not start");
        self.child = Some(child);
    }

    /// Answers `451` to every message from now on (`true`) or accepts again.
    pub fn fail_deliveries(&self, fail: bool) {
        let flag = self.dir.path().join("mail/FAIL");
        if fail {
            std::fs::write(flag, "").unwrap();
        } else {
            let _ = std::fs::remove_file(flag);
        }
    }

    /// Every message received so far, oldest first.
    pub fn mails(&self) -> Vec<Mail> {
        let mut files: Vec<PathBuf> = std::fs::read_dir(self.dir.path().join("mail"))
            .unwrap()
            .flatten()
            .map(|e| e.path())
            .filter(|p| p.extension().is_some_and(|e| e == "eml"))
            .collect();
        files.sort();
        files
            .into_iter()
            .map(|path| Mail {
                from: String::new(),
                to: Vec::new(),
                raw: std::fs::read(path).unwrap(),
            })
            .collect()
    }

    /// Waits up to `timeout` for `count` messages.
    pub fn wait_for(&self, count: usize, timeout: Duration) -> Vec<Mail> {
        let deadline = Instant::now() + timeout;
        loop {
            let mails = self.mails();
            if mails.len() >= count || Instant::now() >= deadline {
                return mails;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for Aiosmtpd {
    fn drop(&mut self) {
        self.stop();
    }
}
