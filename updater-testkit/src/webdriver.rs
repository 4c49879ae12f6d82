//! A real browser for the tests: Debian's `chromium` driven through
//! `chromedriver` with the W3C WebDriver protocol — a small blocking client
//! over a loopback socket, enough to open pages, click, type, read text and
//! take screenshots. Chromium runs headless with a fresh profile and every
//! background connection off (the machine has no network).

use std::io::{Read, Write};
use std::net::TcpStream;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Mutex, MutexGuard};
use std::time::{Duration, Instant};

use serde_json::{Value, json};

/// One browser at a time per test binary: two Chromiums starting together
/// on two shared cores made chromedriver reset the session request.
static ONE_BROWSER: Mutex<()> = Mutex::new(());

/// The element key of the W3C protocol.
const ELEMENT: &str = "element-6066-11e4-a52e-4f735466cecf";

/// Whether `chromium` and `chromedriver` are installed; when not, says why
/// (the skip-or-fail rule of [`crate::services::unavailable`]).
pub fn available() -> bool {
    for program in ["chromium", "chromedriver"] {
        if !crate::services::has_program(program) {
            crate::services::unavailable(
                "the browser test",
                &format!("needs {program} (apt-get install chromium chromium-driver)"),
            );
            return false;
        }
    }
    true
}

/// A running chromedriver and one browser session; both end when dropped.
#[derive(Debug)]
pub struct Browser {
    driver: Child,
    port: u16,
    session: String,
    _profile: tempfile::TempDir,
    _turn: MutexGuard<'static, ()>,
}

/// One element of the page.
#[derive(Debug, Clone)]
pub struct Element(String);

impl Browser {
    /// Starts chromedriver on a free loopback port and a headless Chromium
    /// with a fresh profile, `width` x `height` pixels.
    pub fn start(width: u32, height: u32) -> Browser {
        Self::start_with(width, height, true)
    }

    /// Like [`start`](Self::start); `javascript: false` turns scripts off
    /// (to prove pages work without them).
    pub fn start_with(width: u32, height: u32, javascript: bool) -> Browser {
        let turn = ONE_BROWSER.lock().unwrap_or_else(|e| e.into_inner());
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        // Its own process group: dropping the browser ends chromedriver and
        // every Chromium process it started, even after a failed session.
        let driver = Command::new("chromedriver")
            .arg(format!("--port={port}"))
            .process_group(0)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let deadline = Instant::now() + Duration::from_secs(20);
        while TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(Instant::now() < deadline, "chromedriver did not start");
            std::thread::sleep(Duration::from_millis(50));
        }
        let profile = tempfile::tempdir().unwrap();
        let mut browser = Browser {
            driver,
            port,
            session: String::new(),
            _profile: profile,
            _turn: turn,
        };
        // Listening is not ready: wait until chromedriver says so.
        while browser
            .try_call("GET", "/status", Value::Null)
            .map(|status| status["ready"] != Value::Bool(true))
            .unwrap_or(true)
        {
            assert!(Instant::now() < deadline, "chromedriver never became ready");
            std::thread::sleep(Duration::from_millis(100));
        }
        let mut args = vec![
            "--headless".to_string(),
            "--no-sandbox".to_string(),
            "--disable-gpu".to_string(),
            "--disable-quic".to_string(),
            "--no-first-run".to_string(),
            "--disable-background-networking".to_string(),
            "--disable-component-update".to_string(),
            "--disable-sync".to_string(),
            "--disable-dev-shm-usage".to_string(),
            format!("--window-size={width},{height}"),
            format!("--user-data-dir={}", browser._profile.path().display()),
        ];
        if !javascript {
            args.push("--blink-settings=scriptEnabled=false".to_string());
        }
        let capabilities = json!({ "capabilities": { "alwaysMatch": {
            "browserName": "chrome",
            "goog:chromeOptions": { "binary": "/usr/bin/chromium", "args": args }
        } } });
        // A reset connection while Chromium starts is retried (twice).
        let mut attempt = 0;
        let answer = loop {
            attempt += 1;
            match browser.try_call("POST", "/session", capabilities.clone()) {
                Ok(answer) => break answer,
                Err(_) if attempt < 3 => std::thread::sleep(Duration::from_secs(1)),
                Err(error) => panic!("{error}"),
            }
        };
        browser.session = answer["sessionId"]
            .as_str()
            .unwrap_or_else(|| panic!("no session: {answer}"))
            .to_string();
        browser
    }

    fn call(&self, method: &str, path: &str, body: Value) -> Value {
        self.try_call(method, path, body)
            .unwrap_or_else(|error| panic!("{error}"))
    }

    /// One request; `Err` names the request when the connection fails.
    fn try_call(&self, method: &str, path: &str, body: Value) -> Result<Value, String> {
        let body = if method == "GET" || method == "DELETE" {
            String::new()
        } else {
            body.to_string()
        };
        let failed =
            |error: std::io::Error| format!("webdriver {method} {path}: no answer ({error})");
        let mut stream = TcpStream::connect(("127.0.0.1", self.port)).map_err(failed)?;
        stream
            .set_read_timeout(Some(Duration::from_secs(120)))
            .map_err(failed)?;
        write!(
            stream,
            "{method} {path} HTTP/1.1\r\nHost: 127.0.0.1:{}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
            self.port,
            body.len()
        )
        .map_err(failed)?;
        // chromedriver announces `Connection: close` but keeps the socket
        // open: read the head, then exactly Content-Length bytes.
        let mut response = Vec::new();
        let mut byte = [0u8; 1];
        while !response.ends_with(b"\r\n\r\n") {
            match stream.read(&mut byte) {
                Ok(1) => response.push(byte[0]),
                Ok(_) => break,
                Err(error) => return Err(failed(error)),
            }
        }
        let head = String::from_utf8_lossy(&response).to_ascii_lowercase();
        let length = head
            .lines()
            .find_map(|line| line.strip_prefix("content-length:"))
            .and_then(|v| v.trim().parse::<usize>().ok());
        let payload = match length {
            Some(length) => {
                let mut body = vec![0u8; length];
                stream.read_exact(&mut body).map_err(failed)?;
                String::from_utf8_lossy(&body).into_owned()
            }
            None => {
                let mut body = Vec::new();
                let _ = stream.read_to_end(&mut body);
                let text = String::from_utf8_lossy(&body).into_owned();
                if head.contains("transfer-encoding: chunked") {
                    dechunk(&text)
                } else {
                    text
                }
            }
        };
        let value: Value = serde_json::from_str(&payload).unwrap_or(Value::Null);
        Ok(value["value"].clone())
    }

    fn session_call(&self, method: &str, path: &str, body: Value) -> Value {
        let value = self.call(method, &format!("/session/{}{path}", self.session), body);
        if let Some(error) = value.get("error") {
            panic!("webdriver {method} {path}: {error}: {}", value["message"]);
        }
        value
    }

    /// Opens `url`.
    pub fn goto(&self, url: &str) {
        self.session_call("POST", "/url", json!({ "url": url }));
    }

    /// The current URL.
    pub fn url(&self) -> String {
        self.session_call("GET", "/url", Value::Null)
            .as_str()
            .unwrap_or_default()
            .to_string()
    }

    /// The first element matching the CSS `selector`, if any.
    pub fn try_find(&self, selector: &str) -> Option<Element> {
        let value = self.call(
            "POST",
            &format!("/session/{}/element", self.session),
            json!({ "using": "css selector", "value": selector }),
        );
        value[ELEMENT].as_str().map(|id| Element(id.to_string()))
    }

    /// The first element matching `selector`, waiting up to `timeout` for it.
    pub fn find(&self, selector: &str, timeout: Duration) -> Element {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(element) = self.try_find(selector) {
                return element;
            }
            assert!(
                Instant::now() < deadline,
                "no {selector} on {} within {timeout:?}:\n{}",
                self.url(),
                self.execute("return document.documentElement.outerHTML")
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// Clicks the element.
    pub fn click(&self, element: &Element) {
        self.session_call("POST", &format!("/element/{}/click", element.0), json!({}));
    }

    /// Clicks the first element matching `selector` (waiting for it).
    pub fn click_on(&self, selector: &str) {
        let element = self.find(selector, Duration::from_secs(10));
        self.click(&element);
    }

    /// Types `text` into the element.
    pub fn type_into(&self, selector: &str, text: &str) {
        let element = self.find(selector, Duration::from_secs(10));
        self.session_call(
            "POST",
            &format!("/element/{}/value", element.0),
            json!({ "text": text }),
        );
    }

    /// The visible text of the first element matching `selector` (empty when none).
    pub fn text(&self, selector: &str) -> String {
        match self.try_find(selector) {
            Some(element) => self
                .session_call("GET", &format!("/element/{}/text", element.0), Value::Null)
                .as_str()
                .unwrap_or_default()
                .to_string(),
            None => String::new(),
        }
    }

    /// An attribute or property of the first element matching `selector`.
    pub fn property(&self, selector: &str, name: &str) -> Value {
        match self.try_find(selector) {
            Some(element) => self.session_call(
                "GET",
                &format!("/element/{}/property/{name}", element.0),
                Value::Null,
            ),
            None => Value::Null,
        }
    }

    /// Resizes the window to `width` x `height` pixels (a phone: 390 x 844).
    pub fn resize(&self, width: u32, height: u32) {
        self.session_call(
            "POST",
            "/window/rect",
            json!({ "width": width, "height": height }),
        );
    }

    /// Runs `script` (a function body) in the page; its return value.
    pub fn execute(&self, script: &str) -> Value {
        self.session_call(
            "POST",
            "/execute/sync",
            json!({ "script": script, "args": [] }),
        )
    }

    /// Waits until `condition` holds (checked every 100 ms), up to `timeout`.
    pub fn wait_until(&self, what: &str, timeout: Duration, condition: impl Fn(&Browser) -> bool) {
        let deadline = Instant::now() + timeout;
        while !condition(self) {
            assert!(
                Instant::now() < deadline,
                "{what}: not within {timeout:?} on {}:\n{}",
                self.url(),
                self.text("body")
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// Saves a PNG screenshot of the page to `dir/name.png`; its path.
    pub fn screenshot(&self, dir: &Path, name: &str) -> PathBuf {
        let data = self.session_call("GET", "/screenshot", Value::Null);
        let bytes = base64_decode(data.as_str().unwrap_or_default());
        std::fs::create_dir_all(dir).unwrap();
        let path = dir.join(format!("{name}.png"));
        std::fs::write(&path, bytes).unwrap();
        path
    }
}

impl Drop for Browser {
    fn drop(&mut self) {
        if !self.session.is_empty() {
            let _ = self.call("DELETE", &format!("/session/{}", self.session), Value::Null);
        }
        let group = format!("-{}", self.driver.id());
        let _ = Command::new("kill").args(["-TERM", "--", &group]).status();
        let _ = self.driver.kill();
        let _ = self.driver.wait();
    }
}

fn dechunk(body: &str) -> String {
    let mut out = String::new();
    let mut rest = body;
    while let Some((size, after)) = rest.split_once("\r\n") {
        let Ok(size) = usize::from_str_radix(size.trim(), 16) else {
            break;
        };
        if size == 0 || after.len() < size {
            break;
        }
        out.push_str(&after[..size]);
        rest = after[size..].trim_start_matches("\r\n");
    }
    out
}

/// Standard base64 (the screenshots' encoding).
fn base64_decode(text: &str) -> Vec<u8> {
    let value = |c: u8| -> Option<u32> {
        Some(match c {
            b'A'..=b'Z' => c - b'A',
            b'a'..=b'z' => c - b'a' + 26,
            b'0'..=b'9' => c - b'0' + 52,
            b'+' => 62,
            b'/' => 63,
            _ => return None,
        } as u32)
    };
    let mut out = Vec::with_capacity(text.len() * 3 / 4);
    let mut buffer = 0u32;
    let mut bits = 0;
    for c in text.bytes() {
        let Some(v) = value(c) else { continue };
        buffer = (buffer << 6) | v;
        bits += 6;
        if bits >= 8 {
            bits -= 8;
            out.push((buffer >> bits) as u8);
            buffer &= (1 << bits) - 1;
        }
    }
    out
}

#[cfg(test)]
mod tests {
    #[test]
    fn base64_decodes_padding_and_all_characters() {
        assert_eq!(super::base64_decode("aGVsbG8="), b"hello");
        assert_eq!(super::base64_decode("+/8A"), vec![0xfb, 0xff, 0x00]);
    }
}
