//! Talking to the operator on standard error: progress (an indicatif bar on
//! a terminal, plain lines otherwise) and confirmation prompts.

use std::io::{BufRead, IsTerminal, Write};
use std::sync::Mutex;

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use updater_core::Step;
use updater_core::progress::{ProgressEvent, ProgressObserver, ProgressSink};

use crate::error::{CliError, Result};

/// Shows pipeline progress on standard error.
///
/// On a terminal: one bar (percent of the whole operation) whose message
/// names the step and, for downloads and backups, the bytes done. Otherwise
/// one line per step and per 10 % of progress, so logs stay readable.
#[derive(Debug)]
pub struct Progress {
    bar: Option<ProgressBar>,
    last_line: Mutex<Option<(Step, u8)>>,
}

impl Progress {
    /// A bar when standard error is a terminal, plain lines otherwise.
    pub fn to_stderr() -> Self {
        let bar = std::io::stderr().is_terminal().then(|| {
            let bar = ProgressBar::with_draw_target(Some(100), ProgressDrawTarget::stderr());
            bar.set_style(
                ProgressStyle::with_template(
                    "{spinner} [{elapsed_precise}] {bar:30} {pos:>3}% {msg}",
                )
                .unwrap_or_else(|_| ProgressStyle::default_bar()),
            );
            bar
        });
        Progress {
            bar,
            last_line: Mutex::new(None),
        }
    }

    /// Removes the bar (if any) before the result is printed.
    pub fn finish(&self) {
        if let Some(bar) = &self.bar {
            bar.finish_and_clear();
        }
    }
}

fn describe(event: &ProgressEvent) -> String {
    let step = event.step.as_str();
    let mut text = if event.message.starts_with(step) {
        event.message.clone()
    } else {
        format!("{step}: {}", event.message)
    };
    if event.bytes_done > 0 {
        match event.bytes_total {
            Some(total) if total > 0 => {
                text.push_str(&format!(
                    " ({} / {})",
                    human_bytes(event.bytes_done),
                    human_bytes(total)
                ));
            }
            _ => text.push_str(&format!(" ({})", human_bytes(event.bytes_done))),
        }
    }
    if event.files_done > 0 {
        text.push_str(&format!(" [{} files]", event.files_done));
    }
    text
}

/// `1536` → `1.5 KiB`.
pub fn human_bytes(bytes: u64) -> String {
    const UNITS: [&str; 5] = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut value = bytes as f64;
    let mut unit = 0;
    while value >= 1024.0 && unit < UNITS.len() - 1 {
        value /= 1024.0;
        unit += 1;
    }
    if unit == 0 {
        format!("{bytes} B")
    } else {
        format!("{value:.1} {}", UNITS[unit])
    }
}

impl ProgressObserver for Progress {
    fn on_progress(&self, event: &ProgressEvent) {
        if let Some(bar) = &self.bar {
            bar.set_position(u64::from(event.percent.min(100)));
            bar.set_message(describe(event));
            return;
        }
        let Ok(mut last) = self.last_line.lock() else {
            return;
        };
        let show = match *last {
            Some((step, percent)) => {
                step != event.step
                    || event.percent >= percent.saturating_add(10)
                    // The end is always shown, however close the last line was.
                    || (event.percent >= 100 && percent < 100)
            }
            None => true,
        };
        if show {
            *last = Some((event.step, event.percent));
            let _ = writeln!(
                std::io::stderr().lock(),
                "[{:>3}%] {}",
                event.percent,
                describe(event)
            );
        }
    }
}

impl ProgressSink for Progress {
    fn report(&self, progress: &updater_core::progress::Progress) {
        self.on_progress(&ProgressEvent {
            step: Step::Backup,
            percent: progress.percent,
            bytes_done: progress.bytes_done,
            bytes_total: progress.bytes_total,
            files_done: progress.files_done,
            message: progress.message.clone(),
        });
    }
}

/// Whether a confirmation can be asked: standard input and standard error are terminals.
pub fn can_ask() -> bool {
    std::io::stdin().is_terminal() && std::io::stderr().is_terminal()
}

/// The usage error (exit 2) for a confirmation that cannot be asked.
pub fn needs_yes(what: &str) -> CliError {
    CliError::Usage(format!(
        "{what} needs confirmation, and there is no terminal to ask on; pass --yes to confirm"
    ))
}

/// Asks "`question` [y/N]" on the terminal unless `assume_yes`. Without a
/// terminal on standard input and standard error, refuses with a usage error
/// (exit 2) telling the operator to pass `--yes`.
pub fn confirm(question: &str, assume_yes: bool) -> Result<()> {
    if assume_yes {
        return Ok(());
    }
    if !can_ask() {
        return Err(needs_yes(question));
    }
    let mut stderr = std::io::stderr().lock();
    let _ = write!(stderr, "{question} [y/N] ");
    let _ = stderr.flush();
    let mut answer = String::new();
    std::io::stdin()
        .lock()
        .read_line(&mut answer)
        .map_err(|e| CliError::io("read the answer from", "standard input", e))?;
    match answer.trim().to_ascii_lowercase().as_str() {
        "y" | "yes" => Ok(()),
        _ => Err(CliError::Declined(question.to_string())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_are_shown_in_binary_units() {
        assert_eq!(human_bytes(512), "512 B");
        assert_eq!(human_bytes(1536), "1.5 KiB");
        assert_eq!(human_bytes(3 * 1024 * 1024), "3.0 MiB");
    }

    #[test]
    fn confirmation_is_skipped_with_yes() {
        assert!(confirm("apply", true).is_ok());
    }
}
