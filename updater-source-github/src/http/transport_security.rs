//! The HTTPS-only rule: plain HTTP only to loopback (all of `127.0.0.0/8`,
//! `[::1]`, `[::ffff:127.x.y.z]` and `localhost`) and to hosts the operator
//! explicitly allowed.

use updater_core::error::redact_url;
use url::Url;

use crate::error::SourceError;

/// Parses `text` as a URL, naming it (without credentials) in the error.
pub(crate) fn parse_url(text: &str) -> Result<Url, SourceError> {
    Url::parse(text).map_err(|e| SourceError::InvalidUrl {
        url: redact_url(text),
        reason: e.to_string(),
    })
}

/// Refuses any URL that is not `https://`, or `http://` to loopback or an
/// allowed insecure host. Also refuses credentials embedded in the URL.
pub(crate) fn check_url(url: &Url, insecure_hosts: &[String]) -> Result<(), SourceError> {
    let refuse = |reason: &str| {
        Err(SourceError::InsecureUrl {
            url: redact_url(url.as_str()),
            reason: reason.to_string(),
        })
    };
    if !url.username().is_empty() || url.password().is_some() {
        return refuse("credentials in URLs are not allowed; configure a token instead");
    }
    match url.scheme() {
        "https" => Ok(()),
        "http" => {
            let loopback = match url.host() {
                Some(url::Host::Domain(d)) => {
                    d.eq_ignore_ascii_case("localhost") || d.eq_ignore_ascii_case("localhost.")
                }
                Some(url::Host::Ipv4(ip)) => ip.is_loopback(),
                Some(url::Host::Ipv6(ip)) => {
                    ip.is_loopback() || ip.to_ipv4_mapped().is_some_and(|v4| v4.is_loopback())
                }
                None => false,
            };
            let allowed = url
                .host_str()
                .is_some_and(|h| insecure_hosts.iter().any(|a| a.eq_ignore_ascii_case(h)));
            if loopback || allowed {
                Ok(())
            } else {
                refuse(
                    "plain HTTP is only allowed to loopback and explicitly allowed insecure hosts",
                )
            }
        }
        _ => refuse("only https:// (and http:// to loopback) URLs are allowed"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn allowed(url: &str, insecure: &[&str]) -> bool {
        let insecure: Vec<String> = insecure.iter().map(|s| s.to_string()).collect();
        check_url(&Url::parse(url).unwrap(), &insecure).is_ok()
    }

    #[test]
    fn only_https_and_loopback_http_pass() {
        assert!(allowed("https://api.github.com/x", &[]));
        assert!(allowed("http://127.0.0.1:8080/x", &[]));
        assert!(allowed("http://localhost/x", &[]));
        assert!(allowed("http://[::1]:9/x", &[]));
        assert!(!allowed("http://example.com/x", &[]));
        assert!(!allowed("http://localhost.evil.com/x", &[]));
        assert!(!allowed("http://evil-localhost/x", &[]));
        assert!(!allowed("ftp://example.com/x", &[]));
        assert!(!allowed("file:///etc/passwd", &[]));
        assert!(allowed("http://updates.lan/x", &["updates.lan"]));
        assert!(!allowed("http://other.lan/x", &["updates.lan"]));
    }

    #[test]
    fn the_whole_loopback_range_may_use_plain_http_and_nothing_next_to_it() {
        for url in [
            "http://127.0.0.2:8080/x",
            "http://127.1.2.3/x",
            "http://127.255.255.254/x",
            "http://LOCALHOST/x",
            "http://localhost./x",
            "http://[0:0:0:0:0:0:0:1]/x",
            "http://[::ffff:127.0.0.2]/x",
        ] {
            assert!(allowed(url, &[]), "{url}");
        }
        for url in [
            "http://126.255.255.255/x",
            "http://128.0.0.1/x",
            "http://10.0.0.1/x",
            "http://0.0.0.0/x",
            "http://[::2]/x",
            "http://[::]/x",
            "http://[::ffff:10.0.0.1]/x",
        ] {
            let error = check_url(&Url::parse(url).unwrap(), &[]).unwrap_err();
            assert!(
                matches!(error, SourceError::InsecureUrl { .. }),
                "{url}: {error}"
            );
        }
    }

    #[test]
    fn credentials_in_urls_are_refused_and_not_echoed() {
        let error = check_url(&Url::parse("https://bob:s3cret@h/x").unwrap(), &[]).unwrap_err();
        assert!(!error.to_string().contains("s3cret"), "{error}");
    }
}
