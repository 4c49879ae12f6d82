//! [`SecretToken`]: a bearer token that never shows up in logs or errors.

use std::fmt;

/// A bearer token (e.g. a GitHub personal access token).
///
/// Its `Debug` output is `SecretToken(***)`; it has no `Display`. The token
/// is sent only as an `Authorization: Bearer` header marked sensitive, and
/// only to the origin (scheme, host, port) of the configured API or manifest
/// URL — never to a redirect target on another host.
///
/// ```
/// use updater_source_github::SecretToken;
/// let token = SecretToken::new("ghp_example");
/// assert_eq!(format!("{token:?}"), "SecretToken(***)");
/// ```
#[derive(Clone, PartialEq, Eq)]
pub struct SecretToken(String);

impl SecretToken {
    /// Wraps a token.
    pub fn new(token: impl Into<String>) -> Self {
        SecretToken(token.into())
    }

    /// Reads the token from the environment variable `name`; `None` when it is
    /// unset or empty.
    pub fn from_env(name: &str) -> Option<Self> {
        std::env::var(name)
            .ok()
            .filter(|t| !t.trim().is_empty())
            .map(|t| SecretToken(t.trim().to_string()))
    }

    pub(crate) fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for SecretToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("SecretToken(***)")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_output_hides_the_token() {
        let token = SecretToken::new("ghp_very_secret");
        assert!(!format!("{token:?}").contains("very_secret"));
        assert!(!format!("{:?}", Some(token)).contains("very_secret"));
    }
}
