//! Compose's variable interpolation, as the Compose Specification defines it: `$$` is a `$`;
//! `$VAR` and `${VAR}` are values; `${VAR:-default}` and `${VAR-default}` give a default when
//! the variable is unset or empty (`:`) or unset; `${VAR:?message}` and `${VAR?message}` make a
//! missing value an error; `${VAR:+alt}` and `${VAR+alt}` give `alt` when it is set. Defaults
//! may themselves hold variables. Values come from the process's environment first, then from
//! the `.env` file beside the compose file.

use super::types::Invalid;
use std::collections::{BTreeMap, BTreeSet};

/// Where a variable's value came from: the process's values are the host's (often secrets) and
/// are masked in plans.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum From {
    Process,
    DotEnv,
}

#[derive(Clone, Debug, Default)]
pub struct Variables {
    values: BTreeMap<String, (String, From)>,
}

impl Variables {
    /// The process's variables over those of a `.env` file.
    pub fn new(process: &BTreeMap<String, String>, dotenv: &BTreeMap<String, String>) -> Variables {
        let mut values: BTreeMap<String, (String, From)> =
            dotenv.iter().map(|(k, v)| (k.clone(), (v.clone(), From::DotEnv))).collect();
        for (k, v) in process {
            values.insert(k.clone(), (v.clone(), From::Process));
        }
        Variables { values }
    }

    fn get(&self, name: &str) -> Option<&(String, From)> {
        self.values.get(name)
    }

    /// A variable's value, from the process or `.env`.
    pub fn value(&self, name: &str) -> Option<&str> {
        self.values.get(name).map(|(v, _)| v.as_str())
    }

    /// Whether `name` is set in the process's environment (not only in a `.env` file).
    pub fn from_process(&self, name: &str) -> bool {
        self.values.get(name).is_some_and(|(_, from)| matches!(from, From::Process))
    }
}

/// What interpolating one value found besides its result.
#[derive(Debug, Default, PartialEq)]
pub struct Found {
    /// Variables used without a value and without a default (compose warns and uses "").
    pub unset: Vec<String>,
    /// Values that came from the process's environment.
    pub from_process: BTreeSet<String>,
}

/// `text` with its variables replaced; `Err` for a `:?`/`?` variable without a value, or a
/// `${` that is never closed.
pub fn interpolate(text: &str, vars: &Variables, found: &mut Found) -> Result<String, Invalid> {
    if !text.contains('$') {
        return Ok(text.to_string());
    }
    let chars: Vec<char> = text.chars().collect();
    let mut out = String::with_capacity(text.len());
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        if c != '$' {
            out.push(c);
            i += 1;
            continue;
        }
        match chars.get(i + 1) {
            Some('$') => {
                out.push('$');
                i += 2;
            }
            Some('{') => {
                let close = closing_brace(&chars, i + 2)
                    .ok_or_else(|| Invalid(format!("`${{` without a closing `}}` in `{text}`")))?;
                let inner: String = chars[i + 2..close].iter().collect();
                out.push_str(&braced(&inner, vars, found)?);
                i = close + 1;
            }
            Some(n) if n.is_ascii_alphabetic() || *n == '_' => {
                let end = (i + 1..chars.len()).find(|&j| !(chars[j].is_ascii_alphanumeric() || chars[j] == '_'));
                let end = end.unwrap_or(chars.len());
                let name: String = chars[i + 1..end].iter().collect();
                out.push_str(&value_of(&name, vars, found));
                i = end;
            }
            _ => {
                out.push('$');
                i += 1;
            }
        }
    }
    Ok(out)
}

/// The index of the `}` that closes a `${` whose content starts at `from`.
fn closing_brace(chars: &[char], from: usize) -> Option<usize> {
    let mut depth = 0;
    let mut j = from;
    while j < chars.len() {
        match chars[j] {
            '$' if chars.get(j + 1) == Some(&'{') => {
                depth += 1;
                j += 2;
                continue;
            }
            '}' if depth == 0 => return Some(j),
            '}' => depth -= 1,
            _ => {}
        }
        j += 1;
    }
    None
}

fn value_of(name: &str, vars: &Variables, found: &mut Found) -> String {
    match vars.get(name) {
        Some((v, from)) => {
            if *from == From::Process && !v.is_empty() {
                found.from_process.insert(v.clone());
            }
            v.clone()
        }
        None => {
            found.unset.push(name.to_string());
            String::new()
        }
    }
}

/// The content of `${...}`: a name and an optional operator with its word.
fn braced(inner: &str, vars: &Variables, found: &mut Found) -> Result<String, Invalid> {
    let name_end = inner.find(|c: char| !(c.is_ascii_alphanumeric() || c == '_')).unwrap_or(inner.len());
    let (name, rest) = inner.split_at(name_end);
    if name.is_empty() || name.starts_with(|c: char| c.is_ascii_digit()) {
        return Err(Invalid(format!("invalid variable `${{{inner}}}`")));
    }
    let (op, word) = ["::", ":-", ":?", ":+", "-", "?", "+"]
        .iter()
        .filter(|op| **op != "::")
        .find_map(|op| rest.strip_prefix(op).map(|w| (*op, w)))
        .unwrap_or(("", rest));
    if op.is_empty() && !rest.is_empty() {
        return Err(Invalid(format!("invalid variable `${{{inner}}}`")));
    }
    let value = vars.get(name);
    let set = value.is_some();
    let non_empty = value.is_some_and(|(v, _)| !v.is_empty());
    match op {
        "" => Ok(value_of(name, vars, found)),
        ":-" | "-" => {
            let use_default = if op == ":-" { !non_empty } else { !set };
            if use_default {
                interpolate(word, vars, found)
            } else {
                Ok(value_of(name, vars, found))
            }
        }
        ":?" | "?" => {
            let missing = if op == ":?" { !non_empty } else { !set };
            if missing {
                let message = interpolate(word, vars, found)?;
                Err(Invalid(format!(
                    "required variable `{name}` is missing a value{}",
                    if message.is_empty() { String::new() } else { format!(": {message}") }
                )))
            } else {
                Ok(value_of(name, vars, found))
            }
        }
        _ => {
            // `:+` and `+`: the alternative when the variable has a value (or is set).
            let alternative = if op == ":+" { non_empty } else { set };
            if alternative {
                interpolate(word, vars, found)
            } else {
                Ok(String::new())
            }
        }
    }
}

/// A `.env` file: `KEY=VALUE` lines, `#` comments, an optional `export `, values unquoted
/// (an inline ` #` starts a comment), in single quotes (literal) or double quotes (`\n`, `\"`).
/// With `process` (a project's `.env`), unquoted and double-quoted values are interpolated as
/// compose does (`IMAGE="${IMAGE:-app}"`), from `process` first, then from the lines above; what
/// came from `process` is noted in `found`. Without (a service's `env_file`), values are taken
/// as written. `Err` is the 1-based line and what is wrong with it.
pub fn parse_dotenv(
    text: &str,
    process: Option<&BTreeMap<String, String>>,
    found: &mut Found,
) -> Result<BTreeMap<String, String>, (usize, Invalid)> {
    let mut out = BTreeMap::new();
    for (n, line) in text.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let line = line.strip_prefix("export ").unwrap_or(line);
        let Some((key, value)) = line.split_once('=') else {
            return Err((n + 1, Invalid(format!("`{line}` is not KEY=VALUE"))));
        };
        let key = key.trim();
        if key.is_empty() || !key.chars().all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '.' || c == '-') {
            return Err((n + 1, Invalid(format!("invalid variable name `{key}`"))));
        }
        let value = value.trim();
        let expand = |v: &str, out: &BTreeMap<String, String>, found: &mut Found| {
            let Some(process) = process else { return Ok(v.to_string()) };
            let mut here = Found::default();
            let v = interpolate(v, &Variables::new(process, out), &mut here).map_err(|e| (n + 1, e))?;
            found.from_process.extend(here.from_process);
            Ok::<String, (usize, Invalid)>(v)
        };
        let value = if let Some(q) = value.strip_prefix('\'') {
            q.strip_suffix('\'').ok_or((n + 1, Invalid::from("a single quote is not closed")))?.to_string()
        } else if let Some(q) = value.strip_prefix('"') {
            let q = q.strip_suffix('"').ok_or((n + 1, Invalid::from("a double quote is not closed")))?;
            expand(&q.replace("\\n", "\n").replace("\\\"", "\"").replace("\\\\", "\\"), &out, found)?
        } else {
            expand(value.split(" #").next().unwrap_or(value).trim_end(), &out, found)?
        };
        out.insert(key.to_string(), value);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn vars(process: &[(&str, &str)], dotenv: &[(&str, &str)]) -> Variables {
        let m = |kv: &[(&str, &str)]| kv.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
        Variables::new(&m(process), &m(dotenv))
    }

    fn run(text: &str, v: &Variables) -> Result<String, Invalid> {
        interpolate(text, v, &mut Found::default())
    }

    #[test]
    fn every_form_of_the_specification() {
        let v = vars(&[("TAG", "2"), ("EMPTY", "")], &[("TAG", "1"), ("HOST", "db")]);
        assert_eq!(run("nginx:${TAG}", &v).unwrap(), "nginx:2", "the process wins over .env");
        assert_eq!(run("$HOST:5432", &v).unwrap(), "db:5432");
        assert_eq!(run("${NOPE:-x}|${EMPTY:-x}|${EMPTY-x}|${NOPE-x}", &v).unwrap(), "x|x||x");
        assert_eq!(run("${HOST:+on}|${EMPTY:+on}|${EMPTY+on}|${NOPE+on}", &v).unwrap(), "on||on|");
        assert_eq!(run("${NOPE:-${HOST:-z}}-$$HOME-5$", &v).unwrap(), "db-$HOME-5$");
        assert_eq!(run("${EMPTY?}", &v).unwrap(), "");
        let e = run("${NOPE:?set it in .env}", &v).unwrap_err();
        assert_eq!(e.0, "required variable `NOPE` is missing a value: set it in .env");
        assert!(run("${EMPTY:?}", &v).is_err());
        assert!(run("${TAG", &v).is_err());
        let mut found = Found::default();
        assert_eq!(interpolate("${NOPE}x${TAG}", &v, &mut found).unwrap(), "x2");
        assert_eq!(found.unset, ["NOPE"]);
        assert_eq!(found.from_process, ["2".to_string()].into());
    }

    #[test]
    fn dotenv_files() {
        let text = "# comment\nexport A=1\nB = two words # a comment\nC='lit $X # not a comment'\nD=\"a\\nb\"\n\nE=\n";
        let env = parse_dotenv(text, None, &mut Found::default()).unwrap();
        assert_eq!(env["A"], "1");
        assert_eq!(env["B"], "two words");
        assert_eq!(env["C"], "lit $X # not a comment");
        assert_eq!(env["D"], "a\nb");
        assert_eq!(env["E"], "");
        assert_eq!(parse_dotenv("A=1\nnot a line\n", None, &mut Found::default()).unwrap_err().0, 2);
    }

    #[test]
    fn dotenv_values_refer_to_variables_as_in_compose() {
        let text = "IMAGE_NAME=\"${IMAGE_NAME:-backend}\"\nTAG=${TAG:-1}\nREF=$IMAGE_NAME:$TAG\nLIT='${IMAGE_NAME}'\n";
        let none = BTreeMap::new();
        let env = parse_dotenv(text, Some(&none), &mut Found::default()).unwrap();
        assert_eq!((env["IMAGE_NAME"].as_str(), env["REF"].as_str()), ("backend", "backend:1"));
        assert_eq!(env["LIT"], "${IMAGE_NAME}", "single quotes are literal");
        let process: BTreeMap<String, String> = [("IMAGE_NAME".to_string(), "frontend".to_string())].into();
        let mut found = Found::default();
        let env = parse_dotenv(text, Some(&process), &mut found).unwrap();
        assert_eq!(env["REF"], "frontend:1", "the process's value wins");
        assert!(found.from_process.contains("frontend"), "and is masked like any of the host's values");
        assert!(parse_dotenv("A=${B:?needed}\n", Some(&none), &mut Found::default()).is_err());
        let literal = parse_dotenv(text, None, &mut Found::default()).unwrap();
        assert_eq!(literal["IMAGE_NAME"], "${IMAGE_NAME:-backend}", "an env_file is taken as written");
    }
}
