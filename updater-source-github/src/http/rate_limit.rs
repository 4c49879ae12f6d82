//! Recognises rate-limit answers (GitHub's primary and secondary limits,
//! any server's `429 Too Many Requests`) and when they reset.
//!
//! GitHub documents: a primary limit answers 403 or 429 with
//! `x-ratelimit-remaining: 0` and `x-ratelimit-reset: <epoch seconds>`; a
//! secondary limit answers 403 or 429 with `retry-after: <seconds>`.

use chrono::{DateTime, Utc};
use reqwest::header::HeaderMap;

/// `Some(reset time if known)` when the answer is a rate limit.
pub(crate) fn rate_limit_reset(
    status: u16,
    headers: &HeaderMap,
    now: DateTime<Utc>,
) -> Option<Option<DateTime<Utc>>> {
    if status != 403 && status != 429 {
        return None;
    }
    let header = |name: &str| {
        headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(str::trim)
    };
    let retry_after = header("retry-after").and_then(|value| parse_retry_after(value, now));
    let exhausted = header("x-ratelimit-remaining") == Some("0");
    let reset = header("x-ratelimit-reset")
        .and_then(|v| v.parse::<i64>().ok())
        .and_then(|secs| DateTime::<Utc>::from_timestamp(secs, 0));
    if retry_after.is_some() {
        return Some(retry_after);
    }
    if exhausted {
        return Some(reset);
    }
    if status == 429 || header("retry-after").is_some() {
        return Some(None);
    }
    None
}

/// The time a `Retry-After` header asks for, on any answer (e.g. a 503).
pub(crate) fn retry_after(headers: &HeaderMap, now: DateTime<Utc>) -> Option<DateTime<Utc>> {
    headers
        .get("retry-after")
        .and_then(|v| v.to_str().ok())
        .and_then(|value| parse_retry_after(value.trim(), now))
}

/// `Retry-After` is either delay seconds or an HTTP date.
fn parse_retry_after(value: &str, now: DateTime<Utc>) -> Option<DateTime<Utc>> {
    if let Ok(seconds) = value.parse::<i64>() {
        return Some(now + chrono::Duration::seconds(seconds.max(0)));
    }
    DateTime::parse_from_rfc2822(value)
        .ok()
        .map(|d| d.with_timezone(&Utc))
}

#[cfg(test)]
mod tests {
    use super::*;
    use reqwest::header::HeaderValue;

    fn headers(pairs: &[(&'static str, &str)]) -> HeaderMap {
        let mut map = HeaderMap::new();
        for (name, value) in pairs {
            map.insert(*name, HeaderValue::from_str(value).unwrap());
        }
        map
    }

    #[test]
    fn primary_limit_uses_the_reset_epoch() {
        let now = Utc::now();
        let reset = rate_limit_reset(
            403,
            &headers(&[
                ("x-ratelimit-remaining", "0"),
                ("x-ratelimit-reset", "1893456000"),
            ]),
            now,
        );
        assert_eq!(
            reset,
            Some(DateTime::<Utc>::from_timestamp(1_893_456_000, 0))
        );
    }

    #[test]
    fn retry_after_wins_in_seconds_or_as_a_date() {
        let now = Utc::now();
        let reset = rate_limit_reset(429, &headers(&[("retry-after", "60")]), now);
        assert_eq!(reset, Some(Some(now + chrono::Duration::seconds(60))));
        let reset = rate_limit_reset(
            403,
            &headers(&[("retry-after", "Wed, 21 Oct 2015 07:28:00 GMT")]),
            now,
        );
        assert_eq!(reset.flatten().map(|d| d.timestamp()), Some(1_445_412_480));
    }

    #[test]
    fn a_plain_forbidden_is_not_a_rate_limit() {
        let now = Utc::now();
        assert_eq!(
            rate_limit_reset(403, &headers(&[("x-ratelimit-remaining", "12")]), now),
            None
        );
        assert_eq!(
            rate_limit_reset(500, &headers(&[("retry-after", "1")]), now),
            None
        );
        assert_eq!(rate_limit_reset(429, &HeaderMap::new(), now), Some(None));
    }
}
