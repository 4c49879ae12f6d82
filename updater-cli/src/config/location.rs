//! From byte offsets (toml's error spans) to `line:column` and dotted keys,
//! and from dotted keys back to lines, so every configuration error can say
//! where it is.

/// A 1-based line and column (in characters).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Position {
    /// Line, from 1.
    pub line: usize,
    /// Column, from 1, counted in characters.
    pub column: usize,
}

/// The line and column of byte `offset` in `text` (clamped to the text).
pub fn position_of(text: &str, offset: usize) -> Position {
    let mut offset = offset.min(text.len());
    while !text.is_char_boundary(offset) {
        offset -= 1;
    }
    let before = &text[..offset];
    let line = before.matches('\n').count() + 1;
    let line_start = before.rfind('\n').map_or(0, |i| i + 1);
    let column = text[line_start..offset].chars().count() + 1;
    Position { line, column }
}

/// The table header named on `line`, if it is one (`[backup.database]` → `backup.database`).
fn header_of(line: &str) -> Option<String> {
    let trimmed = line.trim();
    let inner = trimmed
        .strip_prefix("[[")
        .and_then(|s| s.split("]]").next())
        .or_else(|| trimmed.strip_prefix('[').and_then(|s| s.split(']').next()))?;
    Some(normalise_key(inner))
}

/// The key assigned on `line`, if any (`retention = 3` → `retention`).
fn assigned_key(line: &str) -> Option<String> {
    let trimmed = line.trim_start();
    if trimmed.starts_with('#') || trimmed.starts_with('[') {
        return None;
    }
    let (key, _) = trimmed.split_once('=')?;
    let key = normalise_key(key);
    (!key.is_empty()).then_some(key)
}

fn normalise_key(key: &str) -> String {
    key.split('.')
        .map(|part| part.trim().trim_matches('"').trim_matches('\''))
        .collect::<Vec<_>>()
        .join(".")
}

fn join(section: &str, key: &str) -> String {
    if section.is_empty() {
        key.to_string()
    } else {
        format!("{section}.{key}")
    }
}

/// The dotted key at byte `offset`: the key assigned on that line inside its
/// table, or the table itself when the offset is on a header.
pub fn key_at(text: &str, offset: usize) -> Option<String> {
    let target = position_of(text, offset).line;
    let mut section = String::new();
    for (index, line) in text.lines().enumerate() {
        if let Some(header) = header_of(line) {
            section = header;
        }
        if index + 1 == target {
            if let Some(key) = assigned_key(line) {
                return Some(join(&section, &key));
            }
            return (!section.is_empty()).then_some(section);
        }
    }
    None
}

/// The line on which the dotted `key` is assigned (or, for a table, its
/// header), if the file has it.
pub fn line_of_key(text: &str, key: &str) -> Option<usize> {
    let mut section = String::new();
    for (index, line) in text.lines().enumerate() {
        if let Some(header) = header_of(line) {
            if header == key {
                return Some(index + 1);
            }
            section = header;
            continue;
        }
        if let Some(assigned) = assigned_key(line)
            && join(&section, &assigned) == key
        {
            return Some(index + 1);
        }
    }
    None
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use proptest::prelude::*;

    const TEXT: &str =
        "channel = \"beta\"\n[app]\ndir = \"/srv\"\n\n[backup.database]\n\"kind\" = \"sqlite\"\n";

    #[test]
    fn offsets_become_lines_and_columns() {
        assert_eq!(position_of(TEXT, 0), Position { line: 1, column: 1 });
        let dir = TEXT.find("\"/srv\"").unwrap();
        assert_eq!(position_of(TEXT, dir), Position { line: 3, column: 7 });
    }

    #[test]
    fn keys_are_found_with_their_table() {
        let kind = TEXT.find("sqlite").unwrap();
        assert_eq!(key_at(TEXT, kind).as_deref(), Some("backup.database.kind"));
        assert_eq!(key_at(TEXT, 3).as_deref(), Some("channel"));
        assert_eq!(line_of_key(TEXT, "backup.database.kind"), Some(6));
        assert_eq!(line_of_key(TEXT, "backup.database"), Some(5));
        assert_eq!(line_of_key(TEXT, "app.missing"), None);
    }

    proptest! {
        #[test]
        fn every_offset_maps_to_a_position_inside_the_text(text in "[a-z=\\[\\]\n é]{0,80}", offset in 0usize..100) {
            let p = position_of(&text, offset);
            prop_assert!(p.line >= 1 && p.line <= text.lines().count().max(1) + 1);
            let line = text.split('\n').nth(p.line - 1).unwrap_or("");
            prop_assert!(p.column <= line.chars().count() + 1);
        }
    }
}
