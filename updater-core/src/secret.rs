//! [`Secret`]: the one type for credentials (tokens, passwords, webhook
//! URLs) in the workspace. Its `Debug` and `Display` never show the value,
//! so a secret cannot end up in a log line, an error or a history record by
//! accident; code that really needs the value calls
//! [`expose`](Secret::expose), which is easy to find in a review.
//!
//! With serde it reads as the plain string and serialises as `"***"`, so a
//! configuration printed back (`updater config check`) or a report never
//! carries the value; serialising a secret to store it loses it, by design.
//!
//! ```
//! use updater_core::secret::Secret;
//! let password = Secret::new("hunter2");
//! assert_eq!(format!("{password:?} {password}"), "Secret(***) ***");
//! assert_eq!(password.expose(), "hunter2");
//! let read: Secret = serde_json::from_str("\"hunter2\"")?;
//! assert_eq!(read, password);
//! assert_eq!(serde_json::to_string(&read)?, "\"***\"");
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

/// A credential whose value is never printed.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    /// Wraps a credential.
    pub fn new(value: impl Into<String>) -> Self {
        Secret(value.into())
    }

    /// Reads a credential from the environment variable `name`, trimmed;
    /// `None` when it is unset or blank.
    pub fn from_env(name: &str) -> Option<Self> {
        std::env::var(name)
            .ok()
            .map(|value| value.trim().to_string())
            .filter(|value| !value.is_empty())
            .map(Secret)
    }

    /// The value, for the one place that must hand it on (an HTTP header, a
    /// credentials file given to a tool).
    pub fn expose(&self) -> &str {
        &self.0
    }

    /// Whether the value is empty.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Secret(***)")
    }
}

impl std::fmt::Display for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("***")
    }
}

impl From<String> for Secret {
    fn from(value: String) -> Self {
        Secret(value)
    }
}

impl From<&str> for Secret {
    fn from(value: &str) -> Self {
        Secret(value.to_string())
    }
}

impl serde::Serialize for Secret {
    /// Always `"***"`: never the value.
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str("***")
    }
}

impl<'de> serde::Deserialize<'de> for Secret {
    /// The plain string.
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        String::deserialize(deserializer).map(Secret)
    }
}
