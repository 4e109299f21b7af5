//! Diagnostics for manifests: every problem of a revision is collected and reported as
//! `FILE:LINE:COL: message`, followed by the offending source line, so the user can fix them all at once.

use std::fmt;

/// A position in a manifest file, both 1-based as editors count.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord)]
pub struct Pos {
    pub line: u32,
    pub col: u32,
}

impl Pos {
    pub fn new(line: usize, col: usize) -> Self {
        Pos { line: line as u32, col: col as u32 }
    }

    /// The position of byte `offset` in `text`.
    pub fn from_offset(text: &str, offset: usize) -> Self {
        let mut offset = offset.min(text.len());
        while !text.is_char_boundary(offset) {
            offset -= 1;
        }
        let before = &text[..offset];
        let line = before.matches('\n').count() + 1;
        let line_start = before.rfind('\n').map(|i| i + 1).unwrap_or(0);
        let col = text[line_start..offset].chars().count() + 1;
        Pos::new(line, col)
    }
}

/// One problem in one manifest file.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Diagnostic {
    pub file: String,
    pub pos: Pos,
    pub message: String,
    /// The source line the position points into, shown under the message.
    pub source: Option<Excerpt>,
}

impl fmt::Display for Diagnostic {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let file = crate::terminal::clean_line(&self.file);
        let message = crate::terminal::clean(&self.message);
        write!(f, "{file}:{}:{}: {message}", self.pos.line, self.pos.col)?;
        if let Some(ex) = &self.source {
            let gutter = self.pos.line.to_string();
            write!(f, "\n {gutter} | {}", crate::terminal::clean_line(&ex.text))?;
            let before: String = ex.text.chars().take(ex.caret).collect();
            let pad: String =
                crate::terminal::clean_line(&before).chars().map(|c| if c == '\t' { '\t' } else { ' ' }).collect();
            write!(f, "\n {} | {pad}^", " ".repeat(gutter.len()))?;
        }
        Ok(())
    }
}

/// The source line a diagnostic points into, as shown under it: the whole line, or a window of
/// a long one around the position, so a megabyte line is neither stored nor printed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Excerpt {
    pub text: String,
    /// Characters of `text` before the caret.
    pub caret: usize,
}

/// Source lines longer than this are cut to a window around the position.
const EXCERPT_CHARS: usize = 120;

impl Excerpt {
    pub fn of_line(line: &str, col: u32) -> Excerpt {
        let col = col.saturating_sub(1) as usize;
        let line = line.trim_end();
        if line.len() <= EXCERPT_CHARS {
            return Excerpt { text: line.to_string(), caret: col };
        }
        let skip = col.saturating_sub(EXCERPT_CHARS / 2);
        let mut rest = line.chars().skip(skip);
        let window: String = rest.by_ref().take(EXCERPT_CHARS).collect();
        let tail = if rest.next().is_some() { "…" } else { "" };
        if skip == 0 {
            Excerpt { text: format!("{window}{tail}"), caret: col }
        } else {
            Excerpt { text: format!("…{window}{tail}"), caret: col - skip + 1 }
        }
    }
}

/// Line starts of a text, so that positions of many offsets cost a search each, not a scan of
/// everything before them (which made a file of a million values take minutes).
pub struct LineIndex<'t> {
    text: &'t str,
    starts: Vec<usize>,
    /// The last offset asked for and its column: offsets asked in order along one long line
    /// count only the characters between them.
    cursor: std::cell::Cell<(usize, usize)>,
}

impl<'t> LineIndex<'t> {
    pub fn new(text: &'t str) -> Self {
        let mut starts = vec![0];
        starts.extend(text.bytes().enumerate().filter(|(_, b)| *b == b'\n').map(|(i, _)| i + 1));
        LineIndex { text, starts, cursor: std::cell::Cell::new((0, 1)) }
    }

    /// The position of byte `offset`.
    pub fn pos(&self, offset: usize) -> Pos {
        let mut offset = offset.min(self.text.len());
        while !self.text.is_char_boundary(offset) {
            offset -= 1;
        }
        let line = self.starts.partition_point(|s| *s <= offset);
        let start = self.starts[line - 1];
        let (at, at_col) = self.cursor.get();
        let col = if at >= start && at <= offset {
            at_col + self.text[at..offset].chars().count()
        } else {
            self.text[start..offset].chars().count() + 1
        };
        self.cursor.set((offset, col));
        Pos::new(line, col)
    }
}

pub struct Sink<'a> {
    pub file: &'a str,
    text: &'a str,
    pub diags: &'a mut Vec<Diagnostic>,
}

/// A revision with more problems than this reports these and a note: each further one would
/// only cost time (a file of a million bad values must not take minutes to refuse).
pub const MAX_DIAGNOSTICS: usize = 200;

impl<'a> Sink<'a> {
    pub fn new(file: &'a str, text: &'a str, diags: &'a mut Vec<Diagnostic>) -> Self {
        Sink { file, text, diags }
    }

    /// A sink for the same file that collects into `diags` (warnings beside errors).
    pub fn beside<'c>(&self, diags: &'c mut Vec<Diagnostic>) -> Sink<'c>
    where
        'a: 'c,
    {
        Sink { file: self.file, text: self.text, diags }
    }

    /// Whether further errors are only counted: a caller skips the work of a message (a
    /// suggestion) that would not be shown.
    pub fn full(&self) -> bool {
        self.diags.len() >= MAX_DIAGNOSTICS
    }

    pub fn error(&mut self, pos: Pos, message: impl Into<String>) {
        if self.diags.len() > MAX_DIAGNOSTICS {
            return;
        }
        if self.diags.len() == MAX_DIAGNOSTICS {
            self.diags.push(Diagnostic {
                file: self.file.to_string(),
                pos,
                message: format!("too many problems: only the first {MAX_DIAGNOSTICS} are reported"),
                source: None,
            });
            return;
        }
        let line = self.text.split('\n').nth(pos.line.saturating_sub(1) as usize);
        let source = line.map(|l| Excerpt::of_line(l, pos.col));
        self.diags.push(Diagnostic { file: self.file.to_string(), pos, message: message.into(), source });
    }
}

/// All diagnostics of a revision, in file and position order.
#[derive(Debug, Default)]
pub struct Diagnostics(pub Vec<Diagnostic>);

impl fmt::Display for Diagnostics {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, d) in self.0.iter().enumerate() {
            if i > 0 {
                writeln!(f)?;
            }
            write!(f, "{d}")?;
        }
        Ok(())
    }
}

impl std::error::Error for Diagnostics {}

/// Suggests the known name closest to `unknown` when it is a plausible typo.
/// Case, `_` and `-` are ignored (`depends_on` means `dependsOn`), and a known name that starts
/// the unknown one counts (`environment` means `env`).
pub fn did_you_mean<'k>(unknown: &str, known: &[&'k str]) -> Option<&'k str> {
    // Names are short: a long word is no typo of one, and comparing it costs its length.
    if unknown.len() > 64 {
        return None;
    }
    let fold = |s: &str| s.chars().filter(|c| *c != '_' && *c != '-').collect::<String>().to_ascii_lowercase();
    let lower = fold(unknown);
    let close = known
        .iter()
        .map(|k| (levenshtein(&lower, &fold(k)), *k))
        .filter(|(d, k)| *d <= 2.max(k.len() / 4))
        .min_by_key(|(d, _)| *d)
        .map(|(_, k)| k);
    close.or_else(|| {
        known.iter().copied().filter(|k| k.len() >= 3 && lower.starts_with(&fold(k))).max_by_key(|k| k.len())
    })
}

/// Edits (insert, delete, replace a character) between two names, ignoring case.
pub fn edit_distance(a: &str, b: &str) -> usize {
    levenshtein(&a.to_ascii_lowercase(), &b.to_ascii_lowercase())
}

fn levenshtein(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut prev: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut cur = vec![i + 1];
        for (j, cb) in b.iter().enumerate() {
            let cost = usize::from(ca != *cb);
            cur.push((prev[j] + cost).min(prev[j + 1] + 1).min(cur[j] + 1));
        }
        prev = cur;
    }
    prev[b.len()]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn offsets_map_to_one_based_lines_and_columns() {
        let text = "a: 1\nbc: 2\n";
        assert_eq!(Pos::from_offset(text, 0), Pos::new(1, 1));
        assert_eq!(Pos::from_offset(text, 5), Pos::new(2, 1));
        assert_eq!(Pos::from_offset(text, 9), Pos::new(2, 5));
    }

    #[test]
    fn suggests_close_field_names_only() {
        assert_eq!(did_you_mean("enviroment", &["env", "environment", "image"]), Some("environment"));
        assert_eq!(did_you_mean("enviroment", &["env", "image"]), Some("env"));
        assert_eq!(did_you_mean("depends_on", &["env", "dependsOn"]), Some("dependsOn"));
        assert_eq!(did_you_mean("imag", &["env", "image"]), Some("image"));
        assert_eq!(did_you_mean("zzzzzz", &["env", "image"]), None);
    }

    #[test]
    fn renders_file_line_col_and_caret() {
        let mut diags = Vec::new();
        let mut sink = Sink::new("app.yaml", "kind: Container\nspec:\n  imgae: x\n", &mut diags);
        sink.error(Pos::new(3, 3), "unknown field `imgae`");
        assert_eq!(diags[0].to_string(), "app.yaml:3:3: unknown field `imgae`\n 3 |   imgae: x\n   |   ^");
    }
}
