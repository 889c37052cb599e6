//! Whether typed Rhai code is finished: a light scanner that knows Rhai's
//! brackets, strings (`"…"` with `\` line continuation, `` `…` `` spanning
//! lines with `${…}` inside) and comments. An open bracket, an open
//! backtick string, an open block comment or a `"` string whose line ends in
//! `\` means the entry goes on with the next line. Anything the scanner
//! cannot make sense of (a stray closing bracket, a `"` string left open
//! without `\`) counts as finished, so Rhai reports the mistake instead of
//! the prompt waiting for more.

/// What opened a still-open construct.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Open {
    /// `(`.
    Paren,
    /// `[`.
    Bracket,
    /// `{`.
    Brace,
    /// A backtick string.
    Backtick,
    /// `${` inside a backtick string.
    Interpolation,
}

/// One still-open construct.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Frame {
    /// What opened it.
    pub open: Open,
    /// Byte offset of the opening character.
    pub at: usize,
    /// Commas seen directly inside it so far (the argument index in a call).
    pub commas: usize,
}

/// The state at the end of the scanned text.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Scan {
    /// Open constructs, innermost last.
    pub stack: Vec<Frame>,
    /// Byte offset of the `"` of a string still open at the end.
    pub open_string: Option<usize>,
    /// The open string's last character is a `\` line continuation.
    pub string_continues: bool,
    /// A block comment is still open.
    pub in_comment: bool,
    /// A closing bracket matched nothing; scanning stopped there.
    pub stray_close: bool,
}

impl Scan {
    /// Whether the code goes on with the next line.
    pub fn needs_more(&self) -> bool {
        if self.stray_close {
            return false;
        }
        if self.open_string.is_some() {
            return self.string_continues;
        }
        self.in_comment || !self.stack.is_empty()
    }
}

/// Whether the Rhai code `text` is unfinished and the next line belongs to
/// it. Command forms (`READ,x{`) are always finished.
pub fn needs_more(text: &str) -> bool {
    super::forms::parse(text).is_none() && scan(text).needs_more()
}

/// Scans `text` as Rhai code.
pub fn scan(text: &str) -> Scan {
    let bytes = text.as_bytes();
    let mut scan = Scan::default();
    let mut i = 0;
    while i < bytes.len() {
        let c = bytes[i];
        let in_backtick = matches!(scan.stack.last(), Some(f) if f.open == Open::Backtick);
        if in_backtick {
            match c {
                b'`' => {
                    scan.stack.pop();
                }
                b'$' if bytes.get(i + 1) == Some(&b'{') => {
                    push(&mut scan, Open::Interpolation, i);
                    i += 1;
                }
                _ => {}
            }
            i += 1;
            continue;
        }
        match c {
            b'"' => match string_end(bytes, i + 1, b'"') {
                Ok(end) => i = end,
                Err(OpenString { continues }) => {
                    scan.open_string = Some(i);
                    scan.string_continues = continues;
                    return scan;
                }
            },
            b'\'' => i = string_end(bytes, i + 1, b'\'').unwrap_or(bytes.len()),
            b'`' => push(&mut scan, Open::Backtick, i),
            b'/' if bytes.get(i + 1) == Some(&b'/') => {
                i = text[i..].find('\n').map_or(bytes.len(), |n| i + n);
            }
            b'/' if bytes.get(i + 1) == Some(&b'*') => match block_comment_end(bytes, i + 2) {
                Some(end) => i = end,
                None => {
                    scan.in_comment = true;
                    return scan;
                }
            },
            b'(' => push(&mut scan, Open::Paren, i),
            b'[' => push(&mut scan, Open::Bracket, i),
            b'{' => push(&mut scan, Open::Brace, i),
            b')' | b']' | b'}' => {
                let closes_top = matches!(
                    (c, scan.stack.last().map(|f| f.open)),
                    (b')', Some(Open::Paren))
                        | (b']', Some(Open::Bracket))
                        | (b'}', Some(Open::Brace | Open::Interpolation))
                );
                if !closes_top {
                    scan.stray_close = true;
                    return scan;
                }
                scan.stack.pop();
            }
            b',' => {
                if let Some(frame) = scan.stack.last_mut() {
                    frame.commas += 1;
                }
            }
            _ => {}
        }
        i += 1;
    }
    scan
}

fn push(scan: &mut Scan, open: Open, at: usize) {
    scan.stack.push(Frame {
        open,
        at,
        commas: 0,
    });
}

/// A string still open at the end of the text.
struct OpenString {
    /// The text ends in the `\` of a line continuation.
    continues: bool,
}

/// The offset of the closing `quote` of a string whose body starts at
/// `from`, skipping `\` escapes (including an escaped line break).
fn string_end(bytes: &[u8], from: usize, quote: u8) -> Result<usize, OpenString> {
    let mut i = from;
    while i < bytes.len() {
        match bytes[i] {
            b'\\' if i + 1 == bytes.len() => return Err(OpenString { continues: true }),
            b'\\' => i += 2,
            b if b == quote => return Ok(i),
            _ => i += 1,
        }
    }
    Err(OpenString { continues: false })
}

/// The offset of the `/` closing a block comment whose body starts at
/// `from`; Rhai's block comments nest.
fn block_comment_end(bytes: &[u8], from: usize) -> Option<usize> {
    let mut depth = 1;
    let mut i = from;
    while i + 1 < bytes.len() {
        match (bytes[i], bytes[i + 1]) {
            (b'/', b'*') => {
                depth += 1;
                i += 2;
            }
            (b'*', b'/') => {
                depth -= 1;
                if depth == 0 {
                    return Some(i + 1);
                }
                i += 2;
            }
            _ => i += 1,
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finished_code_needs_nothing_more() {
        for code in [
            "",
            "1 + 2",
            "let x = #{a: [1, 2], b: (3)};",
            "fn f(a) { a * 2 }",
            "print(\"{ not a block\")",
            "print('{')",
            "let s = `a ${ 1 + 2 } b`;",
            "x // trailing { comment",
            "/* a { */ 1",
            "/* nested /* { */ */ 2",
            "print(\"a \\\" still { a string\")",
        ] {
            assert!(!needs_more(code), "`{code}` should be finished");
        }
    }

    #[test]
    fn open_blocks_strings_and_comments_need_more() {
        for code in [
            "fn f(a) {",
            "for f in list() {\n  print(f.name);",
            "let a = [1,\n2,",
            "print(",
            "let s = `first line",
            "let s = `a ${ f(",
            "let s = \"abc\\",
            "let s = \"a\\\\\\",
            "/* comment",
            "/* outer /* inner */ still outer",
            "if x {\n  if y {\n  }",
        ] {
            assert!(needs_more(code), "`{code}` should need more");
        }
    }

    #[test]
    fn mistakes_are_left_for_rhai_to_report() {
        // a stray closer or a plain string left open would otherwise trap the
        // user in continuation lines
        for code in [
            "}",
            "fn f() { ) }",
            "let s = \"abc",
            "let s = \"a\\\\",
            "[1, 2)",
        ] {
            assert!(!needs_more(code), "`{code}` should be handed to Rhai");
        }
    }

    #[test]
    fn command_forms_are_always_finished() {
        assert!(!needs_more("READ,odd{name"));
        assert!(!needs_more("WRITE,a(b"));
    }

    #[test]
    fn scan_reports_the_open_string_and_argument_index() {
        let head = "s.read(\"docs/a.txt\", \"lo";
        let scan = scan(head);
        assert_eq!(scan.open_string, Some(21));
        let call = scan.stack.last().expect("inside a call");
        assert_eq!(call.open, Open::Paren);
        assert_eq!(call.at, 6);
        assert_eq!(call.commas, 1);
    }
}
