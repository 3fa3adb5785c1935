//! Where fields are written in RON text, for error messages: ron reports only a line and
//! column, so a light scan of the text (brackets, strings, comments, `name:` keys) tells which
//! `section.field` an error position lies in, and where a field's value was written.

/// A 1-based line and column, columns counted in characters as ron counts them.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct TextPosition {
    pub line: usize,
    pub column: usize,
}

impl std::fmt::Display for TextPosition {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}:{}", self.line, self.column)
    }
}

/// A `name:` key of a struct, with its dotted path and the extent of its value.
#[derive(Clone, Debug, PartialEq)]
struct KeyMention {
    path: String,
    /// Where the key's name starts.
    start: TextPosition,
    /// Just after the colon, and its index in the text's characters.
    value_start: (TextPosition, usize),
    /// The comma or closing bracket after the value, the next key if a comma is missing, or
    /// the end of the text; and its index.
    value_end: (TextPosition, usize),
}

impl KeyMention {
    fn value_contains(&self, position: TextPosition) -> bool {
        self.value_start.0 <= position && position <= self.value_end.0
    }
}

/// A field located in the text: its dotted path (`"optimization.lambda_dssim"`) and its value
/// as written (trimmed).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FieldAt {
    pub path: String,
    pub value_text: String,
}

/// The innermost field whose value contains `position`: a section (`"optimization"`) or a
/// field (`"optimization.lambda_dssim"`). `None` at top level.
pub fn field_at(text: &str, position: TextPosition) -> Option<FieldAt> {
    let chars: Vec<char> = text.chars().collect();
    scan_keys(&chars)
        .into_iter()
        .filter(|key| key.value_contains(position))
        .max_by_key(|key| key.path.matches('.').count())
        .map(|key| FieldAt {
            value_text: chars[key.value_start.1..key.value_end.1]
                .iter()
                .collect::<String>()
                .trim()
                .to_string(),
            path: key.path,
        })
}

/// Where the field `path` (`"section.field"`) is written in `text`: the start of its last key.
pub fn position_of_field(text: &str, path: &str) -> Option<TextPosition> {
    let chars: Vec<char> = text.chars().collect();
    scan_keys(&chars)
        .into_iter()
        .rev()
        .find(|key| key.path == path)
        .map(|key| key.start)
}

/// One open bracket while scanning.
struct Frame {
    /// `(`: a struct, whose `name:` entries are fields. `[` and `{` hold no fields.
    is_struct: bool,
    /// Index in the mentions of the key whose value is being read in this struct.
    current_key: Option<usize>,
}

/// Reads the text once and lists every struct key. Tolerates malformed text (it only has to be
/// right where ron parsed successfully up to the error).
fn scan_keys(chars: &[char]) -> Vec<KeyMention> {
    let mut cursor = Cursor::new(chars);
    let mut stack: Vec<Frame> = Vec::new();
    let mut keys: Vec<KeyMention> = Vec::new();

    while let Some(c) = cursor.peek(0) {
        let here = (cursor.position(), cursor.index);
        match c {
            '/' if matches!(cursor.peek(1), Some('/' | '*')) => cursor.skip_comment(),
            '"' => cursor.skip_string(),
            '\'' => cursor.skip_char_literal(),
            'r' if matches!(cursor.peek(1), Some('"' | '#')) => cursor.skip_raw_string(),
            '(' | '[' | '{' => {
                stack.push(Frame {
                    is_struct: c == '(',
                    current_key: None,
                });
                cursor.advance();
            }
            ')' | ']' | '}' => {
                if let Some(frame) = stack.pop() {
                    close_key(&mut keys, frame.current_key, here);
                }
                cursor.advance();
            }
            ',' => {
                if let Some(frame) = stack.last_mut() {
                    close_key(&mut keys, frame.current_key.take(), here);
                }
                cursor.advance();
            }
            c if c.is_alphabetic() || c == '_' => {
                let name = cursor.take_identifier();
                let in_struct = stack.last().is_some_and(|frame| frame.is_struct);
                if in_struct && cursor.next_significant() == Some(':') {
                    // The innermost enclosing struct field (its path holds its own parents).
                    let enclosing = stack[..stack.len() - 1]
                        .iter()
                        .rev()
                        .find_map(|frame| frame.current_key);
                    let path = match enclosing {
                        Some(parent) => format!("{}.{name}", keys[parent].path),
                        None => name,
                    };
                    cursor.skip_past_colon();
                    let value_start = (cursor.position(), cursor.index);
                    let end_of_text = TextPosition {
                        line: usize::MAX,
                        column: usize::MAX,
                    };
                    keys.push(KeyMention {
                        path,
                        start: here.0,
                        value_start,
                        value_end: (end_of_text, chars.len()),
                    });
                    if let Some(frame) = stack.last_mut() {
                        // A missing comma: the previous value ends where this key starts.
                        close_key(&mut keys, frame.current_key, here);
                        frame.current_key = Some(keys.len() - 1);
                    }
                }
            }
            _ => cursor.advance(),
        }
    }
    keys
}

/// Marks the value of key `index` (if any) as ending at `end`.
fn close_key(keys: &mut [KeyMention], index: Option<usize>, end: (TextPosition, usize)) {
    if let Some(i) = index {
        keys[i].value_end = end;
    }
}

/// Characters of the text with their line and column.
#[derive(Clone)]
struct Cursor<'a> {
    chars: &'a [char],
    index: usize,
    line: usize,
    column: usize,
}

impl<'a> Cursor<'a> {
    fn new(chars: &'a [char]) -> Self {
        Self {
            chars,
            index: 0,
            line: 1,
            column: 1,
        }
    }

    fn peek(&self, ahead: usize) -> Option<char> {
        self.chars.get(self.index + ahead).copied()
    }

    fn position(&self) -> TextPosition {
        TextPosition {
            line: self.line,
            column: self.column,
        }
    }

    fn advance(&mut self) {
        if let Some(c) = self.peek(0) {
            self.index += 1;
            if c == '\n' {
                self.line += 1;
                self.column = 1;
            } else {
                self.column += 1;
            }
        }
    }

    /// Skips `// ...` to the end of the line, or a (nested) `/* ... */` block.
    fn skip_comment(&mut self) {
        self.advance();
        if self.peek(0) == Some('/') {
            while self.peek(0).is_some_and(|c| c != '\n') {
                self.advance();
            }
            return;
        }
        self.advance();
        let mut depth = 1;
        while depth > 0 && self.peek(0).is_some() {
            match (self.peek(0), self.peek(1)) {
                (Some('/'), Some('*')) => {
                    depth += 1;
                    self.advance();
                }
                (Some('*'), Some('/')) => {
                    depth -= 1;
                    self.advance();
                }
                _ => {}
            }
            self.advance();
        }
    }

    /// Skips a `"..."` string with backslash escapes.
    fn skip_string(&mut self) {
        self.advance();
        while let Some(c) = self.peek(0) {
            self.advance();
            match c {
                '\\' => self.advance(),
                '"' => return,
                _ => {}
            }
        }
    }

    /// Skips a `'c'` character literal.
    fn skip_char_literal(&mut self) {
        self.advance();
        if self.peek(0) == Some('\\') {
            self.advance();
        }
        self.advance();
        if self.peek(0) == Some('\'') {
            self.advance();
        }
    }

    /// Skips a raw string `r#"..."#` (any number of `#`).
    fn skip_raw_string(&mut self) {
        self.advance();
        let mut hashes = 0;
        while self.peek(0) == Some('#') {
            hashes += 1;
            self.advance();
        }
        if self.peek(0) != Some('"') {
            return;
        }
        self.advance();
        while let Some(c) = self.peek(0) {
            self.advance();
            if c == '"' && (0..hashes).all(|i| self.peek(i) == Some('#')) {
                (0..hashes).for_each(|_| self.advance());
                return;
            }
        }
    }

    fn take_identifier(&mut self) -> String {
        let mut name = String::new();
        while let Some(c) = self.peek(0).filter(|&c| c.is_alphanumeric() || c == '_') {
            name.push(c);
            self.advance();
        }
        name
    }

    /// Skips whitespace and comments.
    fn skip_insignificant(&mut self) {
        loop {
            match self.peek(0) {
                Some(c) if c.is_whitespace() => self.advance(),
                Some('/') if matches!(self.peek(1), Some('/' | '*')) => self.skip_comment(),
                _ => return,
            }
        }
    }

    /// The next character that is not whitespace or inside a comment, without consuming it.
    fn next_significant(&self) -> Option<char> {
        let mut probe = self.clone();
        probe.skip_insignificant();
        probe.peek(0)
    }

    /// Moves just past the next `:` (only whitespace and comments before it).
    fn skip_past_colon(&mut self) {
        self.skip_insignificant();
        if self.peek(0) == Some(':') {
            self.advance();
        }
    }
}
