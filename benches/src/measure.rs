//! Interleaved measurement and the results table.

use std::fmt::Write as _;
use std::time::{Duration, Instant};

/// Timings of one comparison: ours and theirs, interleaved.
#[derive(Debug, Clone, Default)]
pub struct Samples {
    /// Our durations, in run order.
    pub ours: Vec<Duration>,
    /// The standard tool's durations, in run order.
    pub theirs: Vec<Duration>,
}

/// The median, minimum and maximum of a set of durations.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Spread {
    /// Median.
    pub median: Duration,
    /// Fastest.
    pub min: Duration,
    /// Slowest.
    pub max: Duration,
}

/// The spread of `values` (zero when empty).
pub fn spread(values: &[Duration]) -> Spread {
    let mut sorted = values.to_vec();
    sorted.sort();
    if sorted.is_empty() {
        return Spread {
            median: Duration::ZERO,
            min: Duration::ZERO,
            max: Duration::ZERO,
        };
    }
    let mid = sorted.len() / 2;
    let median = if sorted.len().is_multiple_of(2) {
        (sorted[mid - 1] + sorted[mid]) / 2
    } else {
        sorted[mid]
    };
    Spread {
        median,
        min: sorted[0],
        max: sorted[sorted.len() - 1],
    }
}

impl Samples {
    /// Runs `ours` and `theirs` alternately `runs` times each (ours first,
    /// then theirs, ...). Each closure returns the duration it measured
    /// (so setup can be excluded) or an error message.
    pub fn interleaved(
        runs: usize,
        mut ours: impl FnMut() -> Result<Duration, String>,
        mut theirs: impl FnMut() -> Result<Duration, String>,
    ) -> Result<Samples, String> {
        let mut samples = Samples::default();
        for _ in 0..runs {
            samples.ours.push(ours()?);
            samples.theirs.push(theirs()?);
        }
        Ok(samples)
    }

    /// Median of ours divided by median of theirs.
    pub fn ratio(&self) -> f64 {
        let theirs = spread(&self.theirs).median.as_secs_f64();
        if theirs == 0.0 {
            f64::NAN
        } else {
            spread(&self.ours).median.as_secs_f64() / theirs
        }
    }
}

/// Times `work`.
pub fn time<T>(work: impl FnOnce() -> T) -> (T, Duration) {
    let started = Instant::now();
    let value = work();
    (value, started.elapsed())
}

/// One row of the results table.
#[derive(Debug, Clone)]
pub struct Row {
    /// What is measured.
    pub what: String,
    /// Against which tool.
    pub against: String,
    /// The timings, when a comparison.
    pub samples: Option<Samples>,
    /// Extra facts (sizes, memory, absolute numbers).
    pub notes: String,
    /// The target, as written in the design.
    pub target: String,
    /// Whether the target is met (None when not judged).
    pub met: Option<bool>,
}

fn fmt_ratio(ratio: f64) -> String {
    if ratio < 0.01 {
        format!("{ratio:.5}x")
    } else {
        format!("{ratio:.3}x")
    }
}

fn fmt_duration(d: Duration) -> String {
    if d < Duration::from_millis(10) {
        format!("{:.2} ms", d.as_secs_f64() * 1000.0)
    } else if d < Duration::from_secs(10) {
        format!("{:.0} ms", d.as_secs_f64() * 1000.0)
    } else {
        format!("{:.1} s", d.as_secs_f64())
    }
}

/// The results as a Markdown table.
pub fn table(rows: &[Row]) -> String {
    let mut out = String::from(
        "| measure | against | ours median (min–max) | theirs median (min–max) | ratio | target | met | notes |\n|---|---|---|---|---|---|---|---|\n",
    );
    for row in rows {
        let (ours, theirs, ratio) = match &row.samples {
            Some(s) => {
                let (o, t) = (spread(&s.ours), spread(&s.theirs));
                (
                    format!(
                        "{} ({}–{})",
                        fmt_duration(o.median),
                        fmt_duration(o.min),
                        fmt_duration(o.max)
                    ),
                    if s.theirs.is_empty() {
                        "—".to_string()
                    } else {
                        format!(
                            "{} ({}–{})",
                            fmt_duration(t.median),
                            fmt_duration(t.min),
                            fmt_duration(t.max)
                        )
                    },
                    if s.theirs.is_empty() {
                        "—".to_string()
                    } else {
                        fmt_ratio(s.ratio())
                    },
                )
            }
            None => ("—".into(), "—".into(), "—".into()),
        };
        let met = match row.met {
            Some(true) => "yes",
            Some(false) => "**no**",
            None => "—",
        };
        let _ = writeln!(
            out,
            "| {} | {} | {} | {} | {} | {} | {} | {} |",
            row.what, row.against, ours, theirs, ratio, row.target, met, row.notes
        );
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn spread_takes_the_middle_of_sorted_values() {
        let ms = Duration::from_millis;
        let s = spread(&[ms(5), ms(1), ms(3)]);
        assert_eq!((s.median, s.min, s.max), (ms(3), ms(1), ms(5)));
        assert_eq!(spread(&[ms(2), ms(4)]).median, ms(3));
    }

    #[test]
    fn runs_alternate_ours_and_theirs() {
        let order = std::cell::RefCell::new(Vec::new());
        let samples = Samples::interleaved(
            3,
            || {
                order.borrow_mut().push('o');
                Ok(Duration::from_millis(1))
            },
            || {
                order.borrow_mut().push('t');
                Ok(Duration::from_millis(2))
            },
        )
        .unwrap();
        assert_eq!(order.into_inner(), vec!['o', 't', 'o', 't', 'o', 't']);
        assert!((samples.ratio() - 0.5).abs() < 1e-9);
    }
}
