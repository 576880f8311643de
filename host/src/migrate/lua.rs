//! The subset of Lua that Prosody's `util.serialization` writes into its data files: `return
//! {...};` (key-value stores) and `item({...});` calls (archive stores), with tables, strings,
//! numbers, booleans and `nil`. It parses the text and never runs it.
//!
//! Hand-written rather than a dependency: the subset is a few dozen lines, while a full Lua
//! parser (`full_moon`) brings a syntax tree far larger than these files need, and errors here
//! must name the line of the file.

/// A Lua value. Strings are bytes: Lua strings are, and `\ddd` escapes may split UTF-8.
#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    Nil,
    Bool(bool),
    Number(f64),
    String(Vec<u8>),
    Table(Table),
}

/// A table: the array part (keyless elements, in order) and the keyed entries, in file order.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Table {
    pub array: Vec<Value>,
    pub entries: Vec<(Value, Value)>,
}

impl Table {
    /// The value of the string key `key`.
    pub fn get(&self, key: &str) -> Option<&Value> {
        self.entries
            .iter()
            .find(|(candidate, _)| matches!(candidate, Value::String(bytes) if bytes == key.as_bytes()))
            .map(|(_, value)| value)
    }
}

impl Value {
    pub fn as_str(&self) -> Option<&str> {
        match self {
            Value::String(bytes) => std::str::from_utf8(bytes).ok(),
            _ => None,
        }
    }

    pub fn as_table(&self) -> Option<&Table> {
        match self {
            Value::Table(table) => Some(table),
            _ => None,
        }
    }
}

/// A syntax error, with the 1-based line where it was found.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("Lua syntax error at line {line}: {what}")]
pub struct SyntaxError {
    pub line: usize,
    pub what: String,
}

/// A `.dat` file: `return <value>;`.
pub fn parse_return(text: &[u8]) -> Result<Value, SyntaxError> {
    let mut parser = Parser { text, at: 0 };
    parser.keyword("return")?;
    let value = parser.value()?;
    parser.skip_space();
    parser.eat(b';');
    parser.end()?;
    Ok(value)
}

/// A `.list` file: `item(<value>);` repeated.
pub fn parse_items(text: &[u8]) -> Result<Vec<Value>, SyntaxError> {
    let mut parser = Parser { text, at: 0 };
    let mut items = Vec::new();
    loop {
        parser.skip_space();
        if parser.at == text.len() {
            return Ok(items);
        }
        parser.keyword("item")?;
        parser.expect(b'(')?;
        items.push(parser.value()?);
        parser.expect(b')')?;
        parser.skip_space();
        parser.eat(b';');
    }
}

struct Parser<'a> {
    text: &'a [u8],
    at: usize,
}

impl Parser<'_> {
    fn error(&self, what: impl Into<String>) -> SyntaxError {
        let end = self.at.min(self.text.len());
        let line = self.text[..end].iter().filter(|&&byte| byte == b'\n').count() + 1;
        SyntaxError { line, what: what.into() }
    }

    fn peek(&self) -> Option<u8> {
        self.text.get(self.at).copied()
    }

    /// Skips white space and `--` comments.
    fn skip_space(&mut self) {
        loop {
            match self.peek() {
                Some(byte) if byte.is_ascii_whitespace() => self.at += 1,
                Some(b'-') if self.text.get(self.at + 1) == Some(&b'-') => {
                    while self.peek().is_some_and(|byte| byte != b'\n') {
                        self.at += 1;
                    }
                }
                _ => return,
            }
        }
    }

    fn eat(&mut self, byte: u8) -> bool {
        self.skip_space();
        let found = self.peek() == Some(byte);
        if found {
            self.at += 1;
        }
        found
    }

    fn expect(&mut self, byte: u8) -> Result<(), SyntaxError> {
        if self.eat(byte) { Ok(()) } else { Err(self.error(format!("expected '{}'", byte as char))) }
    }

    fn end(&mut self) -> Result<(), SyntaxError> {
        self.skip_space();
        if self.at == self.text.len() { Ok(()) } else { Err(self.error("unexpected text after the value")) }
    }

    fn name(&mut self) -> &[u8] {
        self.skip_space();
        let start = self.at;
        while self.peek().is_some_and(|byte| byte.is_ascii_alphanumeric() || byte == b'_') {
            self.at += 1;
        }
        &self.text[start..self.at]
    }

    fn keyword(&mut self, keyword: &str) -> Result<(), SyntaxError> {
        let start = self.at;
        if self.name() == keyword.as_bytes() {
            Ok(())
        } else {
            self.at = start;
            self.skip_space();
            Err(self.error(format!("expected `{keyword}`")))
        }
    }

    fn value(&mut self) -> Result<Value, SyntaxError> {
        self.skip_space();
        match self.peek() {
            Some(b'{') => self.table().map(Value::Table),
            Some(quote @ (b'"' | b'\'')) => self.string(quote).map(Value::String),
            Some(byte) if byte == b'-' || byte == b'.' || byte.is_ascii_digit() => self.number(),
            Some(byte) if byte.is_ascii_alphabetic() => {
                let start = self.at;
                match self.name() {
                    b"true" => Ok(Value::Bool(true)),
                    b"false" => Ok(Value::Bool(false)),
                    b"nil" => Ok(Value::Nil),
                    _ => {
                        self.at = start;
                        Err(self.error("expected a value"))
                    }
                }
            }
            Some(_) => Err(self.error("expected a value")),
            None => Err(self.error("unexpected end of file")),
        }
    }

    fn table(&mut self) -> Result<Table, SyntaxError> {
        self.expect(b'{')?;
        let mut table = Table::default();
        loop {
            if self.eat(b'}') {
                return Ok(table);
            }
            if self.eat(b'[') {
                let key = self.value()?;
                self.expect(b']')?;
                self.expect(b'=')?;
                table.entries.push((key, self.value()?));
            } else if self.peek().is_some_and(|byte| byte.is_ascii_alphabetic() || byte == b'_')
                && !self.starts_literal()
            {
                let key = self.name().to_vec();
                self.expect(b'=')?;
                table.entries.push((Value::String(key), self.value()?));
            } else {
                table.array.push(self.value()?);
            }
            if !self.eat(b';') && !self.eat(b',') {
                self.expect(b'}')?;
                return Ok(table);
            }
        }
    }

    /// Whether a bare word at the cursor is a literal (`true`, `false`, `nil`) rather than a key.
    fn starts_literal(&mut self) -> bool {
        let start = self.at;
        let word = self.name().to_vec();
        let is_key = self.eat(b'=');
        self.at = start;
        !is_key && matches!(word.as_slice(), b"true" | b"false" | b"nil")
    }

    fn number(&mut self) -> Result<Value, SyntaxError> {
        let start = self.at;
        while self
            .peek()
            .is_some_and(|byte| byte.is_ascii_alphanumeric() || matches!(byte, b'-' | b'+' | b'.'))
        {
            self.at += 1;
        }
        let text = std::str::from_utf8(&self.text[start..self.at]).unwrap_or_default();
        text.parse::<f64>().map(Value::Number).map_err(|_| {
            self.at = start;
            self.error(format!("bad number `{text}`"))
        })
    }

    /// A quoted string with Lua's escapes: `\n`-style letters, `\ddd` (decimal byte), `\xXX`,
    /// and an escaped line break.
    fn string(&mut self, quote: u8) -> Result<Vec<u8>, SyntaxError> {
        self.at += 1;
        let mut out = Vec::new();
        loop {
            let Some(byte) = self.peek() else { return Err(self.error("unterminated string")) };
            self.at += 1;
            match byte {
                _ if byte == quote => return Ok(out),
                b'\n' => return Err(self.error("line break in a string")),
                b'\\' => {
                    let Some(escape) = self.peek() else { return Err(self.error("unterminated string")) };
                    self.at += 1;
                    match escape {
                        b'n' | b'\n' => out.push(b'\n'),
                        b'r' => out.push(b'\r'),
                        b't' => out.push(b'\t'),
                        b'a' => out.push(0x07),
                        b'b' => out.push(0x08),
                        b'f' => out.push(0x0c),
                        b'v' => out.push(0x0b),
                        b'\\' | b'"' | b'\'' => out.push(escape),
                        b'x' => {
                            let hex = self.text.get(self.at..self.at + 2).unwrap_or_default();
                            let value = std::str::from_utf8(hex)
                                .ok()
                                .and_then(|hex| u8::from_str_radix(hex, 16).ok())
                                .ok_or_else(|| self.error("bad \\x escape"))?;
                            self.at += 2;
                            out.push(value);
                        }
                        b'0'..=b'9' => {
                            let mut value = u32::from(escape - b'0');
                            for _ in 0..2 {
                                match self.peek() {
                                    Some(digit @ b'0'..=b'9') => {
                                        value = value * 10 + u32::from(digit - b'0');
                                        self.at += 1;
                                    }
                                    _ => break,
                                }
                            }
                            out.push(u8::try_from(value).map_err(|_| self.error("decimal escape over 255"))?);
                        }
                        other => return Err(self.error(format!("unknown escape \\{}", other as char))),
                    }
                }
                _ => out.push(byte),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prosody_roster_file() {
        let text = b"return {\n\t[false] = {\n\t\t[\"pending\"] = {};\n\t\t[\"version\"] = 10;\n\t};\n\
            \t[\"zo\\195\\171@localhost\"] = {\n\t\t[\"groups\"] = { [\"W\"] = true; };\n\t\tname = 'a\\\"b\\n';\n\t};\n};\n";
        let Value::Table(root) = parse_return(text).unwrap() else { panic!("not a table") };
        assert_eq!(root.entries[0].0, Value::Bool(false));
        let item = root.get("zoë@localhost").unwrap().as_table().unwrap();
        assert_eq!(item.get("name").unwrap().as_str(), Some("a\"b\n"));
        assert_eq!(item.get("groups").unwrap().as_table().unwrap().get("W"), Some(&Value::Bool(true)));
    }

    #[test]
    fn item_calls_and_array_parts() {
        let items = parse_items(b"item({ { \"hi\"; name = \"body\"; }; when = 17; });\nitem({});").unwrap();
        assert_eq!(items.len(), 2);
        let first = items[0].as_table().unwrap();
        assert_eq!(first.get("when"), Some(&Value::Number(17.0)));
        assert_eq!(first.array[0].as_table().unwrap().array[0].as_str(), Some("hi"));
    }

    #[test]
    fn errors_name_the_line() {
        let error = parse_return(b"return {\n  [\"a\"] = 1;\n  [\"b\"] = ;\n};").unwrap_err();
        assert_eq!(error.line, 3);
        assert_eq!(parse_return(b"return { \"unterminated }").unwrap_err().line, 1);
        assert!(parse_return(b"os.exit()").is_err());
    }
}
