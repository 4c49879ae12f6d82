//! [`WebhookReceiver`]: a webhook endpoint on loopback that does what a
//! careful receiver does — checks the `X-Updater-Signature` HMAC over
//! timestamp and body with its own code, refuses stale timestamps, drops
//! an event id it already accepted — and can answer 500s or hang for a
//! while, for retry tests. [`slack_shape`] checks a Slack Block Kit message.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use hmac::{Hmac, Mac};
use serde_json::Value;
use sha2::Sha256;
use updater_core::conformance::notifier::Received;

use crate::http::{Reply, Request, TestServer};

/// One request the receiver accepted (signature valid, event new).
#[derive(Debug, Clone)]
pub struct Hook {
    /// The event id (`Idempotency-Key` / `X-Updater-Event-Id`).
    pub event_id: String,
    /// The JSON body.
    pub body: Value,
    /// The request as received.
    pub request: Request,
}

/// What the receiver answers next.
#[derive(Debug, Clone)]
pub enum Plan {
    /// Answer with this status (no delivery recorded unless 2xx).
    Status(u16),
    /// Wait this long before answering 200 (a timeout for a short client timeout).
    Hang(Duration),
}

#[derive(Default)]
struct State {
    accepted: Vec<Hook>,
    duplicates: Vec<String>,
    refused: Vec<String>,
    requests: usize,
    plan: VecDeque<Plan>,
}

/// A webhook endpoint at `url()`; stops when dropped.
pub struct WebhookReceiver {
    server: TestServer,
    state: Arc<Mutex<State>>,
}

impl std::fmt::Debug for WebhookReceiver {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WebhookReceiver")
            .field("server", &self.server)
            .finish_non_exhaustive()
    }
}

fn verify(secret: &str, request: &Request) -> Result<(), String> {
    let signature = request
        .header("x-updater-signature")
        .ok_or("no signature header")?;
    let timestamp = request
        .header("x-updater-timestamp")
        .ok_or("no timestamp header")?;
    let ts: i64 = timestamp.parse().map_err(|_| "bad timestamp")?;
    let now = chrono::Utc::now().timestamp();
    if (now - ts).abs() > 300 {
        return Err(format!("stale timestamp {ts} (now {now})"));
    }
    let expected = hex::decode(signature.strip_prefix("sha256=").ok_or("not sha256=")?)
        .map_err(|_| "signature is not hex")?;
    let mut mac = Hmac::<Sha256>::new_from_slice(secret.as_bytes()).unwrap();
    mac.update(format!("{ts}.").as_bytes());
    mac.update(&request.body);
    mac.verify_slice(&expected)
        .map_err(|_| "signature mismatch".to_string())
}

impl WebhookReceiver {
    /// A receiver requiring a valid signature with `secret` (`None`: any request).
    pub fn start(secret: Option<&str>) -> WebhookReceiver {
        let state: Arc<Mutex<State>> = Arc::default();
        let secret = secret.map(str::to_string);
        let server = {
            let state = Arc::clone(&state);
            TestServer::start(move |request| {
                let plan = {
                    let mut s = state.lock().unwrap();
                    s.requests += 1;
                    s.plan.pop_front()
                };
                match plan {
                    Some(Plan::Status(status)) if !(200..300).contains(&status) => {
                        return Reply::json(status, r#"{"error":"planned failure"}"#);
                    }
                    Some(Plan::Hang(wait)) => std::thread::sleep(wait),
                    _ => {}
                }
                if let Some(secret) = &secret
                    && let Err(why) = verify(secret, request)
                {
                    state.lock().unwrap().refused.push(why);
                    return Reply::json(401, r#"{"error":"bad signature"}"#);
                }
                let Ok(body) = serde_json::from_slice::<Value>(&request.body) else {
                    state
                        .lock()
                        .unwrap()
                        .refused
                        .push("body is not JSON".into());
                    return Reply::json(400, r#"{"error":"not JSON"}"#);
                };
                let event_id = request
                    .header("idempotency-key")
                    .or_else(|| request.header("x-updater-event-id"))
                    .unwrap_or_default()
                    .to_string();
                let mut s = state.lock().unwrap();
                if s.accepted.iter().any(|h| h.event_id == event_id) {
                    s.duplicates.push(event_id);
                } else {
                    s.accepted.push(Hook {
                        event_id,
                        body,
                        request: request.clone(),
                    });
                }
                Reply::json(200, r#"{"ok":true}"#)
            })
        };
        WebhookReceiver { server, state }
    }

    /// `http://127.0.0.1:<port>/hook`.
    pub fn url(&self) -> String {
        self.server.url("/hook")
    }

    /// Answers the next requests as planned, in order (then normally).
    pub fn plan(&self, plans: impl IntoIterator<Item = Plan>) {
        self.state.lock().unwrap().plan.extend(plans);
    }

    /// Accepted deliveries, one per event.
    pub fn accepted(&self) -> Vec<Hook> {
        self.state.lock().unwrap().accepted.clone()
    }

    /// Event ids that arrived again after being accepted (dropped).
    pub fn duplicates(&self) -> Vec<String> {
        self.state.lock().unwrap().duplicates.clone()
    }

    /// Why requests were refused (bad or missing signature...).
    pub fn refused(&self) -> Vec<String> {
        self.state.lock().unwrap().refused.clone()
    }

    /// Requests received, whatever the answer.
    pub fn requests(&self) -> usize {
        self.state.lock().unwrap().requests
    }

    /// Every request, accepted or repeated, as the notifier suite reads them.
    pub fn received(&self) -> Vec<Received> {
        let s = self.state.lock().unwrap();
        let mut all: Vec<Received> = s
            .accepted
            .iter()
            .map(|h| Received {
                event_id: h.event_id.clone(),
                text: h.body.to_string(),
            })
            .collect();
        all.extend(s.duplicates.iter().map(|id| Received {
            event_id: id.clone(),
            text: String::new(),
        }));
        all
    }

    /// Waits up to `timeout` for `count` accepted deliveries.
    pub fn wait_for(&self, count: usize, timeout: Duration) -> Vec<Hook> {
        let deadline = Instant::now() + timeout;
        loop {
            let accepted = self.accepted();
            if accepted.len() >= count || Instant::now() >= deadline {
                return accepted;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

/// What is wrong with `payload` as a Slack Block Kit message (empty: nothing).
pub fn slack_shape(payload: &Value) -> Vec<String> {
    let mut problems = Vec::new();
    if payload["text"].as_str().is_none_or(|t| t.is_empty()) {
        problems.push("no fallback `text`".to_string());
    }
    let Some(blocks) = payload["blocks"].as_array() else {
        problems.push("no `blocks` array".to_string());
        return problems;
    };
    if blocks.is_empty() || blocks.len() > 50 {
        problems.push(format!("{} blocks (1 to 50 allowed)", blocks.len()));
    }
    for (i, block) in blocks.iter().enumerate() {
        let kind = block["type"].as_str().unwrap_or_default();
        match kind {
            "header" => {
                if block["text"]["type"] != "plain_text" {
                    problems.push(format!("block {i}: a header needs plain_text"));
                }
                if block["text"]["text"]
                    .as_str()
                    .is_none_or(|t| t.chars().count() > 150)
                {
                    problems.push(format!(
                        "block {i}: header text missing or over 150 characters"
                    ));
                }
            }
            "section" => {
                let text_ok = block["text"]["text"]
                    .as_str()
                    .is_some_and(|t| t.chars().count() <= 3000);
                let fields_ok = block["fields"].as_array().is_some_and(|f| {
                    f.len() <= 10
                        && f.iter().all(|x| {
                            x["text"]
                                .as_str()
                                .is_some_and(|t| t.chars().count() <= 2000)
                        })
                });
                if !text_ok && !fields_ok {
                    problems.push(format!(
                        "block {i}: a section needs text (<= 3000) or fields (<= 10, each <= 2000)"
                    ));
                }
            }
            "context" | "actions" => {
                if !block["elements"].is_array() {
                    problems.push(format!("block {i}: {kind} needs elements"));
                }
            }
            "divider" => {}
            other => problems.push(format!("block {i}: unknown type {other:?}")),
        }
    }
    problems
}
