//! Rewriting `mysqldump`/`mariadb-dump` output line by line while it
//! streams: [`DefinerFilter`] removes `DEFINER=` clauses as the dump is
//! compressed, and [`ScratchReader`] points a dump at a scratch database
//! for a restore test.
//!
//! Only lines that start the way the dump tools write those statements are
//! touched; data lines (`INSERT ...` and the `(...)` rows of MariaDB's
//! multi-line inserts) are passed through untouched, whatever they hold.

use std::io::{self, BufRead, Read, Write};

/// How the dump tools start the lines that carry a `DEFINER=` clause.
const DEFINER_LINES: [&[u8]; 4] = [
    // views
    b"/*!50013 DEFINER=",
    // triggers
    b"/*!50003 CREATE*/ /*!50017 DEFINER=",
    // events
    b"/*!50106 CREATE*/ /*!50117 DEFINER=",
    // procedures and functions
    b"CREATE DEFINER=",
];

/// A line is classified once this many bytes of it are known (longer than
/// every prefix above).
const DECIDE_AT: usize = 40;

enum Mode {
    /// At the start of a line, collecting its first bytes.
    Deciding,
    /// Inside a line that is passed through.
    Passing,
    /// Inside a definer line, collected whole.
    Buffering,
}

/// A writer that removes the `DEFINER=<user>@<host>` clauses of views,
/// triggers, events and routines from a dump passing through it, so that
/// they are created with the restoring user as definer (see the module
/// docs of the MySQL engine for the trade-off). Call
/// [`finish`](Self::finish) at the end.
pub(crate) struct DefinerFilter<W> {
    inner: W,
    line: Vec<u8>,
    mode: Mode,
    stripped: u64,
}

impl<W: Write> DefinerFilter<W> {
    pub(crate) fn new(inner: W) -> Self {
        DefinerFilter {
            inner,
            line: Vec::new(),
            mode: Mode::Deciding,
            stripped: 0,
        }
    }

    /// Writes what is still held and returns the inner writer and how many
    /// clauses were removed.
    pub(crate) fn finish(mut self) -> io::Result<(W, u64)> {
        self.emit()?;
        Ok((self.inner, self.stripped))
    }

    /// Writes the held line (stripped when it is a definer line).
    fn emit(&mut self) -> io::Result<()> {
        if is_definer_line(&self.line)
            && let Some(stripped) = strip_definer(&self.line)
        {
            self.stripped += 1;
            self.inner.write_all(&stripped)?;
            self.line.clear();
            return Ok(());
        }
        self.inner.write_all(&self.line)?;
        self.line.clear();
        Ok(())
    }
}

impl<W: Write> Write for DefinerFilter<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let mut rest = buf;
        while !rest.is_empty() {
            let newline = rest.iter().position(|b| *b == b'\n');
            match self.mode {
                Mode::Passing => match newline {
                    Some(i) => {
                        self.inner.write_all(&rest[..=i])?;
                        rest = &rest[i + 1..];
                        self.mode = Mode::Deciding;
                    }
                    None => {
                        self.inner.write_all(rest)?;
                        rest = &[];
                    }
                },
                Mode::Buffering => match newline {
                    Some(i) => {
                        self.line.extend_from_slice(&rest[..=i]);
                        rest = &rest[i + 1..];
                        self.emit()?;
                        self.mode = Mode::Deciding;
                    }
                    None => {
                        self.line.extend_from_slice(rest);
                        rest = &[];
                    }
                },
                Mode::Deciding => {
                    let room = DECIDE_AT.saturating_sub(self.line.len());
                    let take = newline.map_or(room, |i| (i + 1).min(room)).min(rest.len());
                    self.line.extend_from_slice(&rest[..take]);
                    rest = &rest[take..];
                    let complete = self.line.last() == Some(&b'\n');
                    if complete {
                        self.emit()?;
                    } else if self.line.len() >= DECIDE_AT {
                        if is_definer_line(&self.line) {
                            self.mode = Mode::Buffering;
                        } else {
                            self.inner.write_all(&self.line)?;
                            self.line.clear();
                            self.mode = Mode::Passing;
                        }
                    }
                }
            }
        }
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}

fn is_definer_line(line: &[u8]) -> bool {
    DEFINER_LINES.iter().any(|prefix| line.starts_with(prefix))
}

/// `line` without its first `DEFINER=<account>` clause; `None` when the
/// account cannot be parsed (the line is then left as it is).
fn strip_definer(line: &[u8]) -> Option<Vec<u8>> {
    let at = find(line, b"DEFINER=")?;
    let mut end = ident_end(line, at + b"DEFINER=".len())?;
    if line.get(end) == Some(&b'@') {
        end = ident_end(line, end + 1)?;
    }
    let mut out = Vec::with_capacity(line.len());
    out.extend_from_slice(&line[..at]);
    out.extend_from_slice(&line[end..]);
    Some(out)
}

/// The end of the identifier starting at `i`: backquoted (`` ` `` doubled
/// inside), quoted (`'` or `"`, doubled or backslash-escaped), or bare.
fn ident_end(s: &[u8], i: usize) -> Option<usize> {
    let first = *s.get(i)?;
    match first {
        b'`' | b'\'' | b'"' => {
            let mut j = i + 1;
            loop {
                let c = *s.get(j)?;
                let escaped = c == b'\\' && first != b'`';
                let doubled = c == first && s.get(j + 1) == Some(&first);
                if escaped || doubled {
                    j += 2;
                } else if c == first {
                    return Some(j + 1);
                } else {
                    j += 1;
                }
            }
        }
        c if is_bare(c) => {
            let mut j = i;
            while s.get(j).is_some_and(|c| is_bare(*c)) {
                j += 1;
            }
            Some(j)
        }
        _ => None,
    }
}

fn is_bare(c: u8) -> bool {
    c.is_ascii_alphanumeric() || matches!(c, b'_' | b'$' | b'.' | b'-' | b'%')
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}

fn replace_all(haystack: &[u8], needle: &[u8], with: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(haystack.len());
    let mut rest = haystack;
    while let Some(i) = find(rest, needle) {
        out.extend_from_slice(&rest[..i]);
        out.extend_from_slice(with);
        rest = &rest[i + needle.len()..];
    }
    out.extend_from_slice(rest);
    out
}

/// Quotes a MySQL identifier with backquotes.
pub(crate) fn quote_ident(name: &str) -> String {
    format!("`{}`", name.replace('`', "``"))
}

/// A dump of `live` (made with `--databases --add-drop-database`) read as a
/// dump of `scratch`: the `DROP DATABASE` of `live` is left out, its
/// `CREATE DATABASE` becomes an `ALTER DATABASE` of the (already created)
/// scratch database with the same character set, `USE` and `ALTER
/// DATABASE` name the scratch database, and qualified names in trigger
/// definitions are redirected to it. Any other database statement is an
/// error: a restore test must never touch the live database.
pub(crate) struct ScratchReader<R> {
    inner: R,
    live: Vec<u8>,
    live_bare: Vec<u8>,
    scratch: Vec<u8>,
    scratch_bare: Vec<u8>,
    out: Vec<u8>,
    at: usize,
}

impl<R: BufRead> ScratchReader<R> {
    pub(crate) fn new(inner: R, live: &str, scratch: &str) -> Self {
        ScratchReader {
            inner,
            live: quote_ident(live).into_bytes(),
            live_bare: live.as_bytes().to_vec(),
            scratch: quote_ident(scratch).into_bytes(),
            scratch_bare: scratch.as_bytes().to_vec(),
            out: Vec::new(),
            at: 0,
        }
    }

    fn refused(&self, line: &[u8]) -> io::Error {
        let shown = String::from_utf8_lossy(&line[..line.len().min(120)]);
        io::Error::new(
            io::ErrorKind::InvalidData,
            format!(
                "the dump has a database statement the restore test cannot redirect: {}",
                shown.trim_end()
            ),
        )
    }

    fn transform(&self, line: Vec<u8>) -> io::Result<Vec<u8>> {
        // The statement, after a leading version comment (`/*!40000 `).
        let body = version_comment_end(&line).map_or(&line[..], |i| &line[i..]);
        let upper: Vec<u8> = body.iter().take(20).map(u8::to_ascii_uppercase).collect();
        if upper.starts_with(b"DROP DATABASE") || upper.starts_with(b"DROP SCHEMA") {
            return match find(body, &self.live) {
                Some(_) => Ok(Vec::new()),
                None => Err(self.refused(&line)),
            };
        }
        if upper.starts_with(b"CREATE DATABASE") || upper.starts_with(b"CREATE SCHEMA") {
            let Some(i) = find(body, &self.live) else {
                return Err(self.refused(&line));
            };
            let options = &body[i + self.live.len()..];
            if options
                .iter()
                .all(|c| c.is_ascii_whitespace() || *c == b';')
            {
                return Ok(Vec::new());
            }
            let mut out = b"ALTER DATABASE ".to_vec();
            out.extend_from_slice(&self.scratch);
            out.extend_from_slice(options);
            return Ok(out);
        }
        if upper.starts_with(b"ALTER DATABASE") || upper.starts_with(b"ALTER SCHEMA") {
            return match find(&line, &self.live) {
                Some(_) => Ok(replace_all(&line, &self.live, &self.scratch)),
                None => Err(self.refused(&line)),
            };
        }
        if upper.starts_with(b"USE ") {
            let mut expected = b"USE ".to_vec();
            expected.extend_from_slice(&self.live);
            expected.push(b';');
            if body.trim_ascii_end() != expected.as_slice() {
                return Err(self.refused(&line));
            }
            let mut out = b"USE ".to_vec();
            out.extend_from_slice(&self.scratch);
            out.extend_from_slice(b";\n");
            return Ok(out);
        }
        if find(&line, b"/*!50003 TRIGGER ").is_some() {
            let mut quoted = self.live.clone();
            quoted.push(b'.');
            let mut scratch_quoted = self.scratch.clone();
            scratch_quoted.push(b'.');
            let line = replace_all(&line, &quoted, &scratch_quoted);
            return Ok(self.redirect_bare(&line));
        }
        Ok(line)
    }

    /// Replaces `live.` with `scratch.` where `live` starts a word.
    fn redirect_bare(&self, line: &[u8]) -> Vec<u8> {
        let mut needle = self.live_bare.clone();
        needle.push(b'.');
        let mut out = Vec::with_capacity(line.len());
        let mut i = 0;
        while i < line.len() {
            let starts_word = i == 0 || !is_bare(line[i - 1]) && line[i - 1] != b'`';
            if starts_word && line[i..].starts_with(&needle) {
                out.extend_from_slice(&self.scratch_bare);
                out.push(b'.');
                i += needle.len();
            } else {
                out.push(line[i]);
                i += 1;
            }
        }
        out
    }
}

/// Where the statement starts after a leading `/*!NNNNN ` version comment.
fn version_comment_end(line: &[u8]) -> Option<usize> {
    let rest = line.strip_prefix(b"/*!")?;
    let digits = rest.iter().take_while(|c| c.is_ascii_digit()).count();
    (digits > 0).then_some(3 + digits + usize::from(rest.get(digits) == Some(&b' ')))
}

impl<R: BufRead> Read for ScratchReader<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        while self.at == self.out.len() {
            let mut line = Vec::new();
            if self.inner.read_until(b'\n', &mut line)? == 0 {
                return Ok(0);
            }
            self.out = self.transform(line)?;
            self.at = 0;
        }
        let n = buf.len().min(self.out.len() - self.at);
        buf[..n].copy_from_slice(&self.out[self.at..self.at + n]);
        self.at += n;
        Ok(n)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The statements of a real `mariadb-dump --databases --add-drop-database
    /// --routines --triggers` of database `defx` (10.11), objects created
    /// with `DEFINER='updater_other'@'%'`.
    const DUMP: &str = "/*M!999999\\- enable the sandbox mode */ \n\
-- Current Database: `defx`\n\
/*!40000 DROP DATABASE IF EXISTS `defx`*/;\n\
CREATE DATABASE /*!32312 IF NOT EXISTS*/ `defx` /*!40100 DEFAULT CHARACTER SET utf8mb4 COLLATE utf8mb4_general_ci */;\n\
USE `defx`;\n\
INSERT INTO `t` VALUES\n\
(1,'DEFINER=`a`@`b` inside'),\n\
(2,'/*!50013 DEFINER=`x`@`y` SQL SECURITY DEFINER */');\n\
/*!50003 CREATE*/ /*!50017 DEFINER=`updater_other`@`%`*/ /*!50003 TRIGGER defx.tr BEFORE INSERT ON defx.t FOR EACH ROW SET NEW.name = upper(NEW.name) */;;\n\
CREATE DEFINER=`updater_other`@`%` FUNCTION `f`(x INT) RETURNS int(11)\n\
CREATE DEFINER=`it``s`@`localhost` PROCEDURE `p`()\n\
CREATE DEFINER=`a_role` PROCEDURE `q`()\n\
ALTER DATABASE `defx` CHARACTER SET latin1 COLLATE latin1_swedish_ci ;\n\
USE `defx`;\n\
/*!50001 CREATE ALGORITHM=UNDEFINED */\n\
/*!50013 DEFINER=`updater_other`@`%` SQL SECURITY DEFINER */\n\
/*!50001 VIEW `v` AS select `t`.`name` AS `name` from `t` */;\n\
-- Dump completed on 2026-12-06  2:32:20\n";

    fn filtered(input: &str, chunk: usize) -> (String, u64) {
        let mut filter = DefinerFilter::new(Vec::new());
        for piece in input.as_bytes().chunks(chunk) {
            filter.write_all(piece).unwrap();
        }
        let (out, n) = filter.finish().unwrap();
        (String::from_utf8(out).unwrap(), n)
    }

    #[test]
    fn definers_are_removed_from_ddl_lines_and_never_from_data() {
        let (out, stripped) = filtered(DUMP, 1 << 16);
        assert_eq!(stripped, 5);
        assert!(out.contains("/*!50003 CREATE*/ /*!50017 */ /*!50003 TRIGGER defx.tr"));
        assert!(out.contains("CREATE  FUNCTION `f`(x INT)"));
        assert!(out.contains("CREATE  PROCEDURE `p`()"));
        assert!(out.contains("CREATE  PROCEDURE `q`()"));
        assert!(out.contains("/*!50013  SQL SECURITY DEFINER */\n/*!50001 VIEW"));
        // Data keeps every byte.
        assert!(out.contains(
            "(1,'DEFINER=`a`@`b` inside'),\n(2,'/*!50013 DEFINER=`x`@`y` SQL SECURITY DEFINER */');"
        ));
        assert!(out.ends_with("-- Dump completed on 2026-12-06  2:32:20\n"));
    }

    #[test]
    fn the_filter_gives_the_same_output_whatever_the_chunk_size() {
        let (whole, _) = filtered(DUMP, 1 << 16);
        for chunk in [1, 2, 7, 39, 40, 41, 100] {
            assert_eq!(filtered(DUMP, chunk).0, whole, "chunk {chunk}");
        }
        // A last line without a newline is still written (and stripped).
        assert_eq!(
            filtered("CREATE DEFINER=`u`@`h` FUNCTION f()", 3).0,
            "CREATE  FUNCTION f()"
        );
    }

    fn redirected(input: &str) -> io::Result<String> {
        let mut out = String::new();
        ScratchReader::new(input.as_bytes(), "defx", "defx_updater_check_0a1b2c3d")
            .read_to_string(&mut out)?;
        Ok(out)
    }

    #[test]
    fn a_scratch_restore_never_names_the_live_database() {
        let out = redirected(DUMP).unwrap();
        assert!(!out.contains("DROP DATABASE"), "{out}");
        assert!(out.contains(
            "ALTER DATABASE `defx_updater_check_0a1b2c3d` /*!40100 DEFAULT CHARACTER SET utf8mb4 COLLATE utf8mb4_general_ci */;\n"
        ));
        assert_eq!(
            out.matches("USE `defx_updater_check_0a1b2c3d`;\n").count(),
            2
        );
        assert!(out.contains(
            "TRIGGER defx_updater_check_0a1b2c3d.tr BEFORE INSERT ON defx_updater_check_0a1b2c3d.t"
        ));
        assert!(out.contains("ALTER DATABASE `defx_updater_check_0a1b2c3d` CHARACTER SET latin1"));
        assert!(
            !out.lines()
                .any(|l| !l.starts_with("--") && l.contains("`defx`")),
            "only comments name the live database: {out}"
        );
        // Data is untouched.
        assert!(out.contains("(1,'DEFINER=`a`@`b` inside'),"));
    }

    #[test]
    fn a_database_statement_naming_another_database_stops_the_restore_test() {
        for line in [
            "USE `other`;\n",
            "/*!40000 DROP DATABASE IF EXISTS `other`*/;\n",
            "CREATE DATABASE `other`;\n",
            "drop schema `other`;\n",
        ] {
            let err = redirected(line).unwrap_err();
            assert_eq!(err.kind(), io::ErrorKind::InvalidData, "{line}");
            assert!(err.to_string().contains("cannot redirect"), "{err}");
        }
    }
}
