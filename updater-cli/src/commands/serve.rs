//! `serve`: the web console (`updater-web`) on its own, wired to the same
//! parts as every other command; `web hash-password`.

use std::io::{BufRead, IsTerminal, Write};
use std::net::SocketAddr;
use std::os::unix::fs::PermissionsExt;
use std::sync::Arc;
use std::time::Duration;

use serde_json::json;
use updater_core::backup::BackupStrategy;
use updater_web::WebState;
use updater_web::auth::{Admins, ApiToken, SessionKey};

use crate::cli::ServeArgs;
use crate::components::Components;
use crate::error::{CliError, Result};
use crate::output::Outcome;

/// The address to listen on, refusing a non-loopback one without TLS
/// (`tls`) or the flag.
pub(crate) fn listen_address(
    text: &str,
    tls: bool,
    allow_insecure_remote: bool,
) -> Result<SocketAddr> {
    let address: SocketAddr = text
        .parse()
        .map_err(|_| CliError::Usage(format!("--listen {text:?}: not an IP address and port")))?;
    if !address.ip().is_loopback() && !tls && !allow_insecure_remote {
        return Err(CliError::Usage(format!(
            "refusing to serve the console on {address} without TLS: sessions and passwords would cross the network in clear; set [web] tls_cert and tls_key, or listen on 127.0.0.1 behind a TLS proxy, or pass --allow-insecure-remote if a TLS proxy reaches this address"
        )));
    }
    Ok(address)
}

fn session_key(c: &Components) -> Result<SessionKey> {
    let web = &c.config.file.web;
    let bytes = if let Some(name) = &web.session_secret_env {
        std::env::var(name)
            .map_err(|_| {
                c.config.error_at(
                    "web.session_secret_env",
                    format!("environment variable {name} is not set"),
                )
            })?
            .into_bytes()
    } else if let Some(file) = &web.session_secret_file {
        let metadata =
            std::fs::metadata(file).map_err(|e| CliError::io("read", file.clone(), e))?;
        if metadata.permissions().mode() & 0o077 != 0 {
            return Err(c.config.error_at(
                "web.session_secret_file",
                format!(
                    "{} is readable by others (mode {:o}); chmod 600 it",
                    file.display(),
                    metadata.permissions().mode() & 0o777
                ),
            ));
        }
        let mut bytes = std::fs::read(file).map_err(|e| CliError::io("read", file.clone(), e))?;
        while bytes.last().is_some_and(u8::is_ascii_whitespace) {
            bytes.pop();
        }
        bytes
    } else {
        tracing::info!("no [web] session secret: a random one; sessions end with the server");
        return SessionKey::random().map_err(|e| c.config.error_at("web", e.to_string()));
    };
    SessionKey::from_bytes(&bytes)
        .map_err(|e| c.config.error_at("web.session_secret_env", e.to_string()))
}

/// The console's state from the command's parts.
pub(crate) fn web_state(c: Components) -> Result<WebState> {
    let web = c.config.file.web.clone();
    let mut admins = Admins::new();
    for admin in &web.admins {
        admins = admins
            .with_admin(admin.name.clone(), admin.password_hash.expose())
            .map_err(|e| c.config.error_at("web.admins", e.to_string()))?;
    }
    if admins.is_empty() && web.api_tokens.is_empty() {
        return Err(c.config.error_at(
            "web.admins",
            "the console needs at least one admin (name and password_hash from `updater web hash-password`) or an API token",
        ));
    }
    let key = session_key(&c)?;
    let manual = c.manual_backup();
    let outbox = c.notifier.outbox().clone();
    let mut builder = WebState::builder(Arc::new(c.updater))
        .with_notification_outbox(outbox)
        .with_admins(admins)
        .with_session_key(key)
        .with_session_ttl(Duration::from_secs(web.session_hours.saturating_mul(3600)))
        .with_secure_cookies(web.secure_cookies || c.config.web_tls().is_some())
        .with_backup_before_update(c.config.file.backup.before_update)
        .with_manual_backup(manual.clone());
    let mut others: Vec<Arc<dyn BackupStrategy>> = vec![c.files_backup.clone()];
    if let Some(database) = &c.database {
        others.push(database.full.clone());
        others.push(database.snapshot.clone());
    }
    for strategy in others {
        if strategy.kind() != manual.kind() {
            builder = builder.with_backup_strategy(strategy);
        }
    }
    for token in &web.api_tokens {
        builder = builder.with_api_token(
            ApiToken::from_sha256_hex(token.name.clone(), &token.sha256)
                .map_err(|e| c.config.error_at("web.api_tokens", e.to_string()))?,
        );
    }
    builder
        .build()
        .map_err(|e| c.config.error_at("web", e.to_string()))
}

/// The TLS settings of `[web] tls_cert` / `tls_key`.
fn tls_acceptor(c: &Components) -> Result<Option<tokio_rustls::TlsAcceptor>> {
    use rustls::pki_types::pem::PemObject;
    use rustls::pki_types::{CertificateDer, PrivateKeyDer};
    let Some((cert, key)) = c.config.web_tls() else {
        return Ok(None);
    };
    let certs = CertificateDer::pem_file_iter(&cert)
        .and_then(|certs| certs.collect::<std::result::Result<Vec<_>, _>>())
        .map_err(|e| {
            c.config
                .error_at("web.tls_cert", format!("{}: {e}", cert.display()))
        })?;
    if certs.is_empty() {
        return Err(c.config.error_at(
            "web.tls_cert",
            format!("{} holds no certificate", cert.display()),
        ));
    }
    let private = PrivateKeyDer::from_pem_file(&key).map_err(|e| {
        c.config
            .error_at("web.tls_key", format!("{}: {e}", key.display()))
    })?;
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .and_then(|b| b.with_no_client_auth().with_single_cert(certs, private))
        .map_err(|e: rustls::Error| c.config.error_at("web.tls_key", e.to_string()))?;
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(Some(tokio_rustls::TlsAcceptor::from(Arc::new(config))))
}

/// Serves until SIGTERM or SIGINT.
pub(super) fn run(c: Components, args: &ServeArgs) -> Result<Outcome> {
    let text = args
        .listen
        .clone()
        .unwrap_or_else(|| c.config.file.web.listen.clone());
    let tls = tls_acceptor(&c)?;
    let address = listen_address(&text, tls.is_some(), args.allow_insecure_remote)?;
    let round = Duration::from_secs(c.config.file.schedule.round_secs);
    let state = web_state(c)?;
    let automation = AutomationLoop::start(Arc::clone(state.updater()), round);
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .map_err(|e| CliError::Update(updater_core::Error::other("start the web server", e)))?;
    let scheme = if tls.is_some() { "https" } else { "http" };
    let bound = runtime.block_on(async move {
        let listener = tokio::net::TcpListener::bind(address)
            .await
            .map_err(|e| CliError::Usage(format!("cannot listen on {address}: {e}")))?;
        let bound = listener
            .local_addr()
            .map_err(|e| CliError::Usage(format!("cannot listen on {address}: {e}")))?;
        crate::output::note(&format!("listening on {scheme}://{bound}"));
        let app = updater_web::router(state);
        match tls {
            None => axum::serve(
                listener,
                app.into_make_service_with_connect_info::<SocketAddr>(),
            )
            .with_graceful_shutdown(stop_signal())
            .await
            .map_err(|e| CliError::Update(updater_core::Error::other("web server", e)))?,
            Some(acceptor) => serve_tls(listener, acceptor, app).await,
        }
        Ok::<_, CliError>(bound)
    })?;
    // Operations still running finish on their threads before the process exits.
    runtime.shutdown_timeout(Duration::from_secs(1));
    automation.stop();
    Ok(Outcome::ok(
        json!({ "stopped": true, "listen": bound.to_string() }),
        format!("stopped serving on {scheme}://{bound}"),
    ))
}

/// Unattended work while the console serves, as `updater schedule` does
/// it: the probation watch, due scheduled updates and automatic updates,
/// every `schedule.round_secs` (more often while an update is on probation).
struct AutomationLoop {
    stop: Arc<std::sync::atomic::AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl AutomationLoop {
    fn start(updater: Arc<updater_core::Updater>, idle: Duration) -> Self {
        use std::sync::atomic::Ordering;
        let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let thread = {
            let stop = Arc::clone(&stop);
            std::thread::Builder::new()
                .name("automation".into())
                .spawn(move || {
                    while !stop.load(Ordering::Relaxed) {
                        let report = updater.automation_round(&updater_core::progress::NoProgress);
                        if let Some(Ok(message) | Err(message)) = &report.automatic {
                            tracing::info!(%message, "automatic update");
                        }
                        for (id, message) in &report.scheduled {
                            tracing::info!(id, %message, "scheduled update");
                        }
                        if let Err(error) = &report.probation {
                            tracing::warn!(%error, "probation watch failed");
                        }
                        let next = std::time::Instant::now() + updater.next_round_in(idle);
                        while !stop.load(Ordering::Relaxed) && std::time::Instant::now() < next {
                            std::thread::sleep(Duration::from_millis(200));
                        }
                    }
                })
                .ok()
        };
        AutomationLoop { stop, thread }
    }

    /// Stops after the round in progress, if any.
    fn stop(mut self) {
        self.stop.store(true, std::sync::atomic::Ordering::Relaxed);
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// HTTPS: each accepted connection goes through the TLS handshake, then
/// HTTP/1.1 to the console (with its client address, as over plain HTTP).
async fn serve_tls(
    listener: tokio::net::TcpListener,
    acceptor: tokio_rustls::TlsAcceptor,
    app: axum::Router,
) {
    use tower::ServiceExt;
    let stop = stop_signal();
    tokio::pin!(stop);
    loop {
        let (stream, peer) = tokio::select! {
            _ = &mut stop => return,
            accepted = listener.accept() => match accepted {
                Ok(pair) => pair,
                Err(error) => {
                    tracing::warn!(%error, "accept failed");
                    continue;
                }
            },
        };
        let acceptor = acceptor.clone();
        let app = app.clone();
        tokio::spawn(async move {
            let tls = match tokio::time::timeout(Duration::from_secs(10), acceptor.accept(stream))
                .await
            {
                Ok(Ok(tls)) => tls,
                Ok(Err(error)) => {
                    tracing::debug!(%error, %peer, "TLS handshake failed");
                    return;
                }
                Err(_) => return,
            };
            let service = app.map_request(move |request: hyper::Request<hyper::body::Incoming>| {
                let mut request = request.map(axum::body::Body::new);
                request
                    .extensions_mut()
                    .insert(axum::extract::ConnectInfo(peer));
                request
            });
            let service = hyper_util::service::TowerToHyperService::new(service);
            if let Err(error) = hyper::server::conn::http1::Builder::new()
                .serve_connection(hyper_util::rt::TokioIo::new(tls), service)
                .await
            {
                tracing::debug!(%error, %peer, "connection ended with an error");
            }
        });
    }
}

async fn stop_signal() {
    let interrupt = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        let mut term =
            match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
                Ok(term) => term,
                Err(_) => {
                    let _ = interrupt.await;
                    return;
                }
            };
        tokio::select! {
            _ = interrupt => {}
            _ = term.recv() => {}
        }
    }
}

/// Reads a password (no echo on a terminal) and prints its argon2id hash.
pub(super) fn hash_password() -> Result<Outcome> {
    let stdin = std::io::stdin();
    let password = if stdin.is_terminal() {
        read_hidden("Password: ")?
    } else {
        let mut line = String::new();
        stdin
            .lock()
            .read_line(&mut line)
            .map_err(|e| CliError::io("read", "standard input", e))?;
        line.trim_end_matches(['\r', '\n']).to_string()
    };
    if password.is_empty() {
        return Err(CliError::Usage("the password is empty".into()));
    }
    let hash = updater_web::auth::hash_password(&password)
        .map_err(|e| CliError::Update(updater_core::Error::other("hash the password", e)))?;
    Ok(Outcome::ok(json!({ "hash": hash }), hash))
}

/// A line from the terminal with echo turned off (restored afterwards).
fn read_hidden(prompt: &str) -> Result<String> {
    use rustix::termios::{LocalModes, OptionalActions, tcgetattr, tcsetattr};
    let stdin = std::io::stdin();
    let _ = write!(std::io::stderr(), "{prompt}");
    let _ = std::io::stderr().flush();
    let original = tcgetattr(&stdin).ok();
    if let Some(original) = &original {
        let mut quiet = original.clone();
        quiet.local_modes.remove(LocalModes::ECHO);
        let _ = tcsetattr(&stdin, OptionalActions::Now, &quiet);
    }
    let mut line = String::new();
    let read = stdin.lock().read_line(&mut line);
    if let Some(original) = &original {
        let _ = tcsetattr(&stdin, OptionalActions::Now, original);
    }
    let _ = writeln!(std::io::stderr());
    read.map_err(|e| CliError::io("read", "the terminal", e))?;
    Ok(line.trim_end_matches(['\r', '\n']).to_string())
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn a_non_loopback_address_is_refused_without_the_flag() {
        let error = listen_address("0.0.0.0:8787", false, false).unwrap_err();
        assert!(
            error
                .to_string()
                .starts_with("refusing to serve the console on 0.0.0.0:8787 without TLS"),
            "{error}"
        );
        assert_eq!(error.exit_code(), 2);
        assert!(listen_address("0.0.0.0:8787", false, true).is_ok());
        assert!(
            listen_address("0.0.0.0:8787", true, false).is_ok(),
            "with TLS"
        );
        assert!(listen_address("127.0.0.1:0", false, false).is_ok());
        assert!(listen_address("[::1]:8787", false, false).is_ok());
        assert_eq!(
            listen_address("localhost", false, false)
                .unwrap_err()
                .to_string(),
            "--listen \"localhost\": not an IP address and port"
        );
    }
}
