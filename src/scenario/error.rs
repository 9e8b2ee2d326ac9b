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
        let mut message = err.message().trim().replace('\n', " ");
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
        let offset = span_of(text, path).unwrap_or(0);
        let (line, column) = line_col(text.as_bytes(), offset);
        ScenarioError::at(
            file,
            line,
            column,
            format!("{}: {}", render_path(path), message.into()),
        )
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
fn span_of(text: &str, path: &[PathSeg<'_>]) -> Option<usize> {
    let root = DeTable::parse(text).ok()?;
    let mut best = root.span().start;
    let mut current: Option<&DeValue<'_>> = None;
    let mut table: Option<&DeTable<'_>> = Some(root.get_ref());
    for seg in path {
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
