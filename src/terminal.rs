//! Text from input (manifests, engine labels, registry and git errors) made safe to print: a
//! control character could move the cursor, retitle the terminal or hide the lines around it,
//! so each is shown escaped (`\u{1b}`). Newlines and tabs are kept where text is multi-line.

use std::borrow::Cow;

/// `s` with every control character but `\n` and `\t` escaped.
pub fn clean(s: &str) -> Cow<'_, str> {
    clean_keeping(s, &['\n', '\t'])
}

/// `s` on one line: newlines escaped too.
pub fn clean_line(s: &str) -> Cow<'_, str> {
    clean_keeping(s, &['\t'])
}

fn clean_keeping<'s>(s: &'s str, keep: &[char]) -> Cow<'s, str> {
    let bad = |c: char| c.is_control() && !keep.contains(&c);
    if !s.chars().any(bad) {
        return Cow::Borrowed(s);
    }
    let mut out = String::with_capacity(s.len() + 8);
    for c in s.chars() {
        if bad(c) {
            out.extend(c.escape_unicode());
        } else {
            out.push(c);
        }
    }
    Cow::Owned(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn control_characters_are_escaped_and_text_is_kept() {
        assert_eq!(clean("web"), "web");
        assert!(matches!(clean("plain"), Cow::Borrowed(_)));
        assert_eq!(clean("a\x1b[2Jb"), "a\\u{1b}[2Jb");
        assert_eq!(clean("x\u{9b}31m\x07"), "x\\u{9b}31m\\u{7}");
        assert_eq!(clean("two\nlines\tok"), "two\nlines\tok");
        assert_eq!(clean_line("two\nlines\r"), "two\\u{a}lines\\u{d}");
        assert_eq!(clean("é ünïcode"), "é ünïcode");
    }
}
