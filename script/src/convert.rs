//! Convert Lua results to JSON, bounded in size and depth, without running Lua code.
//!
//! `nil` and mlua's null (a JSON null seen from Lua) → null; booleans, integers and finite floats → themselves (NaN and infinities →
//! `"nan"`, `"inf"`, `"-inf"`); strings → strings (invalid UTF-8 replaced); a non-empty
//! table whose keys are exactly `1..n` → an array; any other table → an object whose keys
//! are the Lua keys as text; functions, userdata, threads → `"<function>"`, `"<userdata>"`…;
//! a table inside itself → `"<cycle>"`; tables nested deeper than [`DEPTH_MAX`] → `"<depth>"`.
//! Tables are read raw (no `__index`, `__pairs`, `__tostring`).

use mlua::{Table, Value};
use serde_json::{Map, Number, Value as Json};
use std::ffi::c_void;

/// Deepest table nesting converted; deeper tables become `"<depth>"`.
pub(super) const DEPTH_MAX: usize = 32;

/// The result would exceed its output budget.
#[derive(Debug, PartialEq, Eq)]
pub(super) struct OutputExceeded;

/// Converts return values, charging their approximate JSON text length to `bytes_left`.
pub(super) fn values_to_json(values: &[Value], bytes_left: &mut usize) -> Result<Vec<Json>, OutputExceeded> {
    let mut converter = Converter { bytes_left, ancestors: Vec::new() };
    values.iter().map(|value| converter.convert(value)).collect()
}

struct Converter<'a> {
    bytes_left: &'a mut usize,
    /// Tables being converted, outermost first: the current path, to detect cycles.
    ancestors: Vec<*const c_void>,
}

impl Converter<'_> {
    fn charge(&mut self, bytes: usize) -> Result<(), OutputExceeded> {
        *self.bytes_left = self.bytes_left.checked_sub(bytes).ok_or(OutputExceeded)?;
        Ok(())
    }

    fn convert(&mut self, value: &Value) -> Result<Json, OutputExceeded> {
        let json = match value {
            // mlua's null (what a JSON null becomes in Lua) is null again, not a pointer.
            Value::Nil => Json::Null,
            Value::LightUserData(pointer) if pointer.0.is_null() => Json::Null,
            Value::Boolean(boolean) => Json::Bool(*boolean),
            Value::Integer(integer) => Json::Number((*integer).into()),
            Value::Number(number) => float_to_json(*number),
            Value::String(text) => Json::String(text.to_string_lossy()),
            Value::Table(table) => return self.table(table),
            other => Json::String(format!("<{}>", other.type_name())),
        };
        self.charge(text_bytes(&json) + 1)?;
        Ok(json)
    }

    fn table(&mut self, table: &Table) -> Result<Json, OutputExceeded> {
        let pointer = table.to_pointer();
        let marker = if self.ancestors.contains(&pointer) {
            Some("<cycle>")
        } else if self.ancestors.len() >= DEPTH_MAX {
            Some("<depth>")
        } else {
            None
        };
        if let Some(marker) = marker {
            self.charge(marker.len() + 3)?;
            return Ok(Json::String(marker.to_string()));
        }
        self.charge(2)?;
        self.ancestors.push(pointer);
        let json = match is_array(table) {
            true => self.array(table),
            false => self.object(table),
        };
        self.ancestors.pop();
        json
    }

    fn array(&mut self, table: &Table) -> Result<Json, OutputExceeded> {
        let mut items = Vec::new();
        for index in 1..=table.raw_len() {
            let item = table.raw_get::<Value>(index).unwrap_or(Value::Nil);
            items.push(self.convert(&item)?);
        }
        Ok(Json::Array(items))
    }

    fn object(&mut self, table: &Table) -> Result<Json, OutputExceeded> {
        let mut object = Map::new();
        for pair in table.pairs::<Value, Value>() {
            let Ok((key, value)) = pair else { break };
            let key = key_text(&key);
            self.charge(key.len() + 3)?;
            let value = self.convert(&value)?;
            object.insert(key, value);
        }
        Ok(Json::Object(object))
    }
}

/// Whether the table's keys are exactly `1..n` for some n ≥ 1.
fn is_array(table: &Table) -> bool {
    let length = table.raw_len();
    if length == 0 {
        return false;
    }
    let mut keys = 0usize;
    for pair in table.pairs::<Value, Value>() {
        let Ok((key, _)) = pair else { return false };
        let in_range = matches!(key, Value::Integer(index) if index >= 1 && (index as u64) <= length as u64);
        keys += 1;
        if !in_range || keys > length {
            return false;
        }
    }
    keys == length
}

fn float_to_json(number: f64) -> Json {
    match Number::from_f64(number) {
        Some(number) => Json::Number(number),
        None if number.is_nan() => Json::String("nan".to_string()),
        None if number > 0.0 => Json::String("inf".to_string()),
        None => Json::String("-inf".to_string()),
    }
}

/// A key as object-key text: strings as they are, numbers and booleans as Lua prints them.
fn key_text(key: &Value) -> String {
    match key {
        Value::String(text) => text.to_string_lossy(),
        Value::Integer(integer) => integer.to_string(),
        Value::Number(number) => match float_to_json(*number) {
            Json::Number(number) => number.to_string(),
            Json::String(text) => text,
            _ => String::new(),
        },
        Value::Boolean(boolean) => boolean.to_string(),
        other => format!("<{}>", other.type_name()),
    }
}

/// Approximate JSON text length of a scalar.
fn text_bytes(json: &Json) -> usize {
    match json {
        Json::Null => 4,
        Json::Bool(true) => 4,
        Json::Bool(false) => 5,
        Json::Number(number) => number.to_string().len(),
        Json::String(text) => text.len() + 2,
        Json::Array(_) | Json::Object(_) => 2,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_null_from_json_converts_back_to_null_not_to_a_pointer() {
        let lua = mlua::Lua::new();
        let table = lua.create_table().unwrap();
        table.raw_set("reported", Value::NULL).unwrap();
        let mut budget = 1_000;
        let json = values_to_json(&[Value::NULL, Value::Table(table)], &mut budget).unwrap();
        assert_eq!(json, vec![Json::Null, serde_json::json!({"reported": null})]);
    }
}
