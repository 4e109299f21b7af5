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
    pub source_line: Option<String>,
}

impl fmt::Display for Diagnostic {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}:{}: {}", self.file, self.pos.line, self.pos.col, self.message)?;
        if let Some(line) = &self.source_line {
            let gutter = self.pos.line.to_string();
            write!(f, "\n {gutter} | {line}")?;
            let pad: String = line
                .chars()
                .take(self.pos.col.saturating_sub(1) as usize)
                .map(|c| if c == '\t' { '\t' } else { ' ' })
                .collect();
            write!(f, "\n {} | {pad}^", " ".repeat(gutter.len()))?;
        }
        Ok(())
    }
}

/// Collects diagnostics for one file; the file's text is kept to quote the offending line.
pub struct Sink<'a> {
    pub file: &'a str,
    text: &'a str,
    pub diags: &'a mut Vec<Diagnostic>,
}

impl<'a> Sink<'a> {
    pub fn new(file: &'a str, text: &'a str, diags: &'a mut Vec<Diagnostic>) -> Self {
        Sink { file, text, diags }
    }

    pub fn error(&mut self, pos: Pos, message: impl Into<String>) {
        let source_line = self.text.lines().nth(pos.line.saturating_sub(1) as usize).map(|l| l.trim_end().to_string());
        self.diags.push(Diagnostic { file: self.file.to_string(), pos, message: message.into(), source_line });
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
