//! Writing results: standard output carries the result (text or one JSON
//! object), standard error carries notes, progress and errors in text mode.

use std::io::Write;

use serde_json::json;

use crate::error::{CliError, exit_code};

/// What a command produced.
#[derive(Debug, Clone)]
pub struct Outcome {
    /// The `--json` object.
    pub json: serde_json::Value,
    /// The text printed without `--json`.
    pub text: String,
    /// The process exit code.
    pub exit_code: u8,
}

impl Outcome {
    /// A successful outcome.
    pub fn ok(json: serde_json::Value, text: impl Into<String>) -> Self {
        Outcome {
            json,
            text: text.into(),
            exit_code: exit_code::OK,
        }
    }
}

/// A note for the operator on standard error.
pub fn note(text: &str) {
    let _ = writeln!(std::io::stderr().lock(), "{text}");
}

/// Prints a command's outcome.
pub fn print_outcome(json_mode: bool, outcome: &Outcome) {
    let mut stdout = std::io::stdout().lock();
    if json_mode {
        let text = serde_json::to_string_pretty(&outcome.json).unwrap_or_else(|_| "{}".into());
        let _ = writeln!(stdout, "{text}");
    } else if !outcome.text.is_empty() {
        let _ = writeln!(stdout, "{}", outcome.text);
    }
}

/// The `--json` form of an error.
pub fn error_json(error: &CliError) -> serde_json::Value {
    json!({
        "error": {
            "kind": error.kind(),
            "message": error_chain(error),
            "exit_code": error.exit_code(),
        }
    })
}

/// The error and its sources, `: `-separated, without repeating a source
/// already contained in the message above it.
pub fn error_chain(error: &CliError) -> String {
    let mut text = error.to_string();
    let mut source = std::error::Error::source(error);
    while let Some(cause) = source {
        let cause_text = cause.to_string();
        if !text.contains(&cause_text) {
            text.push_str(": ");
            text.push_str(&cause_text);
        }
        source = cause.source();
    }
    text
}

/// Prints an error: JSON on standard output with `--json`, else `error: ...`
/// on standard error.
pub fn print_error(json_mode: bool, error: &CliError) {
    if json_mode {
        let text = serde_json::to_string_pretty(&error_json(error)).unwrap_or_else(|_| "{}".into());
        let _ = writeln!(std::io::stdout().lock(), "{text}");
    } else {
        let _ = writeln!(std::io::stderr().lock(), "error: {}", error_chain(error));
    }
}
