//! Batch input (stdin not a terminal): lines grouped into entries the way
//! the prompt would group them, so an unfinished Rhai block goes on with the
//! following lines, each entry remembering the number of its first line.

use super::continuation;
use std::io::{self, BufRead};

/// One command form or piece of Rhai code from batch input.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    /// 1-based number of the entry's first line.
    pub line: usize,
    /// The entry's lines, joined with LF.
    pub text: String,
    /// The input ended before the code was finished.
    pub unfinished: bool,
}

/// Reads `input` to the end, grouping lines into entries. Blank lines are
/// skipped; a trailing CR is dropped.
pub fn entries(input: impl BufRead) -> Entries<impl BufRead> {
    Entries {
        lines: input,
        number: 0,
    }
}

/// Iterator over the entries of batch input.
pub struct Entries<R> {
    lines: R,
    number: usize,
}

impl<R: BufRead> Entries<R> {
    /// The number of the last line read (the one an error is about).
    pub fn line(&self) -> usize {
        self.number
    }

    /// The next line without its line ending, `None` at the end; a line
    /// that is not UTF-8 text is an error naming its number.
    fn next_line(&mut self) -> io::Result<Option<String>> {
        let mut bytes = Vec::new();
        if self.lines.read_until(b'\n', &mut bytes)? == 0 {
            return Ok(None);
        }
        self.number += 1;
        let mut line = String::from_utf8(bytes).map_err(|_| {
            io::Error::new(
                io::ErrorKind::InvalidData,
                format!("line {} is not UTF-8 text", self.number),
            )
        })?;
        let trimmed = line.trim_end_matches(['\n', '\r']).len();
        line.truncate(trimmed);
        Ok(Some(line))
    }
}

impl<R: BufRead> Iterator for Entries<R> {
    type Item = io::Result<Entry>;

    fn next(&mut self) -> Option<io::Result<Entry>> {
        let first = loop {
            match self.next_line() {
                Ok(Some(line)) if line.trim().is_empty() => continue,
                Ok(Some(line)) => break line,
                Ok(None) => return None,
                Err(e) => return Some(Err(e)),
            }
        };
        let mut entry = Entry {
            line: self.number,
            text: first,
            unfinished: false,
        };
        while continuation::needs_more(&entry.text) {
            match self.next_line() {
                Ok(Some(line)) => {
                    entry.text.push('\n');
                    entry.text.push_str(&line);
                }
                Ok(None) => {
                    entry.unfinished = true;
                    break;
                }
                Err(e) => return Some(Err(e)),
            }
        }
        Some(Ok(entry))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn all(input: &str) -> Vec<(usize, String, bool)> {
        entries(input.as_bytes())
            .map(|e| {
                let e = e.unwrap();
                (e.line, e.text, e.unfinished)
            })
            .collect()
    }

    #[test]
    fn lines_become_entries_with_their_numbers() {
        assert_eq!(
            all("CONNECT,localhost,7070\r\n\nLIST\n  \nlet x = 1;"),
            vec![
                (1, "CONNECT,localhost,7070".into(), false),
                (3, "LIST".into(), false),
                (5, "let x = 1;".into(), false),
            ]
        );
    }

    #[test]
    fn unfinished_blocks_take_the_following_lines() {
        assert_eq!(
            all("fn f(x) {\n\n  x * 2\n}\nf(2)\n"),
            vec![
                (1, "fn f(x) {\n\n  x * 2\n}".into(), false),
                (5, "f(2)".into(), false),
            ]
        );
    }

    #[test]
    fn input_ending_inside_a_block_is_marked() {
        assert_eq!(
            all("LIST\nfor f in list() {\n  print(f)\n"),
            vec![
                (1, "LIST".into(), false),
                (2, "for f in list() {\n  print(f)".into(), true),
            ]
        );
    }
}
