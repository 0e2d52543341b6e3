//! Complete the identifier path at the end of a console line, without running Lua code.
//!
//! `pr` → globals and keywords; `string.fo` → fields of `string`; `s:up` with `s` a string
//! → the string library; `chain("main"):he` → the methods registered for `chain`. Paths
//! are followed through raw fields and the `__index` tables of metatables only: no
//! function, metamethod or `__index` function is ever called.

use mlua::{Lua, Table, Value};
use std::collections::BTreeMap;

/// Most candidates returned for one line.
pub(super) const CANDIDATES_MAX: usize = 256;
/// Most `__index` tables followed from one value.
const INDEX_CHAIN_MAX: usize = 8;
/// Most segments in a completed path (`a.b.c` has three).
const PATH_SEGMENTS_MAX: usize = 32;

const KEYWORDS: &[&str] = &[
    "and", "break", "do", "else", "elseif", "end", "false", "for", "function", "goto", "if", "in", "local", "nil",
    "not", "or", "repeat", "return", "then", "true", "until", "while",
];

#[derive(Debug, PartialEq)]
enum Segment {
    Name(String),
    Call,
}

/// What precedes the word being completed.
#[derive(Debug, PartialEq)]
struct Target {
    /// Byte where the word starts.
    start: usize,
    /// The path before `.` or `:`; empty for a global.
    path: Vec<Segment>,
    /// The separator was `:` (methods only).
    method: bool,
}

/// See [`super::Session::complete`].
pub(super) fn complete(
    lua: &Lua,
    string_library: &Table,
    types: &BTreeMap<String, Vec<String>>,
    line: &str,
) -> (usize, Vec<String>) {
    let Some(target) = parse(line) else { return (line.len(), Vec::new()) };
    let prefix = &line[target.start..];
    let mut candidates = candidates(lua, string_library, types, &target).unwrap_or_default();
    candidates.retain(|candidate| candidate.starts_with(prefix));
    candidates.sort();
    candidates.dedup();
    candidates.truncate(CANDIDATES_MAX);
    (target.start, candidates)
}

fn candidates(
    lua: &Lua,
    string_library: &Table,
    types: &BTreeMap<String, Vec<String>>,
    target: &Target,
) -> Option<Vec<String>> {
    if target.path.is_empty() {
        let mut names = table_keys(&lua.globals(), false);
        names.extend(KEYWORDS.iter().map(|keyword| keyword.to_string()));
        return Some(names);
    }
    if let [Segment::Name(function), Segment::Call] = target.path.as_slice() {
        return types.get(function).cloned();
    }
    let mut value = Value::Table(lua.globals());
    for segment in &target.path {
        let Segment::Name(name) = segment else { return None };
        value = field(&value, name, string_library)?;
    }
    let tables = index_tables(&value, string_library);
    Some(tables.iter().flat_map(|table| table_keys(table, target.method)).collect())
}

/// The tables whose keys are fields of `value`: itself (if a table) and its `__index` tables.
fn index_tables(value: &Value, string_library: &Table) -> Vec<Table> {
    let mut tables = Vec::new();
    let mut next = match value {
        Value::Table(table) => Some(table.clone()),
        Value::String(_) => Some(string_library.clone()),
        Value::UserData(userdata) => match userdata.metatable().and_then(|meta| meta.get::<Value>("__index")) {
            Ok(Value::Table(index)) => Some(index),
            _ => None,
        },
        _ => None,
    };
    while let Some(table) = next.take() {
        if tables.len() >= INDEX_CHAIN_MAX || tables.iter().any(|seen: &Table| seen.to_pointer() == table.to_pointer())
        {
            break;
        }
        if let Some(Value::Table(index)) = table.metatable().and_then(|meta| meta.raw_get::<Value>("__index").ok()) {
            next = Some(index);
        }
        tables.push(table);
    }
    tables
}

/// The field `name` of `value`, read raw through its `__index` tables; `None` if nil.
fn field(value: &Value, name: &str, string_library: &Table) -> Option<Value> {
    index_tables(value, string_library)
        .iter()
        .map(|table| table.raw_get::<Value>(name).unwrap_or(Value::Nil))
        .find(|field| !field.is_nil())
}

/// Identifier keys of a table (function-valued ones only for `:`).
fn table_keys(table: &Table, functions_only: bool) -> Vec<String> {
    let mut keys = Vec::new();
    for pair in table.pairs::<Value, Value>() {
        let Ok((Value::String(key), value)) = pair else { continue };
        let Ok(key) = key.to_str() else { continue };
        if is_identifier(&key) && (!functions_only || value.is_function()) {
            keys.push(key.to_string());
        }
    }
    keys
}

fn is_identifier(text: &str) -> bool {
    let mut bytes = text.bytes();
    matches!(bytes.next(), Some(first) if first.is_ascii_alphabetic() || first == b'_')
        && bytes.all(is_identifier_byte)
        && !KEYWORDS.contains(&text)
}

fn is_identifier_byte(byte: u8) -> bool {
    byte.is_ascii_alphanumeric() || byte == b'_'
}

/// Reads the path that ends at the end of `line`, backwards; `None` if it is not completable.
fn parse(line: &str) -> Option<Target> {
    let bytes = line.as_bytes();
    let start = identifier_start(bytes, bytes.len());
    if bytes.get(start).is_some_and(u8::is_ascii_digit) {
        return None;
    }
    let separator = start.checked_sub(1).map(|index| bytes[index]);
    let concatenation = start >= 2 && &bytes[start - 2..start] == b"..";
    let method = match separator {
        Some(b'.') if !concatenation => false,
        Some(b':') => true,
        _ => return Some(Target { start, path: Vec::new(), method: false }),
    };
    let path = parse_path(bytes, start - 1)?;
    Some(Target { start, path, method })
}

/// The segments of `a.b`, `f(...)` or `a.b.f(...)` ending at byte `end`.
fn parse_path(bytes: &[u8], mut end: usize) -> Option<Vec<Segment>> {
    let mut segments = Vec::new();
    loop {
        if segments.len() >= PATH_SEGMENTS_MAX {
            return None;
        }
        if end > 0 && bytes[end - 1] == b')' {
            end = matching_open(bytes, end - 1)?;
            segments.push(Segment::Call);
        }
        let start = identifier_start(bytes, end);
        if start == end || bytes[start].is_ascii_digit() {
            return None;
        }
        segments.push(Segment::Name(String::from_utf8_lossy(&bytes[start..end]).into_owned()));
        let dot = start >= 1 && bytes[start - 1] == b'.';
        let concatenation = start >= 2 && bytes[start - 2] == b'.';
        if !dot || concatenation {
            segments.reverse();
            return Some(segments);
        }
        end = start - 1;
    }
}

fn identifier_start(bytes: &[u8], end: usize) -> usize {
    let mut start = end;
    while start > 0 && is_identifier_byte(bytes[start - 1]) {
        start -= 1;
    }
    start
}

/// The `(` matching the `)` at `close`, skipping nested parentheses and quoted strings.
fn matching_open(bytes: &[u8], close: usize) -> Option<usize> {
    let mut depth = 0usize;
    let mut quote: Option<u8> = None;
    for index in (0..=close).rev() {
        let byte = bytes[index];
        match quote {
            Some(open_quote) if byte == open_quote => quote = None,
            Some(_) => {}
            None => match byte {
                b'"' | b'\'' => quote = Some(byte),
                b')' => depth += 1,
                b'(' => {
                    depth -= 1;
                    if depth == 0 {
                        return Some(index);
                    }
                }
                _ => {}
            },
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names(path: &[&str]) -> Vec<Segment> {
        path.iter().map(|name| if *name == "()" { Segment::Call } else { Segment::Name(name.to_string()) }).collect()
    }

    #[test]
    fn parse_reads_globals_fields_methods_and_calls() {
        assert_eq!(parse("pr"), Some(Target { start: 0, path: vec![], method: false }));
        assert_eq!(parse("x = string.fo"), Some(Target { start: 11, path: names(&["string"]), method: false }));
        assert_eq!(parse("a.b:c"), Some(Target { start: 4, path: names(&["a", "b"]), method: true }));
        assert_eq!(
            parse(r#"chain("ma)in"):h"#),
            Some(Target { start: 15, path: names(&["chain", "()"]), method: true })
        );
        assert_eq!(parse(r#"s .. pr"#), Some(Target { start: 5, path: vec![], method: false }));
        assert_eq!(parse(""), Some(Target { start: 0, path: vec![], method: false }));
    }

    #[test]
    fn parse_refuses_numbers_and_unsupported_expressions() {
        assert_eq!(parse("1.5"), None);
        assert_eq!(parse("x = 12"), None);
        assert_eq!(parse(r#""abc":up"#), None);
        assert_eq!(parse("t[1].x"), None);
        assert_eq!(parse("f)):x"), None);
        assert_eq!(parse("é.x"), None);
    }
}
