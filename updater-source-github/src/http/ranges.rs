//! Ranged downloads for delta updates: one `Range: bytes=A-B` request per
//! range, in order, into the caller's writer.
//!
//! The rules of [`download_to`](super::download_to) hold: one [`Budget`]
//! (transfer deadline, retries) covers every request, each try must keep up
//! the minimum speed, a body that breaks off is continued from the byte it
//! stopped at, and nothing is written twice. Redirects are followed once,
//! for the first range: later ranges go straight to the URL the first one
//! was served from (GitHub's storage host), and back to the original URL if
//! that one stops answering (a pre-signed URL that expired).
//!
//! What a server must answer: `206` with `Content-Range: bytes A-B/SIZE`
//! exactly as asked (SIZE the asset's declared size, or `*`) and at most
//! that many bytes. A `200` means it ignores `Range`
//! ([`SourceError::RangesIgnored`], which the pipeline answers by
//! downloading the whole package); any other range, size or surplus byte
//! is [`SourceError::RangeMismatch`].

use std::io::{ErrorKind, Read, Write};

use reqwest::header::{self, HeaderMap, HeaderValue};
use updater_core::error::redact_url;
use updater_core::release::ByteRange;
use url::Url;

use super::HttpClient;
use super::budget::{Budget, GiveUp, SpeedMonitor};
use super::client::{RetryAfter, body_error_text, retry_later, status_error, too_slow};
use super::rate_limit::{rate_limit_reset, retry_after};
use crate::error::SourceError;

const BUFFER_SIZE: usize = 64 * 1024;

/// How one request for (the rest of) a range ended.
enum Attempt {
    /// The range is complete; the URL that served it.
    Complete(Url),
    Retry {
        reason: String,
        asked: Option<RetryAfter>,
    },
    Fatal(SourceError),
}

/// Downloads `ranges` of the asset at `url` (declared `declared` bytes)
/// into `sink`, one after another. `ranges` were checked by the caller.
pub(crate) fn download_ranges_to(
    http: &HttpClient,
    url: &Url,
    asset: &str,
    declared: u64,
    accept: &str,
    ranges: &[ByteRange],
    sink: &mut dyn Write,
) -> Result<u64, SourceError> {
    let mut budget = Budget::start(&http.settings);
    let mut resolved: Option<Url> = None;
    let mut buffer = vec![0u8; BUFFER_SIZE];
    let mut total = 0u64;
    for range in ranges {
        let mut done = 0u64;
        loop {
            let target = resolved.clone().unwrap_or_else(|| url.clone());
            let request = RangeRequest {
                resolved: resolved.is_some(),
                http,
                url: &target,
                asset,
                declared,
                accept,
                range: *range,
                budget: &budget,
            };
            let (reason, asked) = match request.attempt(&mut done, &mut buffer, sink) {
                Attempt::Complete(served_by) => {
                    resolved = Some(served_by);
                    break;
                }
                Attempt::Fatal(error) => return Err(error),
                Attempt::Retry { reason, asked } => (reason, asked),
            };
            if resolved.take().is_some() {
                tracing::debug!(reason, "ranged download: asking the original URL again");
            }
            match budget.next_wait(asked.as_ref().map(|a| a.at)) {
                Ok(delay) => {
                    tracing::debug!(url = %redact_url(url.as_str()), start = range.start + done, %reason, ?delay, "range interrupted; retrying");
                    std::thread::sleep(delay);
                }
                Err(GiveUp::Retries(retries)) => {
                    return Err(SourceError::Interrupted {
                        asset: asset.to_string(),
                        url: redact_url(url.as_str()),
                        received: total + done,
                        declared,
                        reason: format!("{reason} (gave up after {retries} retries)"),
                    });
                }
                Err(GiveUp::Deadline) => {
                    return Err(SourceError::DeadlineExceeded {
                        asset: asset.to_string(),
                        url: redact_url(url.as_str()),
                        deadline: budget.limit(),
                        elapsed: budget.elapsed(),
                        received: total + done,
                        last_failure: Some(reason),
                    });
                }
                Err(GiveUp::RetryAfter { at, why }) => {
                    return Err(retry_later(asked, at, why, url));
                }
            }
        }
        total += range.len();
    }
    Ok(total)
}

/// One request for the rest of one range.
struct RangeRequest<'a> {
    /// Whether `url` is where an earlier range was served from (not the original).
    resolved: bool,
    http: &'a HttpClient,
    url: &'a Url,
    asset: &'a str,
    declared: u64,
    accept: &'a str,
    range: ByteRange,
    budget: &'a Budget,
}

impl RangeRequest<'_> {
    fn mismatch(&self, reason: String) -> SourceError {
        SourceError::RangeMismatch {
            asset: self.asset.to_string(),
            url: redact_url(self.url.as_str()),
            reason,
        }
    }

    fn attempt(&self, done: &mut u64, buffer: &mut [u8], sink: &mut dyn Write) -> Attempt {
        if self.budget.is_over() {
            return Attempt::Fatal(SourceError::DeadlineExceeded {
                asset: self.asset.to_string(),
                url: redact_url(self.url.as_str()),
                deadline: self.budget.limit(),
                elapsed: self.budget.elapsed(),
                received: *done,
                last_failure: None,
            });
        }
        let first = self.range.start + *done;
        let last = self.range.end - 1;
        let mut headers = HeaderMap::new();
        headers.insert(
            header::ACCEPT,
            HeaderValue::from_str(self.accept).unwrap_or(HeaderValue::from_static("*/*")),
        );
        headers.insert(
            header::ACCEPT_ENCODING,
            HeaderValue::from_static("identity"),
        );
        if let Ok(value) = HeaderValue::from_str(&format!("bytes={first}-{last}")) {
            headers.insert(header::RANGE, value);
        }
        let mut response = match self.http.send(self.url, &headers, self.budget) {
            Ok(response) => response,
            Err(e) if e.is_transient() => {
                return Attempt::Retry {
                    reason: e.to_string(),
                    asked: None,
                };
            }
            Err(e) => return Attempt::Fatal(e),
        };
        let status = response.status().as_u16();
        let now = chrono::Utc::now();
        if let Some(resets_at) = rate_limit_reset(status, response.headers(), now) {
            return Attempt::Fatal(SourceError::RateLimited {
                url: redact_url(response.url().as_str()),
                status,
                resets_at,
            });
        }
        match status {
            206 => {}
            200 => {
                return Attempt::Fatal(SourceError::RangesIgnored {
                    asset: self.asset.to_string(),
                    url: redact_url(response.url().as_str()),
                });
            }
            408 | 500..=599 => {
                return Attempt::Retry {
                    reason: format!("the server answered HTTP {status}"),
                    asked: retry_after(response.headers(), now).map(|at| RetryAfter {
                        status,
                        at,
                        url: redact_url(response.url().as_str()),
                    }),
                };
            }
            401 | 403 | 404 if self.resolved => {
                // Served from a resolved (pre-signed) URL that expired: resolve again.
                return Attempt::Retry {
                    reason: format!("the storage URL answered HTTP {status}"),
                    asked: None,
                };
            }
            416 => {
                return Attempt::Fatal(
                    self.mismatch(format!("bytes {first}-{last} are not satisfiable (416)")),
                );
            }
            _ => return Attempt::Fatal(status_error(response)),
        }
        let content_range = response
            .headers()
            .get(header::CONTENT_RANGE)
            .and_then(|v| v.to_str().ok())
            .map(str::to_string);
        match content_range.as_deref().and_then(parse_content_range) {
            Some((start, end, total)) => {
                if (start, end) != (first, last) {
                    return Attempt::Fatal(self.mismatch(format!(
                        "asked for bytes {first}-{last}, the server answered bytes {start}-{end}"
                    )));
                }
                if total.is_some_and(|total| total != self.declared) {
                    return Attempt::Fatal(SourceError::SizeMismatch {
                        asset: self.asset.to_string(),
                        url: redact_url(self.url.as_str()),
                        declared: self.declared,
                        reason: format!(
                            "the server's Content-Range {:?} gives another size",
                            content_range.unwrap_or_default()
                        ),
                    });
                }
            }
            None => {
                return Attempt::Fatal(self.mismatch(format!(
                    "206 without a valid Content-Range ({:?})",
                    content_range.unwrap_or_default()
                )));
            }
        }
        let wanted = last - first + 1;
        let content_length = response
            .headers()
            .get(header::CONTENT_LENGTH)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.trim().parse::<u64>().ok());
        if content_length.is_some_and(|length| length != wanted) {
            return Attempt::Fatal(self.mismatch(format!(
                "the server announces {} bytes for a range of {wanted}",
                content_length.unwrap_or_default()
            )));
        }
        let served_by = response.url().clone();
        let mut monitor = SpeedMonitor::start_from(self.budget);
        let started_at = *done;
        loop {
            if self.budget.is_over() {
                return Attempt::Fatal(SourceError::DeadlineExceeded {
                    asset: self.asset.to_string(),
                    url: redact_url(self.url.as_str()),
                    deadline: self.budget.limit(),
                    elapsed: self.budget.elapsed(),
                    received: *done,
                    last_failure: None,
                });
            }
            let n = match response.read(buffer) {
                Ok(0) => break,
                Ok(n) => n,
                Err(e) if e.kind() == ErrorKind::Interrupted => continue,
                Err(e) => {
                    return Attempt::Retry {
                        reason: format!("the connection broke: {}", body_error_text(e)),
                        asked: None,
                    };
                }
            };
            if *done + n as u64 > self.range.len() {
                return Attempt::Fatal(self.mismatch(format!(
                    "the server sent more than the {wanted} bytes asked"
                )));
            }
            if let Err(source) = sink.write_all(&buffer[..n]) {
                return Attempt::Fatal(SourceError::Sink {
                    asset: self.asset.to_string(),
                    source,
                });
            }
            *done += n as u64;
            if let Err(slow) = monitor.record(*done - started_at) {
                return Attempt::Fatal(too_slow(
                    self.asset,
                    &redact_url(self.url.as_str()),
                    self.budget,
                    slow,
                    *done,
                ));
            }
        }
        if *done == self.range.len() {
            Attempt::Complete(served_by)
        } else {
            Attempt::Retry {
                reason: format!(
                    "the body ended after {} of {} bytes of the range",
                    *done,
                    self.range.len()
                ),
                asked: None,
            }
        }
    }
}

/// Parses `bytes START-END/TOTAL` (TOTAL may be `*`).
fn parse_content_range(value: &str) -> Option<(u64, u64, Option<u64>)> {
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
    Some((start, end, total))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn content_ranges_parse_with_known_and_unknown_totals() {
        assert_eq!(
            parse_content_range("bytes 10-19/100"),
            Some((10, 19, Some(100)))
        );
        assert_eq!(parse_content_range("bytes 0-0/*"), Some((0, 0, None)));
        assert_eq!(parse_content_range("bytes 9-5/10"), None);
        assert_eq!(parse_content_range("bytes */10"), None);
    }
}
