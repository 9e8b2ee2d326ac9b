//! Scenario errors with file, line and column, and the lookup from a key path to its place in
//! the file (for semantic errors found after deserialization).

use std::fmt;
use std::path::{Path, PathBuf};

use toml::de::{DeTable, DeValue};

/// A problem with a scenario file: where it is and what was expected. Displays as
/// `file:line:col: message`, the form editors and terminals link to.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub struct ScenarioError {
    /// The file.
    pub file: PathBuf,
    /// 1-based line.
    pub line: usize,
    /// 1-based column (in characters).
    pub column: usize,
    /// What is wrong and what was expected.
    pub message: String,
}

impl fmt::Display for ScenarioError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}:{}:{}: {}",
            self.file.display(),
            self.line,
            self.column,
            self.message
        )
    }
}

impl ScenarioError {
    /// An error at a known line and column.
    pub fn at(file: &Path, line: usize, column: usize, message: impl Into<String>) -> Self {
        ScenarioError {
            file: file.to_path_buf(),
            line,
            column,
            message: message.into(),
        }
    }

    /// The file could not be read.
    pub fn io(file: &Path, err: &std::io::Error) -> Self {
        ScenarioError::at(file, 1, 1, format!("cannot read the file: {err}"))
    }

    /// A TOML syntax or type error, located by the parser's span.
    pub fn from_toml(file: &Path, text: &str, err: &toml::de::Error) -> Self {
        let (line, column) = err
            .span()
            .map(|span| line_col(text.as_bytes(), span.start))
            .unwrap_or((1, 1));
        let found = err.span().and_then(|span| snippet(text, span));
        let mut message = scenario_language(&err.message().trim().replace('\n', " "), found);
        if let Some(key) = err
            .span()
            .filter(|span| !span.is_empty())
            .and_then(|span| key_path_at(text, span))
        {
            message = format!("{key}: {message}");
        }
        ScenarioError::at(file, line, column, message)
    }

    /// A semantic error about the value at `path` (e.g. `["fault", 2, "target"]`), located by
    /// looking the path up in the parsed document. If the path is not in the file (a default),
    /// the error points at the deepest enclosing item that is.
    pub fn at_path(
        file: &Path,
        text: &str,
        path: &[PathSeg<'_>],
        message: impl Into<String>,
    ) -> Self {
        ScenarioError::at_located(file, text, path, false, message)
    }

    /// Like [`ScenarioError::at_path`], but located at the last key itself rather than its value
    /// (for an unknown key).
    pub fn at_key(
        file: &Path,
        text: &str,
        path: &[PathSeg<'_>],
        message: impl Into<String>,
    ) -> Self {
        ScenarioError::at_located(file, text, path, true, message)
    }

    fn at_located(
        file: &Path,
        text: &str,
        path: &[PathSeg<'_>],
        key_only: bool,
        message: impl Into<String>,
    ) -> Self {
        let offset = span_of(text, path, key_only).unwrap_or(0);
        let (line, column) = line_col(text.as_bytes(), offset);
        ScenarioError::at(
            file,
            line,
            column,
            format!("{}: {}", render_path(path), message.into()),
        )
    }
}

/// Rewrites a serde or TOML message in the scenario format's own words: TOML types instead of
/// Rust types (`a whole number` for `u32`, `a table` for `struct Cluster`, `an array` for
/// `a sequence`), the value as written in the file (`found`, when known) instead of serde's
/// description of it, and no mention of untagged enums or `i128`. Messages already in the
/// format's words (unknown fields, unknown names, missing keys, durations) pass unchanged.
pub(crate) fn scenario_language(message: &str, found: Option<&str>) -> String {
    let found_or = |described: &str| found.map_or_else(|| described.to_string(), str::to_string);
    // A number beyond TOML's 64-bit integers, read into a free-form table (an options table).
    if message.ends_with("expected any valid TOML value")
        && let Some(f) = found.filter(|f| f.chars().all(|c| c.is_ascii_digit() || c == '-'))
    {
        return format!("expected an integer that fits in 64 bits (TOML's integers), found {f}");
    }
    for prefix in ["invalid type: ", "invalid value: "] {
        if let Some((unexpected, expected)) = message
            .strip_prefix(prefix)
            .and_then(|rest| rest.rsplit_once(", expected "))
        {
            return format!(
                "expected {}, found {}",
                expected_words(expected),
                found_or(&unexpected_words(unexpected))
            );
        }
    }
    if let Some(name) = message.strip_prefix("data did not match any variant of untagged enum ") {
        let what = match name.trim() {
            "NodeRefs" => {
                "a node reference (a node or group name, or \"servers\") or a list of them"
            }
            "NodeList" => "a node count or a list of node names",
            "LatencySpec" => {
                "a latency: a duration such as \"5ms\" or a table with a `distribution`"
            }
            _ => "a value of one of the forms this key takes (see docs/scenario-format.md)",
        };
        return format!("expected {what}, found {}", found_or("another value"));
    }
    if message == "wanted string or table" {
        return format!(
            "expected a name in quotes (a string), found {}",
            found_or("another value")
        );
    }
    message.to_string()
}

/// serde's `expected ...` in TOML terms.
fn expected_words(expected: &str) -> String {
    let whole = |max: u64| format!("a whole number from 0 to {max}");
    match expected {
        "u8" => whole(u8::MAX.into()),
        "u16" => whole(u16::MAX.into()),
        "u32" => whole(u32::MAX.into()),
        "u64" | "usize" | "u128" => "a whole number (0 or more)".into(),
        "i8" | "i16" | "i32" | "i64" | "isize" | "i128" => "an integer".into(),
        "f32" | "f64" => "a number".into(),
        "a boolean" => "true or false".into(),
        "a sequence" => "an array".into(),
        "a map" => "a table".into(),
        "any value" => "a value".into(),
        "a character" | "a borrowed string" => "a string".into(),
        "variant identifier" => "a name in quotes (a string)".into(),
        e if e.starts_with("struct variant ") || e.starts_with("struct ") => "a table".into(),
        e if e.starts_with("tuple") || e.starts_with("a tuple") => "an array".into(),
        e if e.starts_with("enum ") => "a name in quotes (a string)".into(),
        e => e.to_string(),
    }
}

/// serde's description of the value found, in TOML terms (used when the file's own text of the
/// value is not available).
fn unexpected_words(unexpected: &str) -> String {
    let literal = |rest: &str| rest.trim_matches('`').to_string();
    if let Some(rest) = unexpected.strip_prefix("integer ") {
        return literal(
            rest.trim_end_matches(" as i128")
                .trim_end_matches(" as u128"),
        );
    }
    if let Some(rest) = unexpected.strip_prefix("floating point ") {
        return literal(rest);
    }
    if let Some(rest) = unexpected.strip_prefix("boolean ") {
        return literal(rest);
    }
    if let Some(rest) = unexpected.strip_prefix("string ") {
        return rest.to_string();
    }
    match unexpected {
        "map" => "a table (or a date)".into(),
        "sequence" => "an array".into(),
        u => u.to_string(),
    }
}

/// The file's own text of the value at `span`, for `found ...` (first line, at most 60
/// characters), if the span holds one.
fn snippet(text: &str, span: std::ops::Range<usize>) -> Option<&str> {
    let raw = text.get(span)?.trim();
    let line = raw.lines().next()?.trim();
    if line.is_empty() || (line.starts_with('[') && raw.contains('\n')) {
        return None;
    }
    match line.char_indices().nth(60) {
        Some((cut, _)) => Some(&line[..cut]),
        None => Some(line),
    }
}

/// One step of a key path: a table key or an array index.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub enum PathSeg<'a> {
    /// A key of a table.
    Key(&'a str),
    /// An element of an array (0-based).
    Index(usize),
}

impl<'a> From<&'a str> for PathSeg<'a> {
    fn from(key: &'a str) -> Self {
        PathSeg::Key(key)
    }
}

impl From<usize> for PathSeg<'_> {
    fn from(index: usize) -> Self {
        PathSeg::Index(index)
    }
}

/// Renders a path the way a reader finds it in the file: `fault[2].target`,
/// `network.link[0].latency`.
pub fn render_path(path: &[PathSeg<'_>]) -> String {
    let mut out = String::new();
    for seg in path {
        match seg {
            PathSeg::Key(k) => {
                if !out.is_empty() {
                    out.push('.');
                }
                out.push_str(k);
            }
            PathSeg::Index(i) => out.push_str(&format!("[{i}]")),
        }
    }
    out
}

/// Byte offset of the value at `path`, or of its deepest ancestor present in the file.
fn span_of(text: &str, path: &[PathSeg<'_>], key_only: bool) -> Option<usize> {
    let root = DeTable::parse(text).ok()?;
    let mut best = root.span().start;
    let mut current: Option<&DeValue<'_>> = None;
    let mut table: Option<&DeTable<'_>> = Some(root.get_ref());
    for (i, seg) in path.iter().enumerate() {
        let next = match (seg, table, current) {
            (PathSeg::Key(k), Some(t), _) => t
                .iter()
                .find(|(key, _)| key.get_ref().as_ref() == *k)
                .map(|(key, value)| {
                    best = key.span().start;
                    value
                }),
            (PathSeg::Index(i), _, Some(DeValue::Array(items))) => items.get(*i),
            _ => None,
        };
        let Some(next) = next else { break };
        if key_only && i + 1 == path.len() && matches!(seg, PathSeg::Key(_)) {
            break;
        }
        if !matches!(seg, PathSeg::Key(_)) || !matches!(next.get_ref(), DeValue::Table(_)) {
            best = next.span().start;
        }
        current = Some(next.get_ref());
        table = match next.get_ref() {
            DeValue::Table(t) => Some(t),
            _ => None,
        };
    }
    Some(best)
}

/// The rendered key path (`workload.clients`, `fault[2].at`) of the deepest key or value whose
/// span contains the byte range `span`, if the text parses as TOML. Tables declared with a
/// `[header]` do not span their contents, so every branch is searched.
fn key_path_at(text: &str, span: std::ops::Range<usize>) -> Option<String> {
    fn walk(
        value: &DeValue<'_>,
        span: &std::ops::Range<usize>,
        path: String,
        depth: usize,
        best: &mut Option<(usize, String)>,
    ) {
        let consider = |item_path: String, covers: bool, best: &mut Option<(usize, String)>| {
            if covers && best.as_ref().is_none_or(|(d, _)| depth >= *d) {
                *best = Some((depth, item_path));
            }
        };
        let covers =
            |r: std::ops::Range<usize>| r.start <= span.start && span.end <= r.end.max(r.start + 1);
        match value {
            DeValue::Table(table) => {
                for (key, item) in table.iter() {
                    let item_path = if path.is_empty() {
                        key.get_ref().to_string()
                    } else {
                        format!("{path}.{}", key.get_ref())
                    };
                    consider(
                        item_path.clone(),
                        covers(key.span()) || covers(item.span()),
                        best,
                    );
                    walk(item.get_ref(), span, item_path, depth + 1, best);
                }
            }
            DeValue::Array(items) => {
                for (i, item) in items.iter().enumerate() {
                    let item_path = format!("{path}[{i}]");
                    consider(item_path.clone(), covers(item.span()), best);
                    walk(item.get_ref(), span, item_path, depth + 1, best);
                }
            }
            _ => {}
        }
    }
    let root = DeTable::parse(text).ok()?;
    let mut best = None;
    walk(
        &DeValue::Table(root.into_inner()),
        &span,
        String::new(),
        0,
        &mut best,
    );
    best.map(|(_, path)| path)
}

/// 1-based line and column (in characters) of byte `offset` in `bytes`.
pub fn line_col(bytes: &[u8], offset: usize) -> (usize, usize) {
    let offset = offset.min(bytes.len());
    let before = &bytes[..offset];
    let line = before.iter().filter(|&&b| b == b'\n').count() + 1;
    let line_start = before
        .iter()
        .rposition(|&b| b == b'\n')
        .map_or(0, |p| p + 1);
    let column = String::from_utf8_lossy(&before[line_start..])
        .chars()
        .count()
        + 1;
    (line, column)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn line_col_counts_from_one() {
        let text = b"a = 1\nbb = 2\n";
        assert_eq!(line_col(text, 0), (1, 1));
        assert_eq!(line_col(text, 6), (2, 1));
        assert_eq!(line_col(text, 11), (2, 6));
        assert_eq!(line_col(text, 999), (3, 1));
    }

    #[test]
    fn paths_find_keys_in_arrays_of_tables() {
        let text = "seed = 1\n[[fault]]\nat = \"1s\"\n[[fault]]\nat = \"2s\"\ntarget = \"n9\"\n";
        let err = ScenarioError::at_path(
            Path::new("s.toml"),
            text,
            &["fault".into(), 1.into(), "target".into()],
            "unknown node \"n9\"",
        );
        assert_eq!((err.line, err.column), (6, 10), "points at the value");
        assert_eq!(
            err.to_string(),
            "s.toml:6:10: fault[1].target: unknown node \"n9\""
        );
        // A key absent from the file points at its enclosing table.
        let err = ScenarioError::at_path(
            Path::new("s.toml"),
            text,
            &["fault".into(), 0.into(), "kind".into()],
            "missing",
        );
        assert_eq!(err.line, 2);
    }
}
