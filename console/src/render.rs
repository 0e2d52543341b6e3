//! Render values from the node as aligned text tables.
//!
//! - an array of objects: a table with a column per key (union of keys, first-seen order);
//! - an object: two columns, key and value;
//! - an array of scalars: one per line;
//! - a scalar: as is (strings without quotes, `nil` for null);
//! - nested values inside cells: compact JSON.

use crate::json::Json;
use std::fmt::Write;

/// Render every value of a result, one after the other.
pub fn render_values(values: &[Json]) -> String {
    values.iter().map(render_value).collect()
}

/// Render one value; the text ends with a newline.
pub fn render_value(value: &Json) -> String {
    match value {
        Json::Array(items) if items.is_empty() => "(empty)\n".into(),
        Json::Object(members) if members.is_empty() => "(empty)\n".into(),
        Json::Array(items) if items.iter().all(|item| matches!(item, Json::Object(_))) => render_records(items),
        Json::Array(items) => items.iter().map(|item| format!("{}\n", cell(item))).collect(),
        Json::Object(members) => {
            let rows: Vec<Vec<String>> = members.iter().map(|(key, value)| vec![clean(key), cell(value)]).collect();
            table(None, &rows)
        }
        Json::Null => "nil\n".into(),
        Json::String(text) => format!("{}\n", clean_multiline(text)),
        scalar => format!("{}\n", scalar.to_compact()),
    }
}

/// An array of objects as a table with one column per key.
fn render_records(records: &[Json]) -> String {
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

/// One cell: scalars as text, nested values as compact JSON, on one line.
fn cell(value: &Json) -> String {
    match value {
        Json::Null => "nil".into(),
        Json::String(text) => clean(text),
        other => clean(&other.to_compact()),
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
        render_value(&Json::parse(text).unwrap())
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
    fn nested_values_in_cells_are_compact_json() {
        let out = render(r#"[{"id":"a","kinds":["consensus","radio"],"config":{"n":1}}]"#);
        assert_eq!(out, "id  kinds                  config\na   [\"consensus\",\"radio\"]  {\"n\":1}\n");
        let out = render(r#"{"peers":[{"addr":"x"}]}"#);
        assert_eq!(out, "peers  [{\"addr\":\"x\"}]\n");
    }

    #[test]
    fn empty_tables_say_so() {
        assert_eq!(render("[]"), "(empty)\n");
        assert_eq!(render("{}"), "(empty)\n");
    }

    #[test]
    fn control_characters_in_cells_are_escaped() {
        assert_eq!(render(r#"{"memo":"a\nb\u001b[2J"}"#), "memo  a\\nb\\u{1b}[2J\n");
        assert_eq!(render(r#""line 1\nline 2\u001b""#), "line 1\nline 2\\u{1b}\n");
    }

    #[test]
    fn several_values_render_in_order() {
        let values = [Json::parse("1").unwrap(), Json::parse(r#"["x"]"#).unwrap()];
        assert_eq!(render_values(&values), "1\nx\n");
    }

    #[test]
    fn table_pads_columns_to_the_widest_cell_counting_characters() {
        let rows = vec![vec!["é".to_string(), "1".into()], vec!["abc".into(), "2".into()]];
        assert_eq!(table(None, &rows), "é    1\nabc  2\n");
    }
}
