//! A format-neutral, position-carrying document tree. YAML and TOML both parse into it, so the
//! decoder that turns documents into resources is written once and reports the same errors,
//! with the same positions, whatever the file format.

use super::diag::{LineIndex, Pos, Sink};
use std::collections::{HashMap, HashSet};
use yaml_rust2::parser::{Event, Parser};
use yaml_rust2::scanner::TScalarStyle;

#[derive(Clone, Debug, PartialEq)]
pub struct Node {
    pub pos: Pos,
    pub value: Value,
}

#[derive(Clone, Debug, PartialEq)]
pub enum Value {
    Null,
    Bool(bool),
    Int(i64),
    Float(f64),
    /// A string; `plain` is its source text when it came from an untyped YAML scalar.
    Str(String),
    Seq(Vec<Node>),
    Map(Vec<(Key, Node)>),
}

#[derive(Clone, Debug, PartialEq)]
pub struct Key {
    pub name: String,
    pub pos: Pos,
}

impl Value {
    pub fn type_name(&self) -> &'static str {
        match self {
            Value::Null => "null",
            Value::Bool(_) => "a boolean",
            Value::Int(_) => "an integer",
            Value::Float(_) => "a number",
            Value::Str(_) => "a string",
            Value::Seq(_) => "a list",
            Value::Map(_) => "a map",
        }
    }
}

/// Upper bound on nodes produced by YAML alias expansion, against "billion laughs" documents.
const MAX_ALIAS_NODES: usize = 10_000;

/// Parses every YAML document of a file. Errors go to `sink`; the documents that parsed are returned.
pub fn parse_yaml(text: &str, sink: &mut Sink<'_>) -> Vec<Node> {
    let mut b =
        YamlBuilder { parser: Parser::new_from_str(text), anchors: HashMap::new(), alias_budget: MAX_ALIAS_NODES };
    let mut docs = Vec::new();
    loop {
        match b.parser.next_token() {
            Ok((Event::StreamEnd, _)) => break,
            Ok((Event::DocumentStart, _)) => match b.node(sink) {
                Ok(Some(doc)) => {
                    if !matches!(doc.value, Value::Null) {
                        docs.push(doc)
                    }
                    // Consume DocumentEnd.
                    if let Err(e) = b.parser.next_token() {
                        yaml_error(sink, &e);
                        break;
                    }
                }
                Ok(None) => {}
                Err(()) => break,
            },
            Ok(_) => {}
            Err(e) => {
                yaml_error(sink, &e);
                break;
            }
        }
    }
    docs
}

fn yaml_error(sink: &mut Sink<'_>, e: &yaml_rust2::ScanError) {
    let m = e.marker();
    sink.error(Pos::new(m.line(), m.col() + 1), format!("invalid YAML: {}", e.info()));
}

struct YamlBuilder<'a> {
    parser: Parser<std::str::Chars<'a>>,
    anchors: HashMap<usize, Node>,
    alias_budget: usize,
}

impl YamlBuilder<'_> {
    /// Reads one node; Err(()) after a reported syntax error, Ok(None) at a collection's end.
    fn node(&mut self, sink: &mut Sink<'_>) -> Result<Option<Node>, ()> {
        let (event, mark) = self.parser.next_token().map_err(|e| yaml_error(sink, &e))?;
        // yaml-rust2 counts columns from 0.
        let pos = Pos::new(mark.line(), mark.col() + 1);
        let (node, anchor) = match event {
            Event::Scalar(text, style, anchor, tag) => {
                let value =
                    if style == TScalarStyle::Plain && tag.is_none() { resolve_plain(&text) } else { Value::Str(text) };
                (Node { pos, value }, anchor)
            }
            Event::SequenceStart(anchor, _) => {
                let mut items = Vec::new();
                while let Some(item) = self.node(sink)? {
                    items.push(item);
                }
                {
                    let pos = items.first().map_or(pos, |i| i.pos.min(pos));
                    (Node { pos, value: Value::Seq(items) }, anchor)
                }
            }
            Event::MappingStart(anchor, _) => {
                let mut entries: Vec<(Key, Node)> = Vec::new();
                // Small maps are scanned; a large one gets a set, so a map of many keys stays linear.
                let mut names: Option<HashSet<String>> = None;
                // YAML merge keys (`<<: *base`), which compose files use for shared blocks.
                let mut merged: Vec<Node> = Vec::new();
                while let Some(k) = self.node(sink)? {
                    let Some(v) = self.node(sink)? else { break };
                    if k.value == Value::Str("<<".into()) {
                        match v.value {
                            Value::Map(_) => merged.push(v),
                            Value::Seq(items) if items.iter().all(|i| matches!(i.value, Value::Map(_))) => {
                                merged.extend(items)
                            }
                            _ => sink.error(v.pos, "a merge key `<<` takes a map or a list of maps"),
                        }
                        continue;
                    }
                    let name = match &k.value {
                        Value::Str(s) => s.clone(),
                        Value::Int(i) => i.to_string(),
                        Value::Bool(b) => b.to_string(),
                        Value::Float(f) => f.to_string(),
                        Value::Null => String::new(),
                        other => {
                            sink.error(k.pos, format!("a map key must be a string, found {}", other.type_name()));
                            continue;
                        }
                    };
                    let duplicate = match &mut names {
                        Some(set) => !set.insert(name.clone()),
                        None => entries.iter().any(|(e, _)| e.name == name),
                    };
                    if names.is_none() && entries.len() >= 16 {
                        names = Some(entries.iter().map(|(e, _)| e.name.clone()).chain([name.clone()]).collect());
                    }
                    if duplicate {
                        sink.error(k.pos, format!("duplicate key `{name}`"));
                        continue;
                    }
                    entries.push((Key { name, pos: k.pos }, v));
                }
                // Keys written in the map win over merged ones; of merged maps, the first wins.
                for m in merged {
                    let Value::Map(from) = m.value else { continue };
                    for (k, v) in from {
                        if !entries.iter().any(|(e, _)| e.name == k.name) {
                            entries.push((k, v));
                        }
                    }
                }
                {
                    // A block mapping's event comes after its first key; the map starts at that key.
                    let pos = entries.first().map_or(pos, |(k, _)| k.pos.min(pos));
                    (Node { pos, value: Value::Map(entries) }, anchor)
                }
            }
            Event::Alias(id) => {
                let Some(target) = self.anchors.get(&id) else {
                    sink.error(pos, "unknown YAML alias");
                    return Err(());
                };
                let size = count_nodes(target);
                if size > self.alias_budget {
                    sink.error(pos, format!("YAML aliases expand to more than {MAX_ALIAS_NODES} nodes"));
                    return Err(());
                }
                self.alias_budget -= size;
                let mut n = target.clone();
                n.pos = pos;
                (n, 0)
            }
            Event::SequenceEnd | Event::MappingEnd | Event::DocumentEnd | Event::StreamEnd => return Ok(None),
            Event::Nothing | Event::StreamStart | Event::DocumentStart => return self.node(sink),
        };
        if anchor > 0 {
            self.anchors.insert(anchor, node.clone());
        }
        Ok(Some(node))
    }
}

fn count_nodes(n: &Node) -> usize {
    match &n.value {
        Value::Seq(items) => 1 + items.iter().map(count_nodes).sum::<usize>(),
        Value::Map(entries) => 1 + entries.iter().map(|(_, v)| 1 + count_nodes(v)).sum::<usize>(),
        _ => 1,
    }
}

/// YAML 1.2 core schema resolution of an untagged plain scalar.
fn resolve_plain(text: &str) -> Value {
    match text {
        "" | "~" | "null" | "Null" | "NULL" => return Value::Null,
        "true" | "True" | "TRUE" => return Value::Bool(true),
        "false" | "False" | "FALSE" => return Value::Bool(false),
        _ => {}
    }
    if let Ok(i) = text.parse::<i64>() {
        return Value::Int(i);
    }
    let looks_numeric = text.bytes().next().is_some_and(|b| b.is_ascii_digit() || b == b'-' || b == b'+' || b == b'.');
    if looks_numeric && !text.contains(':') {
        if let Ok(f) = text.parse::<f64>() {
            if f.is_finite() {
                return Value::Float(f);
            }
        }
    }
    Value::Str(text.to_string())
}

/// Parses a TOML file into one node (its top-level table).
pub fn parse_toml(text: &str, sink: &mut Sink<'_>) -> Option<Node> {
    match toml_edit::Document::parse(text) {
        Ok(doc) => Some(toml_table(&LineIndex::new(text), doc.as_table(), Pos::new(1, 1))),
        Err(e) => {
            let pos = e.span().map(|s| Pos::from_offset(text, s.start)).unwrap_or_default();
            let msg = e.message().trim().to_string();
            sink.error(pos, format!("invalid TOML: {msg}"));
            None
        }
    }
}

fn span_pos(text: &LineIndex<'_>, span: Option<std::ops::Range<usize>>, fallback: Pos) -> Pos {
    span.map(|s| text.pos(s.start)).unwrap_or(fallback)
}

fn toml_entries<'t>(
    text: &LineIndex<'_>,
    pairs: impl Iterator<Item = (&'t toml_edit::Key, &'t toml_edit::Item)>,
    fallback: Pos,
) -> Vec<(Key, Node)> {
    pairs
        .map(|(k, item)| {
            let kpos = span_pos(text, k.span(), fallback);
            (Key { name: k.get().to_string(), pos: kpos }, toml_item(text, item, kpos))
        })
        .collect()
}

fn toml_table(text: &LineIndex<'_>, t: &toml_edit::Table, fallback: Pos) -> Node {
    let pos = span_pos(text, t.span(), fallback);
    let keys: Vec<&str> = t.iter().map(|(k, _)| k).collect();
    let pairs = keys.into_iter().filter_map(|k| t.get_key_value(k));
    Node { pos, value: Value::Map(toml_entries(text, pairs, pos)) }
}

fn toml_item(text: &LineIndex<'_>, item: &toml_edit::Item, fallback: Pos) -> Node {
    match item {
        toml_edit::Item::None => Node { pos: fallback, value: Value::Null },
        toml_edit::Item::Value(v) => toml_value(text, v, fallback),
        toml_edit::Item::Table(t) => toml_table(text, t, fallback),
        toml_edit::Item::ArrayOfTables(a) => {
            let pos = span_pos(text, a.span(), fallback);
            Node { pos, value: Value::Seq(a.iter().map(|t| toml_table(text, t, pos)).collect()) }
        }
    }
}

fn toml_value(text: &LineIndex<'_>, v: &toml_edit::Value, fallback: Pos) -> Node {
    use toml_edit::Value as V;
    let pos = span_pos(text, v.span(), fallback);
    let value = match v {
        V::String(s) => Value::Str(s.value().clone()),
        V::Integer(i) => Value::Int(*i.value()),
        V::Float(f) => Value::Float(*f.value()),
        V::Boolean(b) => Value::Bool(*b.value()),
        V::Datetime(d) => Value::Str(d.value().to_string()),
        V::Array(a) => Value::Seq(a.iter().map(|v| toml_value(text, v, pos)).collect()),
        V::InlineTable(t) => {
            let keys: Vec<&str> = t.iter().map(|(k, _)| k).collect();
            let pairs = keys.into_iter().filter_map(|k| t.get_key_value(k));
            Value::Map(toml_entries(text, pairs, pos))
        }
    };
    Node { pos, value }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::desired::diag::Diagnostic;

    fn yaml(text: &str) -> (Vec<Node>, Vec<Diagnostic>) {
        let mut diags = Vec::new();
        let docs = parse_yaml(text, &mut Sink::new("t.yaml", text, &mut diags));
        (docs, diags)
    }

    #[test]
    fn yaml_positions_point_at_keys_and_values() {
        let (docs, diags) = yaml("kind: Container\nspec:\n  image: x\n");
        assert!(diags.is_empty(), "{diags:?}");
        let Value::Map(top) = &docs[0].value else { panic!() };
        assert_eq!(top[1].0.name, "spec");
        assert_eq!(top[1].0.pos, Pos::new(2, 1));
        let Value::Map(spec) = &top[1].1.value else { panic!() };
        assert_eq!(spec[0].0.pos, Pos::new(3, 3));
        assert_eq!(spec[0].1.pos, Pos::new(3, 10));
    }

    #[test]
    fn yaml_merge_keys_fill_in_what_the_map_does_not_say() {
        let text = "x: &a {image: a, restart: always}\ny: &b {user: b, restart: never}\nweb:\n  <<: [*a, *b]\n  image: web\nbad:\n  <<: 3\n";
        let (docs, diags) = yaml(text);
        let Value::Map(top) = &docs[0].value else { panic!() };
        let Value::Map(web) = &top[2].1.value else { panic!() };
        let get = |k: &str| web.iter().find(|(e, _)| e.name == k).map(|(_, v)| v.value.clone());
        assert_eq!(get("image"), Some(Value::Str("web".into())), "the map's own key wins");
        assert_eq!(get("restart"), Some(Value::Str("always".into())), "the first merged map wins");
        assert_eq!(get("user"), Some(Value::Str("b".into())));
        assert_eq!(get("<<"), None);
        assert_eq!(diags.len(), 1, "{diags:?}");
        assert_eq!(diags[0].pos, Pos::new(7, 7));
    }

    #[test]
    fn yaml_multi_documents_and_scalars() {
        let (docs, _) = yaml("a: 1\n---\nb: true\nc: '1'\nd: ~\n");
        assert_eq!(docs.len(), 2);
        let Value::Map(m) = &docs[1].value else { panic!() };
        assert_eq!(m[0].1.value, Value::Bool(true));
        assert_eq!(m[1].1.value, Value::Str("1".into()));
        assert_eq!(m[2].1.value, Value::Null);
    }

    #[test]
    fn yaml_duplicate_keys_are_errors() {
        let (_, diags) = yaml("a: 1\nb: 2\na: 3\n");
        assert_eq!(diags.len(), 1);
        assert_eq!(diags[0].pos, Pos::new(3, 1));
        assert!(diags[0].message.contains("duplicate key `a`"));
    }

    #[test]
    fn yaml_billion_laughs_is_bounded() {
        let mut text = String::from("a0: &a0 [x, x, x, x, x, x, x, x, x, x]\n");
        for i in 1..10 {
            let refs = vec![format!("*a{}", i - 1); 10].join(", ");
            text.push_str(&format!("a{i}: &a{i} [{refs}]\n"));
        }
        let (_, diags) = yaml(&text);
        assert!(diags.iter().any(|d| d.message.contains("aliases expand")), "{diags:?}");
    }

    #[test]
    fn yaml_syntax_error_has_position() {
        let (_, diags) = yaml("a: [1, 2\nb: 3\n");
        assert_eq!(diags.len(), 1);
        assert!(diags[0].message.starts_with("invalid YAML"));
    }

    #[test]
    fn toml_positions() {
        let text = "kind = \"Volume\"\n[metadata]\nname = \"data\"\n";
        let mut diags = Vec::new();
        let node = parse_toml(text, &mut Sink::new("t.toml", text, &mut diags)).unwrap();
        let Value::Map(top) = &node.value else { panic!() };
        assert_eq!(top[0].0.pos, Pos::new(1, 1));
        let Value::Map(meta) = &top[1].1.value else { panic!() };
        assert_eq!(meta[0].0.pos, Pos::new(3, 1));
        assert_eq!(meta[0].1.value, Value::Str("data".into()));
    }
}
