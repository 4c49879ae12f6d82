//! Streaming, bounded, resumable downloads into the caller's writer.
//!
//! Memory stays flat (one 64 KiB buffer whatever the asset size). The
//! transfer stops with [`SourceError::SizeMismatch`] as soon as the server
//! announces or sends more than the declared size; a body that breaks off
//! early is continued with `Range: bytes=N-` (only a `206` whose
//! `Content-Range` starts at `N` is accepted, so no byte is written twice);
//! 5xx answers and broken connections are retried with bounded exponential
//! backoff (or the server's `Retry-After`, when it fits). One [`Budget`]
//! covers the whole download: every try, redirect, resume and wait counts
//! against its deadline, and each try must keep up the minimum speed.

use std::io::{ErrorKind, Read, Write};

use reqwest::blocking::Response;
use reqwest::header::{self, HeaderMap, HeaderValue};
use updater_core::error::redact_url;
use url::Url;

use super::HttpClient;
use super::budget::{Budget, GiveUp, SpeedMonitor};
use super::client::{RetryAfter, body_error_text, retry_later, status_error, too_slow};
use super::rate_limit::{rate_limit_reset, retry_after};
use crate::error::SourceError;

const BUFFER_SIZE: usize = 64 * 1024;
const PROGRESS_EVERY: u64 = 8 * 1024 * 1024;

/// How one request of a download ended.
enum Attempt {
    Complete,
    /// Worth another try (5xx, broken connection, early end).
    Retry(Failure),
    Fatal(SourceError),
}

/// A failure worth another try.
struct Failure {
    reason: String,
    /// The server's `Retry-After`, when it sent one.
    asked: Option<RetryAfter>,
}

impl Failure {
    fn new(reason: impl Into<String>) -> Self {
        Failure {
            reason: reason.into(),
            asked: None,
        }
    }
}

/// State of one download.
struct Transfer<'a> {
    http: &'a HttpClient,
    url: &'a Url,
    asset: &'a str,
    declared: u64,
    accept: &'a str,
    budget: Budget,
    written: u64,
}

/// Downloads `url` into `sink`, expecting exactly `declared` bytes.
pub(crate) fn download_to(
    http: &HttpClient,
    url: &Url,
    asset: &str,
    declared: u64,
    accept: &str,
    sink: &mut dyn Write,
) -> Result<u64, SourceError> {
    let mut transfer = Transfer {
        http,
        url,
        asset,
        declared,
        accept,
        budget: Budget::start(&http.settings),
        written: 0,
    };
    let mut buffer = vec![0u8; BUFFER_SIZE];
    loop {
        let failure = match transfer.attempt(&mut buffer, sink) {
            Attempt::Complete => return Ok(transfer.written),
            Attempt::Fatal(error) => return Err(error),
            Attempt::Retry(failure) => failure,
        };
        let delay = match transfer
            .budget
            .next_wait(failure.asked.as_ref().map(|a| a.at))
        {
            Ok(delay) => delay,
            Err(GiveUp::Retries(retries)) => {
                return Err(transfer.interrupted(format!(
                    "{} (gave up after {retries} retries)",
                    failure.reason
                )));
            }
            Err(GiveUp::Deadline) => {
                return Err(transfer.deadline_exceeded(Some(failure.reason)));
            }
            Err(GiveUp::RetryAfter { at, why }) => {
                return Err(retry_later(failure.asked, at, why, url));
            }
        };
        tracing::debug!(
            url = %redact_url(url.as_str()),
            written = transfer.written,
            reason = %failure.reason,
            ?delay,
            "download interrupted; retrying"
        );
        std::thread::sleep(delay);
    }
}

impl Transfer<'_> {
    fn interrupted(&self, reason: String) -> SourceError {
        SourceError::Interrupted {
            asset: self.asset.to_string(),
            url: redact_url(self.url.as_str()),
            received: self.written,
            declared: self.declared,
            reason,
        }
    }

    fn size_mismatch(&self, reason: String) -> SourceError {
        SourceError::SizeMismatch {
            asset: self.asset.to_string(),
            url: redact_url(self.url.as_str()),
            declared: self.declared,
            reason,
        }
    }

    fn deadline_exceeded(&self, last_failure: Option<String>) -> SourceError {
        SourceError::DeadlineExceeded {
            asset: self.asset.to_string(),
            url: redact_url(self.url.as_str()),
            deadline: self.budget.limit(),
            elapsed: self.budget.elapsed(),
            received: self.written,
            last_failure,
        }
    }

    fn headers(&self) -> HeaderMap {
        let mut headers = HeaderMap::new();
        headers.insert(
            header::ACCEPT,
            HeaderValue::from_str(self.accept).unwrap_or(HeaderValue::from_static("*/*")),
        );
        // Byte counts and ranges are about the stored file, not a re-encoding.
        headers.insert(
            header::ACCEPT_ENCODING,
            HeaderValue::from_static("identity"),
        );
        if self.written > 0
            && let Ok(range) = HeaderValue::from_str(&format!("bytes={}-", self.written))
        {
            headers.insert(header::RANGE, range);
        }
        headers
    }

    fn attempt(&mut self, buffer: &mut [u8], sink: &mut dyn Write) -> Attempt {
        if self.budget.is_over() {
            return Attempt::Fatal(self.deadline_exceeded(None));
        }
        let mut response = match self.http.send(self.url, &self.headers(), &self.budget) {
            Ok(response) => response,
            Err(e) if e.is_transient() => return Attempt::Retry(Failure::new(e.to_string())),
            Err(e) => return Attempt::Fatal(e),
        };
        if let Err(attempt) = self.check_answer(&response) {
            return match attempt {
                Attempt::Fatal(SourceError::Status { .. }) => {
                    Attempt::Fatal(status_error(response))
                }
                other => other,
            };
        }
        let mut monitor = SpeedMonitor::start_from(&self.budget);
        let started_at = self.written;
        let mut next_report = self.written + PROGRESS_EVERY;
        loop {
            if self.budget.is_over() {
                return Attempt::Fatal(self.deadline_exceeded(None));
            }
            let n = match response.read(buffer) {
                Ok(0) => break,
                Ok(n) => n,
                Err(e) if e.kind() == ErrorKind::Interrupted => continue,
                Err(e) => {
                    return Attempt::Retry(Failure::new(format!(
                        "the connection broke: {}",
                        body_error_text(e)
                    )));
                }
            };
            if self.written + n as u64 > self.declared {
                return Attempt::Fatal(
                    self.size_mismatch(format!(
                        "the server sent more than {} bytes",
                        self.declared
                    )),
                );
            }
            if let Err(source) = sink.write_all(&buffer[..n]) {
                return Attempt::Fatal(SourceError::Sink {
                    asset: self.asset.to_string(),
                    source,
                });
            }
            self.written += n as u64;
            if let Err(slow) = monitor.record(self.written - started_at) {
                return Attempt::Fatal(too_slow(
                    self.asset,
                    &redact_url(self.url.as_str()),
                    &self.budget,
                    slow,
                    self.written,
                ));
            }
            if self.written >= next_report {
                tracing::debug!(
                    asset = self.asset,
                    written = self.written,
                    total = self.declared,
                    "downloading"
                );
                next_report += PROGRESS_EVERY;
            }
        }
        if self.written == self.declared {
            Attempt::Complete
        } else {
            Attempt::Retry(Failure::new(format!(
                "the body ended after {} of {} bytes",
                self.written, self.declared
            )))
        }
    }

    /// Checks the status and length headers before any byte is written.
    /// A `Fatal(Status)` means "build the status error from the response".
    fn check_answer(&self, response: &Response) -> Result<(), Attempt> {
        let status = response.status().as_u16();
        let now = chrono::Utc::now();
        if let Some(resets_at) = rate_limit_reset(status, response.headers(), now) {
            return Err(Attempt::Fatal(SourceError::RateLimited {
                url: redact_url(response.url().as_str()),
                status,
                resets_at,
            }));
        }
        let content_length = response
            .headers()
            .get(header::CONTENT_LENGTH)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.trim().parse::<u64>().ok());
        let remaining = self.declared - self.written;
        match status {
            200 if self.written > 0 => Err(Attempt::Fatal(self.interrupted(format!(
                "the connection broke and the server does not support resuming (it answered 200 to `Range: bytes={}-`)",
                self.written
            )))),
            200 => match content_length {
                Some(length) if length != self.declared => Err(Attempt::Fatal(
                    self.size_mismatch(format!("the server announces {length} bytes")),
                )),
                _ => Ok(()),
            },
            206 if self.written > 0 => {
                let range = response
                    .headers()
                    .get(header::CONTENT_RANGE)
                    .and_then(|v| v.to_str().ok())
                    .and_then(parse_content_range);
                match range {
                    Some((start, _)) if start != self.written => Err(Attempt::Fatal(self.interrupted(format!(
                        "the server resumed at byte {start}, not at {}",
                        self.written
                    )))),
                    Some((_, Some(total))) if total != self.declared => Err(Attempt::Fatal(
                        self.size_mismatch(format!("the server's Content-Range says the file has {total} bytes")),
                    )),
                    None => Err(Attempt::Fatal(self.interrupted(
                        "the server answered 206 without a valid Content-Range".into(),
                    ))),
                    Some(_) => match content_length {
                        Some(length) if length != remaining => Err(Attempt::Fatal(self.size_mismatch(format!(
                            "the server announces {length} more bytes after byte {}, {remaining} were expected",
                            self.written
                        )))),
                        _ => Ok(()),
                    },
                }
            }
            206 => Err(Attempt::Fatal(self.interrupted(
                "the server answered 206 Partial Content to a request without Range".into(),
            ))),
            416 => Err(Attempt::Fatal(self.size_mismatch(format!(
                "the server has no bytes after byte {} (416 Range Not Satisfiable)",
                self.written
            )))),
            408 | 500..=599 => Err(Attempt::Retry(Failure {
                reason: format!("the server answered HTTP {status}"),
                asked: retry_after(response.headers(), now).map(|at| RetryAfter {
                    status,
                    at,
                    url: redact_url(response.url().as_str()),
                }),
            })),
            _ => Err(Attempt::Fatal(SourceError::Status {
                url: String::new(),
                status,
                message: None,
            })),
        }
    }
}

/// Parses `bytes START-END/TOTAL` (TOTAL may be `*`).
fn parse_content_range(value: &str) -> Option<(u64, Option<u64>)> {
    let rest = value.trim().strip_prefix("bytes ")?;
    let (range, total) = rest.split_once('/')?;
    let (start, end) = range.split_once('-')?;
    let start = start.trim().parse::<u64>().ok()?;
    let end = end.trim().parse::<u64>().ok()?;
    if end < start {
        return None;
    }
    let total = match total.trim() {
        "*" => None,
        number => Some(number.parse::<u64>().ok()?),
    };
    Some((start, total))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn content_range_parses_numbers_and_unknown_totals() {
        assert_eq!(
            parse_content_range("bytes 100-199/200"),
            Some((100, Some(200)))
        );
        assert_eq!(parse_content_range("bytes 5-9/*"), Some((5, None)));
        assert_eq!(parse_content_range("bytes 9-5/10"), None);
        assert_eq!(parse_content_range("bytes x-1/2"), None);
        assert_eq!(parse_content_range("items 0-1/2"), None);
    }
}
