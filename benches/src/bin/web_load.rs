//! The web console's performance targets (DESIGN.md): the status endpoint
//! and the dashboard under 100 concurrent clients while an update runs
//! (p99 under 50 ms), and each server-sent event reaching 100 subscribers
//! within 50 ms.
//!
//! Everything runs on loopback in this process: the console (`updater-web`
//! on axum) around a test-kit application whose update is kept running by
//! a slow health check, and an in-process load generator (100 keep-alive
//! HTTP/1.1 connections). When `wrk` is installed it measures the status
//! endpoint too, as the standard tool's cross-check.
//!
//! Run: `cargo run --release -p updater-benches --bin web_load [-- --quick]`.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpStream;
use updater_core::command::ShellCommand;
use updater_core::health::CommandHealthCheck;
use updater_core::pipeline::ApplyRequest;
use updater_core::progress::{ProgressEvent, ProgressObserver};
use updater_core::step::Step;
use updater_testkit::app::Fixture;
use updater_web::WebState;
use updater_web::auth::ApiToken;
use updater_web::operations::{JobOutcome, Launch, OperationKind};

const TOKEN: &str = "bench-token";
const CLIENTS: usize = 100;

type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// One keep-alive connection: sends `GET path`, reads the whole answer.
struct Client {
    reader: BufReader<TcpStream>,
    request: Vec<u8>,
}

impl Client {
    async fn connect(address: std::net::SocketAddr, path: &str) -> Result<Client, BoxError> {
        let stream = TcpStream::connect(address).await?;
        stream.set_nodelay(true)?;
        let request = format!(
            "GET {path} HTTP/1.1\r\nHost: {address}\r\nAuthorization: Bearer {TOKEN}\r\n\r\n"
        )
        .into_bytes();
        Ok(Client {
            reader: BufReader::new(stream),
            request,
        })
    }

    async fn get(&mut self) -> Result<u16, BoxError> {
        self.reader.get_mut().write_all(&self.request).await?;
        let mut line = String::new();
        self.reader.read_line(&mut line).await?;
        let status: u16 = line.split(' ').nth(1).unwrap_or("0").parse()?;
        let mut length = 0usize;
        loop {
            line.clear();
            self.reader.read_line(&mut line).await?;
            if line == "\r\n" || line.is_empty() {
                break;
            }
            if let Some((k, v)) = line.split_once(':')
                && k.eq_ignore_ascii_case("content-length")
            {
                length = v.trim().parse()?;
            }
        }
        let mut body = vec![0u8; length];
        self.reader.read_exact(&mut body).await?;
        Ok(status)
    }
}

/// Latencies in microseconds, sorted; the `p`th percentile.
fn percentile(sorted: &[u64], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let rank = ((p / 100.0) * (sorted.len() - 1) as f64).round() as usize;
    sorted[rank.min(sorted.len() - 1)] as f64 / 1000.0
}

struct Load {
    requests: usize,
    errors: usize,
    p50: f64,
    p99: f64,
    max: f64,
    rate: f64,
}

async fn load(
    address: std::net::SocketAddr,
    path: &str,
    duration: Duration,
) -> Result<Load, BoxError> {
    let deadline = Instant::now() + duration;
    let mut tasks = Vec::new();
    for _ in 0..CLIENTS {
        let path = path.to_string();
        tasks.push(tokio::spawn(async move {
            let mut latencies = Vec::new();
            let mut errors = 0usize;
            let mut client = Client::connect(address, &path).await?;
            while Instant::now() < deadline {
                let started = Instant::now();
                match client.get().await {
                    Ok(200) => latencies.push(started.elapsed().as_micros() as u64),
                    Ok(_) | Err(_) => {
                        errors += 1;
                        client = Client::connect(address, &path).await?;
                    }
                }
            }
            Ok::<_, BoxError>((latencies, errors))
        }));
    }
    let mut all = Vec::new();
    let mut errors = 0;
    for task in tasks {
        let (latencies, failed) = task.await??;
        all.extend(latencies);
        errors += failed;
    }
    all.sort_unstable();
    Ok(Load {
        requests: all.len(),
        errors,
        p50: percentile(&all, 50.0),
        p99: percentile(&all, 99.0),
        max: all.last().map_or(f64::NAN, |m| *m as f64 / 1000.0),
        rate: all.len() as f64 / duration.as_secs_f64(),
    })
}

/// `wrk`'s 99th percentile for `url`, when wrk is installed.
fn wrk_p99(url: &str, seconds: u64) -> Option<String> {
    let output = std::process::Command::new("wrk")
        .args(["-t2", "-c100", &format!("-d{seconds}s"), "--latency"])
        .args(["-H", &format!("Authorization: Bearer {TOKEN}")])
        .arg(url)
        .output()
        .ok()?;
    let text = String::from_utf8_lossy(&output.stdout);
    let p99 = text
        .lines()
        .find(|l| l.trim_start().starts_with("99%"))?
        .split_whitespace()
        .nth(1)?
        .to_string();
    let rate = text
        .lines()
        .find(|l| l.starts_with("Requests/sec:"))?
        .split_whitespace()
        .nth(1)?
        .to_string();
    Some(format!("p99 {p99}, {rate} req/s"))
}

/// SSE fan-out: `CLIENTS` subscribers of one operation emitting `events`
/// progress events `gap` apart; for each event, the time from its emission
/// to its arrival at the slowest subscriber.
async fn fan_out(
    state: &WebState,
    address: std::net::SocketAddr,
    events: usize,
    gap: Duration,
) -> Result<Vec<f64>, BoxError> {
    let (go, gate) = std::sync::mpsc::channel::<()>();
    let emitted: Arc<Mutex<Vec<Instant>>> = Arc::default();
    let op = state.operations().start(
        Launch {
            kind: OperationKind::Check,
            initiated_by: "web:bench".into(),
            target: None,
        },
        {
            let emitted = emitted.clone();
            move |reporter| {
                let _ = gate.recv();
                for i in 0..events {
                    emitted.lock().map(|mut e| e.push(Instant::now())).ok();
                    reporter.on_progress(&ProgressEvent::message(
                        Step::Download,
                        u8::try_from(i * 100 / events).unwrap_or(100),
                        format!("event {i}"),
                    ));
                    std::thread::sleep(gap);
                }
                Ok(JobOutcome {
                    result: serde_json::json!({}),
                    update_id: None,
                })
            }
        },
        |_| None,
    )?;
    let path = format!("/api/operations/{}/events", op.id());
    let mut subscribers = Vec::new();
    let (ready_tx, mut ready_rx) = tokio::sync::mpsc::channel::<()>(CLIENTS);
    for _ in 0..CLIENTS {
        let path = path.clone();
        let ready = ready_tx.clone();
        subscribers.push(tokio::spawn(async move {
            let stream = TcpStream::connect(address).await?;
            stream.set_nodelay(true)?;
            let mut reader = BufReader::new(stream);
            reader
                .get_mut()
                .write_all(
                    format!("GET {path} HTTP/1.1\r\nHost: {address}\r\nAuthorization: Bearer {TOKEN}\r\n\r\n")
                        .as_bytes(),
                )
                .await?;
            let mut arrivals = Vec::new();
            let mut line = String::new();
            let mut announced = false;
            loop {
                line.clear();
                if reader.read_line(&mut line).await? == 0 {
                    break;
                }
                if line.starts_with("event: state") && !announced {
                    announced = true;
                    let _ = ready.send(()).await;
                }
                if line.starts_with("event: progress") {
                    arrivals.push(Instant::now());
                }
                if line.starts_with("event: done") {
                    break;
                }
            }
            Ok::<_, BoxError>(arrivals)
        }));
    }
    drop(ready_tx);
    for _ in 0..CLIENTS {
        ready_rx.recv().await;
    }
    let _ = go.send(());
    let mut slowest = vec![Duration::ZERO; events];
    for subscriber in subscribers {
        let arrivals = subscriber.await??;
        let emitted = emitted.lock().map(|e| e.clone()).unwrap_or_default();
        for (i, at) in arrivals.iter().enumerate().take(events) {
            if let Some(sent) = emitted.get(i) {
                slowest[i] = slowest[i].max(at.saturating_duration_since(*sent));
            }
        }
    }
    Ok(slowest.iter().map(|d| d.as_secs_f64() * 1000.0).collect())
}

#[allow(clippy::print_stdout)]
fn main() -> Result<(), BoxError> {
    let quick = std::env::args().any(|a| a == "--quick");
    let seconds = if quick { 2 } else { 10 };
    let fx = Fixture::new();
    // The update stays in its health check for the whole load test.
    let hold = seconds * 2 + 8;
    let updater = fx
        .builder()
        .with_health_check(Arc::new(CommandHealthCheck::new(ShellCommand::new(
            format!("sleep {hold}"),
        ))))
        .configure(|c| c.health_timeout = Duration::from_secs(hold + 30))
        .build()?;
    let updater = Arc::new(updater);
    let state = WebState::builder(updater.clone())
        .with_api_token(ApiToken::from_sha256_hex(
            "bench",
            &ApiToken::digest(TOKEN),
        )?)
        .build()?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    runtime.block_on(async move {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
        let address = listener.local_addr()?;
        let app = updater_web::router(state.clone());
        tokio::spawn(async move { axum::serve(listener, app).await });

        // An update runs (through the console's runner, as a click would start it).
        let running = {
            let updater = updater.clone();
            state.operations().start(
                Launch {
                    kind: OperationKind::Apply,
                    initiated_by: "web:bench".into(),
                    target: None,
                },
                move |reporter| {
                    let outcome = updater.apply(&ApplyRequest::latest("web:bench"), reporter)?;
                    Ok(JobOutcome {
                        result: serde_json::to_value(outcome).unwrap_or_default(),
                        update_id: None,
                    })
                },
                |_| None,
            )?
        };
        let started = Instant::now();
        while running.view().step != Some(Step::HealthCheck) {
            if started.elapsed() > Duration::from_secs(60) {
                return Err::<(), BoxError>("the update did not reach its health check".into());
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        println!("| measure | clients | requests | errors | req/s | p50 | p99 | max | target | met |");
        println!("|---|---|---|---|---|---|---|---|---|---|");
        for (name, path) in [("GET /api/status", "/api/status"), ("GET / (dashboard page)", "/")] {
            let result = load(address, path, Duration::from_secs(seconds)).await?;
            println!(
                "| {name}, update running | {CLIENTS} | {} | {} | {:.0} | {:.2} ms | {:.2} ms | {:.2} ms | p99 < 50 ms | {} |",
                result.requests,
                result.errors,
                result.rate,
                result.p50,
                result.p99,
                result.max,
                if result.p99 < 50.0 && result.errors == 0 { "yes" } else { "no" }
            );
        }
        let url = format!("http://{address}/api/status");
        let wrk = tokio::task::spawn_blocking(move || wrk_p99(&url, seconds.min(5))).await?;
        if let Some(wrk) = wrk {
            println!("| GET /api/status, update running, measured by `wrk -t2 -c100` | 100 | | | | | {wrk} | | p99 < 50 ms | |");
        }
        let still = running.view().status == updater_web::operations::OperationStatus::Running;
        println!("\n(the update was still running at the end of the load: {still})");
        // Wait for the update to end before the fan-out (one operation at a time).
        while running.view().status == updater_web::operations::OperationStatus::Running {
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        let events = if quick { 10 } else { 50 };
        let mut slowest = fan_out(&state, address, events, Duration::from_millis(20)).await?;
        slowest.sort_by(|a, b| a.total_cmp(b));
        let max = slowest.last().copied().unwrap_or(f64::NAN);
        let median = slowest.get(slowest.len() / 2).copied().unwrap_or(f64::NAN);
        println!(
            "\n| SSE fan-out | subscribers | events | median of slowest arrival | worst | target | met |\n|---|---|---|---|---|---|---|\n| progress event → every subscriber | {CLIENTS} | {events} | {median:.2} ms | {max:.2} ms | ≤ 50 ms | {} |",
            if max <= 50.0 { "yes" } else { "no" }
        );
        Ok(())
    })?;
    Ok(())
}
