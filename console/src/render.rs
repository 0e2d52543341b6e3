//! Render values from the node as aligned text that fits the terminal's width.
//!
//! - a scalar: as is (strings without quotes, `nil` for null);
//! - an object: two columns, key and value; a long value wraps under its column;
//! - an array of objects: a table with a column per key (union of keys, first-seen
//!   order) when every cell is flat and the table fits; otherwise each object in turn,
//!   under its index `[1]`, `[2]`, …;
//! - an array of scalars: one per line;
//! - nested objects and arrays: under their key, indented by [`INDENT`]; an array of
//!   scalars inside a cell or a row reads `a, b, c`.

use crate::json::Json;
use std::fmt::Write;

/// Columns each level of nesting is indented by.
pub const INDENT: usize = 2;
/// Narrowest a value column gets, however deep the nesting (it wraps past the width).
const VALUE_WIDTH_MIN: usize = 20;

/// Render every value of a result, one after the other, to fit `width` columns
/// (`usize::MAX` when there is no terminal).
pub fn render_values(values: &[Json], width: usize) -> String {
    values.iter().map(|value| render_value(value, width)).collect()
}

/// Render one value to fit `width` columns; the text ends with a newline.
pub fn render_value(value: &Json, width: usize) -> String {
    let mut out = String::new();
    match value {
        // A string alone keeps its lines (a chart, a source).
        Json::String(text) => out.push_str(&format!("{}\n", clean_multiline(text))),
        value => block(&mut out, value, 0, width),
    }
    out
}

/// Whether a value needs lines of its own: a non-empty object, or an array holding one.
fn is_nested(value: &Json) -> bool {
    match value {
        Json::Object(members) => !members.is_empty(),
        Json::Array(items) => items.iter().any(|item| matches!(item, Json::Array(_) | Json::Object(_))),
        _ => false,
    }
}

/// `value` at `indent`, one or more lines.
fn block(out: &mut String, value: &Json, indent: usize, width: usize) {
    match value {
        Json::Array(items) if items.is_empty() => line(out, indent, "(empty)"),
        Json::Object(members) if members.is_empty() => line(out, indent, "(empty)"),
        Json::Array(items) if items.iter().all(|item| matches!(item, Json::Object(_))) => {
            records(out, items, indent, width)
        }
        Json::Array(items) => {
            for (index, item) in items.iter().enumerate() {
                if is_nested(item) || matches!(item, Json::Array(_)) {
                    line(out, indent, &format!("[{}]", index + 1));
                    block(out, item, indent + INDENT, width);
                } else {
                    wrapped(out, indent, "", 0, &cell(item), width);
                }
            }
        }
        Json::Object(members) => object(out, members, indent, width),
        scalar => wrapped(out, indent, "", 0, &cell(scalar), width),
    }
}

/// An object: `key  value` rows aligned on the widest key of a flat value; a nested
/// value goes under its key, indented.
fn object(out: &mut String, members: &[(String, Json)], indent: usize, width: usize) {
    let key_width = members
        .iter()
        .filter(|(_, value)| !is_nested(value))
        .map(|(key, _)| clean(key).chars().count())
        .max()
        .unwrap_or(0);
    for (key, value) in members {
        if is_nested(value) {
            line(out, indent, &clean(key));
            block(out, value, indent + INDENT, width);
        } else {
            wrapped(out, indent, &clean(key), key_width, &cell(value), width);
        }
    }
}

/// An array of objects: a table when every cell is flat and it fits, else each object
/// under its index.
fn records(out: &mut String, records: &[Json], indent: usize, width: usize) {
    let flat = records.iter().all(|record| match record {
        Json::Object(members) => members.iter().all(|(_, value)| !is_nested(value)),
        _ => false,
    });
    if flat {
        let text = records_table(records);
        let fits = text.lines().all(|row| indent + row.chars().count() <= width);
        if fits {
            for row in text.lines() {
                line(out, indent, row);
            }
            return;
        }
    }
    for (index, record) in records.iter().enumerate() {
        line(out, indent, &format!("[{}]", index + 1));
        block(out, record, indent + INDENT, width);
    }
}

/// An array of objects as a table with one column per key.
fn records_table(records: &[Json]) -> String {
    let mut columns: Vec<&str> = Vec::new();
    for record in records {
        if let Json::Object(members) = record {
            for (key, _) in members {
                if !columns.contains(&key.as_str()) {
                    columns.push(key);
                }
            }
        }
    }
    let rows: Vec<Vec<String>> = records
        .iter()
        .map(|record| columns.iter().map(|column| record.get(column).map(cell).unwrap_or_default()).collect())
        .collect();
    let header: Vec<String> = columns.iter().map(|column| clean(column)).collect();
    table(Some(&header), &rows)
}

/// One flat value as text on one line: scalars as they read, an array of scalars as
/// `a, b, c`, an empty object or array as `(empty)`.
fn cell(value: &Json) -> String {
    match value {
        Json::Null => "nil".into(),
        Json::String(text) => clean(text),
        Json::Array(items) if items.is_empty() => "(empty)".into(),
        Json::Object(members) if members.is_empty() => "(empty)".into(),
        Json::Array(items) => items.iter().map(cell).collect::<Vec<_>>().join(", "),
        other => clean(&other.to_compact()),
    }
}

/// One line at `indent`.
fn line(out: &mut String, indent: usize, text: &str) {
    let _ = writeln!(out, "{:indent$}{text}", "");
}

/// `key` padded to `key_width`, then `value` cut into pieces that fit `width`, each
/// further piece under the first.
fn wrapped(out: &mut String, indent: usize, key: &str, key_width: usize, value: &str, width: usize) {
    let column = if key_width == 0 { indent } else { indent + key_width + 2 };
    let room = width.saturating_sub(column).max(VALUE_WIDTH_MIN);
    let characters: Vec<char> = value.chars().collect();
    let mut pieces = characters.chunks(room).map(|piece| piece.iter().collect::<String>());
    let first = pieces.next().unwrap_or_default();
    let lead = if key_width == 0 { String::new() } else { format!("{key:<key_width$}  ") };
    line(out, indent, format!("{lead}{first}").trim_end());
    for piece in pieces {
        line(out, column, &piece);
    }
}

/// Left-aligned columns sized to their widest cell, two spaces apart.
pub fn table(header: Option<&[String]>, rows: &[Vec<String>]) -> String {
    let columns = header.map_or(0, <[String]>::len).max(rows.iter().map(Vec::len).max().unwrap_or(0));
    let mut widths = vec![0; columns];
    for row in header.into_iter().chain(rows.iter().map(Vec::as_slice)) {
        for (width, text) in widths.iter_mut().zip(row) {
            *width = (*width).max(text.chars().count());
        }
    }
    let mut out = String::new();
    for row in header.into_iter().chain(rows.iter().map(Vec::as_slice)) {
        let mut line = String::new();
        for (text, width) in row.iter().zip(&widths) {
            let _ = write!(line, "{text:<width$}  ");
        }
        out.push_str(line.trim_end());
        out.push('\n');
    }
    out
}

/// Text for one line of a table: control characters escaped.
pub fn clean(text: &str) -> String {
    text.chars().flat_map(|c| if c.is_control() { c.escape_default().collect() } else { vec![c] }).collect()
}

/// Text printed on its own: newlines and tabs kept, other control characters
/// (terminal escapes from node data) escaped.
pub fn clean_multiline(text: &str) -> String {
    text.chars()
        .flat_map(|c| if c.is_control() && c != '\n' && c != '\t' { c.escape_default().collect() } else { vec![c] })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn render(text: &str) -> String {
        render_value(&Json::parse(text).unwrap(), usize::MAX)
    }

    fn render_in(text: &str, width: usize) -> String {
        render_value(&Json::parse(text).unwrap(), width)
    }

    #[test]
    fn array_of_objects_is_a_table_with_the_union_of_keys_in_first_seen_order() {
        let out = render(r#"[{"id":"poa","state":"running"},{"id":"linear","version":"0.1.0","state":"disabled"}]"#);
        assert_eq!(
            out,
            "id      state     version\n\
             poa     running\n\
             linear  disabled  0.1.0\n"
        );
    }

    #[test]
    fn object_is_two_aligned_columns() {
        let out = render(r#"{"height":42,"head":"ab12","finalized":true}"#);
        assert_eq!(out, "height     42\nhead       ab12\nfinalized  true\n");
    }

    #[test]
    fn array_of_scalars_prints_one_per_line() {
        assert_eq!(render(r#"["main","iot",3,null]"#), "main\niot\n3\nnil\n");
    }

    #[test]
    fn scalars_print_as_is_and_strings_without_quotes() {
        assert_eq!(render(r#""hello""#), "hello\n");
        assert_eq!(render("12"), "12\n");
        assert_eq!(render("1.5"), "1.5\n");
        assert_eq!(render("false"), "false\n");
        assert_eq!(render("null"), "nil\n");
    }

    #[test]
    fn arrays_of_scalars_in_cells_read_as_lists() {
        let out = render(r#"[{"id":"a","kinds":["consensus","radio"],"config":{}}]"#);
        assert_eq!(out, "id  kinds             config\na   consensus, radio  (empty)\n");
        assert_eq!(render(r#"{"chains":["main","iot"]}"#), "chains  main, iot\n");
    }

    #[test]
    fn nested_objects_are_indented_tables_under_their_key() {
        let out = render(
            r#"{"name":"node-1","chains":[{"id":"main","height":7},{"id":"iot","height":2}],"network":{"peers":3,"listen":"tcp/7400"},"version":"0.1.0"}"#,
        );
        assert_eq!(
            out,
            "name     node-1\n\
             chains\n\
             \x20 id    height\n\
             \x20 main  7\n\
             \x20 iot   2\n\
             network\n\
             \x20 peers   3\n\
             \x20 listen  tcp/7400\n\
             version  0.1.0\n"
        );
    }

    #[test]
    fn records_with_nested_values_are_shown_one_by_one() {
        let out = render(r#"[{"id":"poa","config":{"n":1}},{"id":"linear"}]"#);
        assert_eq!(out, "[1]\n  id  poa\n  config\n    n  1\n[2]\n  id  linear\n");
        let out = render(r#"[[1,2],{"a":1},3]"#);
        assert_eq!(out, "[1]\n  1\n  2\n[2]\n  a  1\n3\n");
    }

    #[test]
    fn a_table_wider_than_the_terminal_is_shown_one_record_at_a_time() {
        let text = r#"[{"id":"poa","hash":"0123456789abcdef0123456789abcdef"},{"id":"linear","hash":"ff"}]"#;
        assert_eq!(render_in(text, 60), "id      hash\npoa     0123456789abcdef0123456789abcdef\nlinear  ff\n");
        assert_eq!(
            render_in(text, 30),
            "[1]\n  id    poa\n  hash  0123456789abcdef012345\n        6789abcdef\n[2]\n  id    linear\n  hash  ff\n"
        );
    }

    #[test]
    fn a_long_value_wraps_under_its_column_and_every_line_fits() {
        let hash = "ab".repeat(32);
        let out = render_in(&format!(r#"{{"state_digest":"{hash}","height":7}}"#), 40);
        let column = " ".repeat(14);
        let expected = format!(
            "state_digest  {}\n{column}{}\n{column}{}\nheight        7\n",
            &hash[..26],
            &hash[26..52],
            &hash[52..]
        );
        assert_eq!(out, expected);
        for row in out.lines() {
            assert!(row.chars().count() <= 40, "{row:?}");
        }
    }

    #[test]
    fn deep_nesting_keeps_a_usable_value_column() {
        let out = render_in(r#"{"a":{"b":{"c":{"d":"0123456789012345678901234"}}}}"#, 10);
        assert_eq!(out, "a\n  b\n    c\n      d  01234567890123456789\n         01234\n");
    }

    #[test]
    fn empty_tables_say_so() {
        assert_eq!(render("[]"), "(empty)\n");
        assert_eq!(render("{}"), "(empty)\n");
        assert_eq!(render(r#"{"evidence":[]}"#), "evidence  (empty)\n");
    }

    #[test]
    fn control_characters_in_cells_are_escaped() {
        assert_eq!(render(r#"{"memo":"a\nb\u001b[2J"}"#), "memo  a\\nb\\u{1b}[2J\n");
        assert_eq!(render(r#""line 1\nline 2\u001b""#), "line 1\nline 2\\u{1b}\n");
    }

    #[test]
    fn several_values_render_in_order() {
        let values = [Json::parse("1").unwrap(), Json::parse(r#"["x"]"#).unwrap()];
        assert_eq!(render_values(&values, usize::MAX), "1\nx\n");
    }

    #[test]
    fn table_pads_columns_to_the_widest_cell_counting_characters() {
        let rows = vec![vec!["é".to_string(), "1".into()], vec!["abc".into(), "2".into()]];
        assert_eq!(table(None, &rows), "é    1\nabc  2\n");
    }
}
