//! A small reader for EDN (extensible data notation, <https://github.com/edn-format/edn>), the
//! notation of Jepsen and Knossos histories.
//!
//! Why not a crate: the published EDN crates either panic on some malformed inputs or do not
//! report line numbers, and faultline must name the line of every bad event and never panic on
//! any input bytes (see the proptest in this module). Histories use a small part of EDN, which
//! this reader covers whole: `nil`, booleans, integers (with an optional `N` suffix), floats,
//! strings with escapes, characters, keywords, symbols, lists, vectors, maps, sets, tagged
//! elements (`#inst "..."`), discards (`#_ form`), `;` comments, and commas as whitespace.
//! Nesting is limited to [`MAX_DEPTH`] levels so that hostile input cannot exhaust the stack.

use std::fmt;

/// The deepest nesting of collections accepted.
pub const MAX_DEPTH: usize = 64;

/// One EDN value.
#[derive(Clone, Debug, PartialEq)]
pub enum Edn {
    /// `nil`.
    Nil,
    /// `true` / `false`.
    Bool(bool),
    /// An integer that fits in 64 bits.
    Int(i64),
    /// A floating-point number.
    Float(f64),
    /// A string (escapes resolved).
    Str(String),
    /// A character, e.g. `\a`.
    Char(char),
    /// A keyword, without its leading colon: `:read` is `Keyword("read")`.
    Keyword(String),
    /// A symbol.
    Symbol(String),
    /// `( ... )`.
    List(Vec<Edn>),
    /// `[ ... ]`.
    Vector(Vec<Edn>),
    /// `{ k v ... }`, in source order.
    Map(Vec<(Edn, Edn)>),
    /// `#{ ... }`.
    Set(Vec<Edn>),
    /// `#tag value`.
    Tagged(String, Box<Edn>),
}

impl Edn {
    /// The value stored under keyword `key` in a map (`None` if absent or not a map).
    pub fn get(&self, key: &str) -> Option<&Edn> {
        match self {
            Edn::Map(entries) => entries
                .iter()
                .find(|(k, _)| matches!(k, Edn::Keyword(name) if name == key))
                .map(|(_, v)| v),
            _ => None,
        }
    }

    /// A short name of the value's kind, for error messages.
    pub fn kind(&self) -> &'static str {
        match self {
            Edn::Nil => "nil",
            Edn::Bool(_) => "a boolean",
            Edn::Int(_) => "an integer",
            Edn::Float(_) => "a float",
            Edn::Str(_) => "a string",
            Edn::Char(_) => "a character",
            Edn::Keyword(_) => "a keyword",
            Edn::Symbol(_) => "a symbol",
            Edn::List(_) => "a list",
            Edn::Vector(_) => "a vector",
            Edn::Map(_) => "a map",
            Edn::Set(_) => "a set",
            Edn::Tagged(..) => "a tagged element",
        }
    }
}

impl fmt::Display for Edn {
    /// Prints the value back in EDN syntax (used for error descriptions such as
    /// `[:not-found "lease not found"]`).
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fn seq(f: &mut fmt::Formatter<'_>, open: &str, items: &[Edn], close: &str) -> fmt::Result {
            f.write_str(open)?;
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    f.write_str(" ")?;
                }
                write!(f, "{item}")?;
            }
            f.write_str(close)
        }
        match self {
            Edn::Nil => f.write_str("nil"),
            Edn::Bool(b) => write!(f, "{b}"),
            Edn::Int(i) => write!(f, "{i}"),
            Edn::Float(x) => write!(f, "{x:?}"),
            Edn::Str(s) => write!(f, "{s:?}"),
            Edn::Char(c) => write!(f, "\\{c}"),
            Edn::Keyword(k) => write!(f, ":{k}"),
            Edn::Symbol(s) => f.write_str(s),
            Edn::List(items) => seq(f, "(", items, ")"),
            Edn::Vector(items) => seq(f, "[", items, "]"),
            Edn::Set(items) => seq(f, "#{", items, "}"),
            Edn::Map(entries) => {
                f.write_str("{")?;
                for (i, (k, v)) in entries.iter().enumerate() {
                    if i > 0 {
                        f.write_str(", ")?;
                    }
                    write!(f, "{k} {v}")?;
                }
                f.write_str("}")
            }
            Edn::Tagged(tag, v) => write!(f, "#{tag} {v}"),
        }
    }
}

/// A syntax error: the 1-based line, what was found and what was expected.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("line {line}: {found}; expected {expected}")]
pub struct EdnError {
    /// 1-based line of the problem.
    pub line: u32,
    /// What the reader found.
    pub found: String,
    /// What it expected instead.
    pub expected: String,
}

/// A reader over EDN text that yields top-level forms with their starting lines.
pub struct Reader<'a> {
    text: &'a [u8],
    pos: usize,
    line: u32,
}

fn is_delimiter(b: u8) -> bool {
    b.is_ascii_whitespace()
        || matches!(
            b,
            b',' | b'(' | b')' | b'[' | b']' | b'{' | b'}' | b'"' | b';'
        )
}

impl<'a> Reader<'a> {
    /// A reader at the start of `text`.
    pub fn new(text: &'a str) -> Self {
        Reader {
            text: text.as_bytes(),
            pos: 0,
            line: 1,
        }
    }

    /// The current 1-based line.
    pub fn line(&self) -> u32 {
        self.line
    }

    fn error<T>(
        &self,
        found: impl Into<String>,
        expected: impl Into<String>,
    ) -> Result<T, EdnError> {
        Err(EdnError {
            line: self.line,
            found: found.into(),
            expected: expected.into(),
        })
    }

    fn peek(&self) -> Option<u8> {
        self.text.get(self.pos).copied()
    }

    fn bump(&mut self) -> Option<u8> {
        let b = self.peek()?;
        self.pos += 1;
        if b == b'\n' {
            self.line += 1;
        }
        Some(b)
    }

    /// Skips whitespace, commas and comments.
    pub fn skip_space(&mut self) {
        while let Some(b) = self.peek() {
            if b.is_ascii_whitespace() || b == b',' {
                self.bump();
            } else if b == b';' {
                while let Some(c) = self.peek() {
                    if c == b'\n' {
                        break;
                    }
                    self.pos += 1;
                }
            } else {
                break;
            }
        }
    }

    /// True if only whitespace and comments remain.
    pub fn at_end(&mut self) -> bool {
        self.skip_space();
        self.pos >= self.text.len()
    }

    /// If the next form opens a vector or list, consumes the opening bracket and returns the
    /// matching closing byte.
    pub fn open_sequence(&mut self) -> Option<u8> {
        self.skip_space();
        match self.peek() {
            Some(b'[') => {
                self.bump();
                Some(b']')
            }
            Some(b'(') => {
                self.bump();
                Some(b')')
            }
            _ => None,
        }
    }

    /// Consumes `close` if it is the next significant byte.
    pub fn close_sequence(&mut self, close: u8) -> bool {
        self.skip_space();
        if self.peek() == Some(close) {
            self.bump();
            true
        } else {
            false
        }
    }

    /// Reads the next form and the line it starts on; `Ok(None)` at the end of the text.
    pub fn next_form(&mut self) -> Result<Option<(u32, Edn)>, EdnError> {
        self.skip_space();
        if self.pos >= self.text.len() {
            return Ok(None);
        }
        let line = self.line;
        let form = self.form(0)?;
        Ok(Some((line, form)))
    }

    fn form(&mut self, depth: usize) -> Result<Edn, EdnError> {
        if depth > MAX_DEPTH {
            return self.error(
                format!("collections nested more than {MAX_DEPTH} deep"),
                "a shallower history",
            );
        }
        loop {
            self.skip_space();
            let Some(b) = self.peek() else {
                return self.error("the end of the input", "a value");
            };
            return match b {
                b'(' => {
                    self.bump();
                    Ok(Edn::List(self.items(b')', depth)?))
                }
                b'[' => {
                    self.bump();
                    Ok(Edn::Vector(self.items(b']', depth)?))
                }
                b'{' => {
                    self.bump();
                    let start = self.line;
                    let items = self.items(b'}', depth)?;
                    if items.len() % 2 != 0 {
                        return Err(EdnError {
                            line: start,
                            found: "a map with an odd number of forms".into(),
                            expected: "key-value pairs".into(),
                        });
                    }
                    let mut entries = Vec::with_capacity(items.len() / 2);
                    let mut it = items.into_iter();
                    while let (Some(k), Some(v)) = (it.next(), it.next()) {
                        entries.push((k, v));
                    }
                    Ok(Edn::Map(entries))
                }
                b')' | b']' | b'}' => {
                    self.error(format!("an unmatched `{}`", b as char), "a value")
                }
                b'"' => {
                    self.bump();
                    self.string().map(Edn::Str)
                }
                b'\\' => {
                    self.bump();
                    self.character()
                }
                b'#' => {
                    self.bump();
                    match self.peek() {
                        Some(b'{') => {
                            self.bump();
                            Ok(Edn::Set(self.items(b'}', depth)?))
                        }
                        Some(b'_') => {
                            self.bump();
                            self.form(depth + 1)?;
                            continue;
                        }
                        _ => {
                            let tag = self.token();
                            if tag.is_empty() {
                                return self.error("`#` without a tag", "`#{`, `#_` or `#tag`");
                            }
                            let value = self.form(depth + 1)?;
                            Ok(Edn::Tagged(tag, Box::new(value)))
                        }
                    }
                }
                _ => self.atom(),
            };
        }
    }

    fn items(&mut self, close: u8, depth: usize) -> Result<Vec<Edn>, EdnError> {
        let mut items = Vec::new();
        loop {
            self.skip_space();
            match self.peek() {
                None => {
                    return self.error(
                        "the end of the input",
                        format!("`{}` to close the collection", close as char),
                    );
                }
                Some(b) if b == close => {
                    self.bump();
                    return Ok(items);
                }
                Some(_) => items.push(self.form(depth + 1)?),
            }
        }
    }

    fn token(&mut self) -> String {
        let start = self.pos;
        while let Some(b) = self.peek() {
            if is_delimiter(b) {
                break;
            }
            self.pos += 1;
        }
        String::from_utf8_lossy(&self.text[start..self.pos]).into_owned()
    }

    fn string(&mut self) -> Result<String, EdnError> {
        let mut bytes = Vec::new();
        loop {
            let Some(b) = self.bump() else {
                return self.error("the end of the input inside a string", "a closing `\"`");
            };
            match b {
                b'"' => break,
                b'\\' => {
                    let Some(e) = self.bump() else {
                        return self.error("the end of the input inside a string", "an escape");
                    };
                    match e {
                        b'n' => bytes.push(b'\n'),
                        b't' => bytes.push(b'\t'),
                        b'r' => bytes.push(b'\r'),
                        b'"' => bytes.push(b'"'),
                        b'\\' => bytes.push(b'\\'),
                        b'u' => {
                            let mut code = 0u32;
                            for _ in 0..4 {
                                let digit = self.bump().and_then(|d| (d as char).to_digit(16));
                                let Some(d) = digit else {
                                    return self.error("a bad `\\u` escape", "four hex digits");
                                };
                                code = code * 16 + d;
                            }
                            let c = char::from_u32(code).unwrap_or('\u{fffd}');
                            let mut buf = [0u8; 4];
                            bytes.extend_from_slice(c.encode_utf8(&mut buf).as_bytes());
                        }
                        other => {
                            return self.error(
                                format!("the escape `\\{}`", other as char),
                                "one of \\n \\t \\r \\\" \\\\ \\uXXXX",
                            );
                        }
                    }
                }
                _ => bytes.push(b),
            }
        }
        Ok(String::from_utf8_lossy(&bytes).into_owned())
    }

    fn character(&mut self) -> Result<Edn, EdnError> {
        // The first character is taken even if it is a delimiter (`\(`, `\ `).
        let start = self.pos;
        let Some(first) = self.bump() else {
            return self.error("the end of the input after `\\`", "a character");
        };
        if first < 0x80 {
            let rest = self.token();
            let name = format!("{}{rest}", first as char);
            let c = match name.as_str() {
                "newline" => '\n',
                "space" => ' ',
                "tab" => '\t',
                "return" => '\r',
                _ if name.len() == 1 => first as char,
                _ => return self.error(format!("the character `\\{name}`"), "a character"),
            };
            Ok(Edn::Char(c))
        } else {
            self.pos = start;
            let tok = self.token();
            let mut chars = tok.chars();
            match (chars.next(), chars.next()) {
                (Some(c), None) => Ok(Edn::Char(c)),
                _ => self.error(format!("the character `\\{tok}`"), "a character"),
            }
        }
    }

    fn atom(&mut self) -> Result<Edn, EdnError> {
        let tok = self.token();
        if tok.is_empty() {
            // A byte that is a delimiter but not handled above cannot occur; keep going safely.
            let b = self.bump().unwrap_or(b'?');
            return self.error(format!("the byte {b:#04x}"), "a value");
        }
        let first = tok.as_bytes()[0];
        if first == b':' {
            if tok.len() == 1 {
                return self.error("a lone `:`", "a keyword such as `:read`");
            }
            return Ok(Edn::Keyword(tok[1..].to_string()));
        }
        let numeric = first.is_ascii_digit()
            || ((first == b'-' || first == b'+')
                && tok.len() > 1
                && tok.as_bytes()[1].is_ascii_digit());
        if numeric {
            let body = tok.strip_suffix('N').unwrap_or(&tok);
            if let Ok(i) = body.parse::<i64>() {
                return Ok(Edn::Int(i));
            }
            let body = tok.strip_suffix('M').unwrap_or(&tok);
            if body.contains(['.', 'e', 'E'])
                && let Ok(x) = body.parse::<f64>()
            {
                return Ok(Edn::Float(x));
            }
            return self.error(
                format!("the number `{tok}`"),
                "an integer that fits in 64 bits or a float",
            );
        }
        Ok(match tok.as_str() {
            "nil" => Edn::Nil,
            "true" => Edn::Bool(true),
            "false" => Edn::Bool(false),
            _ => Edn::Symbol(tok),
        })
    }
}

/// Parses every top-level form of `text` with its starting line.
pub fn parse_all(text: &str) -> Result<Vec<(u32, Edn)>, EdnError> {
    let mut reader = Reader::new(text);
    let mut forms = Vec::new();
    while let Some(form) = reader.next_form()? {
        forms.push(form);
    }
    Ok(forms)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn one(text: &str) -> Edn {
        let forms = parse_all(text).unwrap();
        assert_eq!(forms.len(), 1, "{text}");
        forms.into_iter().next().unwrap().1
    }

    #[test]
    fn reads_the_values_histories_use() {
        assert_eq!(one("nil"), Edn::Nil);
        assert_eq!(one("-12"), Edn::Int(-12));
        assert_eq!(one("12N"), Edn::Int(12));
        assert_eq!(one("1.5"), Edn::Float(1.5));
        assert_eq!(one(":timed-out"), Edn::Keyword("timed-out".into()));
        assert_eq!(one(r#""a\"b\n""#), Edn::Str("a\"b\n".into()));
        assert_eq!(one(r#""\u00e9""#), Edn::Str("é".into()));
        assert_eq!(one("\\a"), Edn::Char('a'));
        assert_eq!(one("\\newline"), Edn::Char('\n'));
        assert_eq!(one("[3 0]"), Edn::Vector(vec![Edn::Int(3), Edn::Int(0)]));
        assert_eq!(one("#{1}"), Edn::Set(vec![Edn::Int(1)]));
        assert_eq!(
            one("#inst \"2020\""),
            Edn::Tagged("inst".into(), Box::new(Edn::Str("2020".into())))
        );
        assert_eq!(
            one("[1 #_ 2 3]"),
            Edn::Vector(vec![Edn::Int(1), Edn::Int(3)])
        );
        let m = one("{:process 1, :type :invoke, :f :read, :value nil}");
        assert_eq!(m.get("process"), Some(&Edn::Int(1)));
        assert_eq!(m.get("type"), Some(&Edn::Keyword("invoke".into())));
        assert_eq!(m.get("value"), Some(&Edn::Nil));
        assert_eq!(m.get("missing"), None);
    }

    #[test]
    fn reports_lines_of_forms_and_errors() {
        let forms = parse_all("; comment\n{:a 1}\n\n{:b\n 2}\n").unwrap();
        assert_eq!(forms.iter().map(|f| f.0).collect::<Vec<_>>(), vec![2, 4]);
        let err = parse_all("{:a 1}\n{:b 2\n").unwrap_err();
        assert_eq!(err.line, 3);
        assert!(err.expected.contains('}'), "{err}");
        let err = parse_all("[1 2}").unwrap_err();
        assert_eq!(err.found, "an unmatched `}`");
        let err = parse_all("{:a}").unwrap_err();
        assert!(err.found.contains("odd"), "{err}");
        let err = parse_all("99999999999999999999999").unwrap_err();
        assert!(err.expected.contains("64 bits"), "{err}");
    }

    #[test]
    fn refuses_deep_nesting_instead_of_overflowing_the_stack() {
        let text = "[".repeat(100_000);
        let err = parse_all(&text).unwrap_err();
        assert!(err.found.contains("nested"), "{err}");
    }

    #[test]
    fn displays_back_as_edn() {
        let v = one(r#"[:not-found "x" nil 3 {:a #{1}}]"#);
        assert_eq!(v.to_string(), r#"[:not-found "x" nil 3 {:a #{1}}]"#);
    }

    proptest::proptest! {
        #[test]
        fn never_panics_on_arbitrary_text(text in ".{0,200}") {
            let _ = parse_all(&text);
        }

        #[test]
        fn never_panics_on_edn_like_text(text in "[\\[\\]{}()#_:\"\\\\ a-z0-9.,;\n-]{0,200}") {
            let _ = parse_all(&text);
        }
    }
}
