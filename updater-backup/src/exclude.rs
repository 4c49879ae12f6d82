//! Excluded paths: globs matched against paths relative to the application root.

use globset::{GlobBuilder, GlobSet, GlobSetBuilder};

use crate::error::{BackupError, Result};

/// The paths a file backup leaves out unless told otherwise: logs, user
/// uploads (kept across updates by the swap) and the updater's own state.
pub const DEFAULT_EXCLUDES: [&str; 3] = ["storage/logs", "storage/app/public", ".updater"];

/// A set of exclude globs.
///
/// Patterns are matched against paths relative to the root, with `/` as the
/// separator; `*` and `?` never cross a `/` (use `**` for any depth). A path is
/// excluded when it or any of its parent directories matches, so
/// `storage/logs` excludes the directory and everything below it.
#[derive(Debug, Clone)]
pub struct ExcludeSet {
    patterns: Vec<String>,
    set: GlobSet,
}

impl ExcludeSet {
    /// Compiles `patterns` (a leading `./` and trailing `/` are ignored).
    pub fn new<I, S>(patterns: I) -> Result<Self>
    where
        I: IntoIterator<Item = S>,
        S: AsRef<str>,
    {
        let mut builder = GlobSetBuilder::new();
        let mut kept = Vec::new();
        for pattern in patterns {
            let raw = pattern.as_ref();
            let normalized = normalize(raw);
            if normalized.is_empty() {
                return Err(BackupError::invalid(
                    format!("exclude pattern {raw:?}"),
                    "it would exclude the whole tree",
                ));
            }
            let glob = GlobBuilder::new(normalized)
                .literal_separator(true)
                .build()
                .map_err(|source| BackupError::ExcludePattern {
                    pattern: raw.to_string(),
                    source,
                })?;
            builder.add(glob);
            kept.push(normalized.to_string());
        }
        let set = builder
            .build()
            .map_err(|source| BackupError::ExcludePattern {
                pattern: kept.join(", "),
                source,
            })?;
        Ok(ExcludeSet {
            patterns: kept,
            set,
        })
    }

    /// The normalised patterns, in the order given.
    pub fn patterns(&self) -> &[String] {
        &self.patterns
    }

    /// Whether `relative` itself matches a pattern (its parents are not checked;
    /// a directory walk prunes excluded directories instead).
    pub fn matches_exactly(&self, relative: &str) -> bool {
        !self.patterns.is_empty() && self.set.is_match(relative)
    }

    /// Whether `relative` or one of its parent directories matches a pattern.
    pub fn is_excluded(&self, relative: &str) -> bool {
        if self.patterns.is_empty() {
            return false;
        }
        for (index, byte) in relative.bytes().enumerate() {
            if byte == b'/' && self.set.is_match(&relative[..index]) {
                return true;
            }
        }
        self.set.is_match(relative)
    }
}

fn normalize(pattern: &str) -> &str {
    let mut p = pattern.trim();
    while let Some(rest) = p.strip_prefix("./") {
        p = rest;
    }
    p.trim_end_matches('/')
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn a_directory_pattern_excludes_everything_below_it() {
        let set = ExcludeSet::new(DEFAULT_EXCLUDES).unwrap();
        assert!(set.is_excluded("storage/logs"));
        assert!(set.is_excluded("storage/logs/app.log"));
        assert!(set.is_excluded("storage/app/public/a/b.jpg"));
        assert!(set.is_excluded(".updater/journal.json"));
        assert!(!set.is_excluded("storage/app/private.txt"));
        assert!(!set.is_excluded("storage/logsX"));
        assert!(!set.is_excluded("node_modules/x"));
    }

    #[test]
    fn star_does_not_cross_directories_but_double_star_does() {
        let set = ExcludeSet::new(["*.log", "**/cache"]).unwrap();
        assert!(set.is_excluded("a.log"));
        assert!(!set.is_excluded("dir/a.log"));
        assert!(set.is_excluded("x/y/cache/z"));
    }

    #[test]
    fn invalid_and_empty_patterns_are_refused_with_their_text() {
        let err = ExcludeSet::new(["a[b"]).unwrap_err();
        assert!(err.to_string().contains("a[b"), "{err}");
        assert!(ExcludeSet::new(["./"]).is_err());
    }

    proptest! {
        #[test]
        fn any_path_below_an_excluded_directory_is_excluded(
            dir in "[a-z]{1,8}(/[a-z]{1,8}){0,2}",
            rest in "[a-z.]{1,8}(/[a-z.]{1,8}){0,3}",
        ) {
            let set = ExcludeSet::new([dir.as_str()]).unwrap();
            let below = format!("{dir}/{rest}");
            prop_assert!(set.is_excluded(&dir));
            prop_assert!(set.is_excluded(&below));
            let sibling = format!("{dir}x/{rest}");
            prop_assert!(!set.is_excluded(&sibling));
        }
    }
}
