//! From byte offsets (toml's error spans) to `line:column` and dotted keys,
//! and from dotted keys back to lines, so every configuration error can say
//! where it is.

use std::ops::Range;

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

/// Every dotted key of the document with the span of its key and of its
/// value, from toml's own parser (also for a document with syntax errors:
/// what could be parsed).
fn spans(text: &str) -> Vec<(String, Range<usize>, Range<usize>)> {
    fn walk(
        table: &toml::de::DeTable<'_>,
        prefix: &str,
        out: &mut Vec<(String, Range<usize>, Range<usize>)>,
    ) {
        for (key, value) in table.iter() {
            let name = if prefix.is_empty() {
                key.get_ref().to_string()
            } else {
                format!("{prefix}.{}", key.get_ref())
            };
            out.push((name.clone(), key.span(), value.span()));
            match value.get_ref() {
                toml::de::DeValue::Table(inner) => walk(inner, &name, out),
                toml::de::DeValue::Array(items) => {
                    for item in items.iter() {
                        if let toml::de::DeValue::Table(inner) = item.get_ref() {
                            walk(inner, &name, out);
                        }
                    }
                }
                _ => {}
            }
        }
    }
    let (document, _errors) = toml::de::DeTable::parse_recoverable(text);
    let mut out = Vec::new();
    walk(document.get_ref(), "", &mut out);
    out
}

/// The dotted key at byte `offset`: the innermost key whose name or value
/// covers it (a table's header counts as its name).
pub fn key_at(text: &str, offset: usize) -> Option<String> {
    let line = position_of(text, offset).line;
    spans(text)
        .into_iter()
        .filter(|(_, key, value)| {
            key.contains(&offset)
                || value.contains(&offset)
                || value.end == offset
                || position_of(text, key.start).line == line
        })
        .min_by_key(|(name, key, value)| {
            let covering = key.start.min(value.start)..key.end.max(value.end);
            (
                usize::from(position_of(text, key.start).line != line),
                covering.len(),
                usize::MAX - name.len(),
            )
        })
        .map(|(name, _, _)| name)
}

/// The line on which the dotted `key` is assigned (or, for a table, its
/// header), if the file has it.
pub fn line_of_key(text: &str, key: &str) -> Option<usize> {
    spans(text)
        .into_iter()
        .find(|(name, _, _)| name == key)
        .map(|(_, span, _)| position_of(text, span.start).line)
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
