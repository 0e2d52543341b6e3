//! Turn the byte offset of a TOML error into what an operator looks for: the line and
//! column, the table (`[node]`, `[[chain]] id="main"`) and the key inside it.
//!
//! The TOML parser reports where in the text it stopped; the spanned document
//! (`toml::de::DeTable`) says which key or value covers that offset.

use toml::de::{DeTable, DeValue};

/// A 1-based line and column (columns count characters, not bytes).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TextPosition {
    /// Line, from 1.
    pub line: usize,
    /// Column, from 1.
    pub column: usize,
}

impl TextPosition {
    /// The position of byte `offset` in `text` (clamped to the text, and to a character boundary).
    pub fn of(text: &str, offset: usize) -> TextPosition {
        let mut offset = offset.min(text.len());
        while !text.is_char_boundary(offset) {
            offset -= 1;
        }
        let before = &text[..offset];
        let line_start = before.rfind('\n').map_or(0, |newline| newline + 1);
        TextPosition { line: before.matches('\n').count() + 1, column: before[line_start..].chars().count() + 1 }
    }
}

/// Where a TOML error is: its position, and the table and key that hold it (empty when
/// the document does not parse or the offset lies outside every key).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Location {
    /// Line and column.
    pub position: TextPosition,
    /// The top-level table, as the manifest's other errors name it.
    pub table: String,
    /// The dotted key inside the table.
    pub key: String,
}

/// One step of a path through the document.
enum Step {
    Key(String),
    Index(usize),
}

/// Locates byte `offset` of `text`.
pub fn locate(text: &str, offset: usize) -> Location {
    let position = TextPosition::of(text, offset);
    let Ok(document) = DeTable::parse(text) else {
        return Location { position, table: String::new(), key: String::new() };
    };
    let path = find_in_table(document.get_ref(), offset).unwrap_or_default();
    let (table, key) = describe(document.get_ref(), &path);
    Location { position, table, key }
}

/// The deepest path whose key or value covers `offset`. A table's own span is only its
/// header, so every entry is searched, not only those whose span covers the offset.
fn find_in_table(table: &DeTable, offset: usize) -> Option<Vec<Step>> {
    table.iter().find_map(|(key, value)| {
        let covers = key.span().contains(&offset) || value.span().contains(&offset);
        match find_in_value(value.get_ref(), offset) {
            Some(rest) => Some(prefixed(Step::Key(key.get_ref().to_string()), rest)),
            None if covers => Some(vec![Step::Key(key.get_ref().to_string())]),
            None => None,
        }
    })
}

fn find_in_value(value: &DeValue, offset: usize) -> Option<Vec<Step>> {
    match value {
        DeValue::Table(table) => find_in_table(table, offset),
        DeValue::Array(items) => {
            items.iter().enumerate().find_map(|(index, item)| match find_in_value(item.get_ref(), offset) {
                Some(rest) => Some(prefixed(Step::Index(index), rest)),
                None if item.span().contains(&offset) => Some(vec![Step::Index(index)]),
                None => None,
            })
        }
        _ => None,
    }
}

fn prefixed(first: Step, mut rest: Vec<Step>) -> Vec<Step> {
    rest.insert(0, first);
    rest
}

/// The table label and the dotted key of `path`: `[[chain]] id="main"` and
/// `consensus.config.block_interval_ms`; `[node]` and `colour`; no table for a key at the root.
fn describe(document: &DeTable, path: &[Step]) -> (String, String) {
    let Some(Step::Key(name)) = path.first() else { return (String::new(), String::new()) };
    let value = document.iter().find(|(key, _)| key.get_ref() == name).map(|(_, value)| value.get_ref());
    match (value, path.get(1)) {
        (Some(DeValue::Table(_)), _) => (format!("[{name}]"), dotted(&path[1..])),
        (Some(DeValue::Array(items)), Some(Step::Index(index))) => {
            let id = items.get(*index).and_then(|item| item.get_ref().get("id")).and_then(|id| id.get_ref().as_str());
            let table = match id {
                Some(id) => format!("[[{name}]] id=\"{id}\""),
                None => format!("[[{name}]] #{}", index + 1),
            };
            (table, dotted(&path[2..]))
        }
        _ => (String::new(), dotted(path)),
    }
}

/// `a.b[2].c`.
fn dotted(path: &[Step]) -> String {
    let mut text = String::new();
    for step in path {
        match step {
            Step::Key(key) if text.is_empty() => text.push_str(key),
            Step::Key(key) => {
                text.push('.');
                text.push_str(key);
            }
            Step::Index(index) => text.push_str(&format!("[{index}]")),
        }
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    const TEXT: &str = "top = 1\n[node]\nname = \"n\"\ncolour = 1\n\n[[chain]]\nid = \"main\"\nconsensus = { plugin = \"poa\", config = { ms = \"x\" } }\n\n[[chain]]\nid = \"b\"\nlist = [1, \"two\"]\n";

    fn at(needle: &str) -> Location {
        locate(TEXT, TEXT.find(needle).expect("needle in text"))
    }

    #[test]
    fn a_key_in_a_table_is_named_with_its_table_line_and_column() {
        let location = at("colour");
        assert_eq!(location.position, TextPosition { line: 4, column: 1 });
        assert_eq!((location.table.as_str(), location.key.as_str()), ("[node]", "colour"));
    }

    #[test]
    fn a_value_inside_inline_tables_of_an_array_of_tables_is_named_by_the_entry_id() {
        let location = at("\"x\"");
        assert_eq!(location.position, TextPosition { line: 8, column: 47 });
        assert_eq!((location.table.as_str(), location.key.as_str()), ("[[chain]] id=\"main\"", "consensus.config.ms"));
        let location = at("\"two\"");
        assert_eq!((location.table.as_str(), location.key.as_str()), ("[[chain]] id=\"b\"", "list[1]"));
    }

    #[test]
    fn a_root_key_and_a_table_header_are_named() {
        let location = at("top");
        assert_eq!((location.position.line, location.table.as_str(), location.key.as_str()), (1, "", "top"));
        let location = at("[node]");
        assert_eq!((location.position.line, location.table.as_str(), location.key.as_str()), (2, "[node]", ""));
    }

    #[test]
    fn text_that_does_not_parse_still_gets_a_position_and_columns_count_characters() {
        let location = locate("name = \"n\nkey = 1\n", 9);
        assert_eq!(location.position, TextPosition { line: 1, column: 10 });
        assert_eq!((location.table.as_str(), location.key.as_str()), ("", ""));
        assert_eq!(TextPosition::of("é = 1", 2), TextPosition { line: 1, column: 2 });
        assert_eq!(TextPosition::of("ab", 99), TextPosition { line: 1, column: 3 });
    }
}
