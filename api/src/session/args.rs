//! Read the arguments of console functions with messages that name the function, the
//! argument and the type expected: `chain("main"):block: height must be an integer, got
//! string "three"`.
//!
//! Bindings take their arguments as a [`MultiValue`] and read them here rather than
//! through mlua's conversions, whose messages name a Rust type and count a method's
//! receiver as argument 1.

use crate::crypto;
use mlua::{MultiValue, Table, Value};
use nest_sdk::{Hash32, PublicKey};
use std::fmt::Display;

/// Characters of a wrong string quoted in a message; longer ones are cut with `…`.
const QUOTED_CHARS_MAX: usize = 40;

/// A Lua error with `message`.
pub fn runtime(message: impl Into<String>) -> mlua::Error {
    mlua::Error::RuntimeError(message.into())
}

/// A value as a message shows what was given: `nil`, `string "three"`, `number 1.5`, `table`.
pub fn describe(value: &Value) -> String {
    match value {
        Value::Nil => "nil".into(),
        Value::Boolean(boolean) => format!("boolean {boolean}"),
        Value::Integer(integer) => format!("number {integer}"),
        Value::Number(number) => format!("number {number:?}"),
        Value::String(text) => {
            let text = text.to_string_lossy();
            let quoted: String = text.chars().take(QUOTED_CHARS_MAX).collect();
            let cut = if text.chars().count() > QUOTED_CHARS_MAX { "…" } else { "" };
            format!("string {:?}", format!("{quoted}{cut}"))
        }
        other => other.type_name().to_string(),
    }
}

/// `value` as a non-negative integer (an integral float counts), or what is wrong with it.
fn integer(value: &Value) -> Result<u64, String> {
    match value {
        Value::Integer(integer) => u64::try_from(*integer).map_err(|_| format!("must not be negative, got {integer}")),
        // 2^64 is exactly representable; every integral float below it fits a u64.
        Value::Number(number) if number.fract() == 0.0 && *number >= 0.0 && *number < 18_446_744_073_709_551_616.0 => {
            Ok(*number as u64)
        }
        Value::Number(number) if number.fract() == 0.0 && *number < 0.0 => {
            Err(format!("must not be negative, got {number}"))
        }
        other => Err(format!("must be an integer, got {}", describe(other))),
    }
}

fn text(value: &Value) -> Result<String, String> {
    match value {
        Value::String(text) => text.to_str().map(|t| t.to_string()).map_err(|_| "must be UTF-8 text".to_string()),
        other => Err(format!("must be a string, got {}", describe(other))),
    }
}

fn boolean(value: &Value) -> Result<bool, String> {
    match value {
        Value::Boolean(boolean) => Ok(*boolean),
        other => Err(format!("must be true or false, got {}", describe(other))),
    }
}

fn table(value: &Value) -> Result<Table, String> {
    match value {
        Value::Table(table) => Ok(table.clone()),
        other => Err(format!("must be a table, got {}", describe(other))),
    }
}

fn optional<T>(value: &Value, read: impl Fn(&Value) -> Result<T, String>) -> Result<Option<T>, String> {
    match value {
        Value::Nil => Ok(None),
        value => read(value).map(Some),
    }
}

/// `value` as an account: 64 hex characters.
fn account(value: &Value) -> Result<PublicKey, String> {
    crypto::account_from_hex(&text(value)?)
}

/// `value` as a hash (transaction, µID, lock): 64 hex characters.
fn hash(value: &Value) -> Result<Hash32, String> {
    crypto::hash_from_hex(&text(value)?)
}

/// The arguments of one call, with the function's name as the operator wrote it.
pub struct Args {
    function: String,
    values: Vec<Value>,
}

macro_rules! readers {
    ($($(#[$doc:meta])* $name:ident, $optional:ident -> $type:ty = $read:expr;)*) => {
        impl Args {
            $(
                $(#[$doc])*
                pub fn $name(&self, index: usize, name: &str) -> mlua::Result<$type> {
                    $read(self.value(index)).map_err(|reason| self.error(format!("{name} {reason}")))
                }

                $(#[$doc])*
                /// Absent or `nil` gives `None`.
                pub fn $optional(&self, index: usize, name: &str) -> mlua::Result<Option<$type>> {
                    optional(self.value(index), $read).map_err(|reason| self.error(format!("{name} {reason}")))
                }
            )*
        }

        impl Fields<'_> {
            $(
                $(#[$doc])*
                pub fn $name(&self, field: &str) -> mlua::Result<$type> {
                    let value = self.get(field)?;
                    $read(&value).map_err(|reason| self.error(field, reason))
                }

                $(#[$doc])*
                /// Absent or `nil` gives `None`.
                pub fn $optional(&self, field: &str) -> mlua::Result<Option<$type>> {
                    let value = self.get(field)?;
                    optional(&value, $read).map_err(|reason| self.error(field, reason))
                }
            )*
        }
    };
}

readers! {
    /// A non-negative integer.
    integer, optional_integer -> u64 = integer;
    /// A string.
    string, optional_string -> String = text;
    /// A boolean.
    boolean, optional_boolean -> bool = boolean;
    /// A table.
    table, optional_table -> Table = table;
    /// An account (64 hex characters).
    account, optional_account -> PublicKey = account;
    /// A hash (64 hex characters).
    hash, optional_hash -> Hash32 = hash;
}

impl Args {
    /// The arguments `values` of `function`.
    pub fn new(function: impl Into<String>, values: MultiValue) -> Args {
        Args { function: function.into(), values: values.into_vec() }
    }

    /// The function's name, as messages show it.
    pub fn function(&self) -> &str {
        &self.function
    }

    /// Argument `index` (from 0, after a method's receiver); `nil` when absent.
    pub fn value(&self, index: usize) -> &Value {
        self.values.get(index).unwrap_or(&Value::Nil)
    }

    /// An error about this call: `function: message`.
    pub fn error(&self, message: impl Display) -> mlua::Error {
        runtime(format!("{}: {message}", self.function))
    }

    /// The fields of table argument `index`; an absent or `nil` argument is an empty table.
    pub fn fields(&self, lua: &mlua::Lua, index: usize, name: &str) -> mlua::Result<Fields<'_>> {
        let table = self.optional_table(index, name)?.map_or_else(|| lua.create_table(), Ok)?;
        Ok(Fields { function: &self.function, table })
    }

    /// The fields of table argument `index`, which must be given.
    pub fn required_fields(&self, index: usize, name: &str) -> mlua::Result<Fields<'_>> {
        Ok(Fields { function: &self.function, table: self.table(index, name)? })
    }
}

/// The fields of a table argument (`tx.transfer{to = ..., amount = ...}`).
pub struct Fields<'a> {
    function: &'a str,
    table: Table,
}

impl Fields<'_> {
    /// The function's name, as messages show it.
    pub fn function(&self) -> &str {
        self.function
    }

    /// The table itself.
    pub fn as_table(&self) -> &Table {
        &self.table
    }

    /// Field `field`, read raw (no metamethods run).
    pub fn get(&self, field: &str) -> mlua::Result<Value> {
        self.table.raw_get(field)
    }

    /// An error about field `field`: `function: field reason`.
    pub fn error(&self, field: &str, reason: impl Display) -> mlua::Error {
        runtime(format!("{}: {field} {reason}", self.function))
    }

    /// The chain a call names with `chain = "id"`, `"main"` by default.
    pub fn chain(&self) -> mlua::Result<String> {
        Ok(self.optional_string("chain")?.unwrap_or_else(|| "main".into()))
    }
}

/// The receiver of a method call such as `chain("main"):block(3)`: the text of its field
/// `key` (`"main"`) and the arguments after it. A call with a dot instead of a colon is
/// told how to call the method, `usage` (`chain(id):block`) naming it.
pub fn method(values: MultiValue, key: &str, usage: &str) -> mlua::Result<(String, MultiValue)> {
    let mut values = values.into_vec();
    let name = match values.first() {
        Some(Value::Table(this)) => match this.raw_get::<Value>(key)? {
            Value::String(name) => name.to_str().ok().map(|name| name.to_string()),
            _ => None,
        },
        _ => None,
    };
    match name {
        Some(name) => {
            values.remove(0);
            Ok((name, MultiValue::from_vec(values)))
        }
        None => Err(runtime(format!("{usage}: call it with a colon, as in {usage}(...)"))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use mlua::{Function, Lua};

    /// A Lua function `f` that reads its arguments with `read` and returns nothing.
    fn call(read: impl Fn(&Lua, Args) -> mlua::Result<()> + Send + 'static, code: &str) -> String {
        let lua = Lua::new();
        let function: Function = lua.create_function(move |lua, values| read(lua, Args::new("f", values))).unwrap();
        lua.globals().set("f", function).unwrap();
        match lua.load(code).exec() {
            Ok(()) => "ok".into(),
            Err(error) => message(&error),
        }
    }

    /// The message a binding raised.
    fn message(error: &mlua::Error) -> String {
        match error {
            mlua::Error::CallbackError { cause, .. } => message(cause),
            mlua::Error::RuntimeError(message) => message.clone(),
            other => panic!("unexpected {other}"),
        }
    }

    #[test]
    fn wrong_types_are_named_with_the_argument_and_the_value() {
        let height = |_: &Lua, args: Args| args.integer(0, "height").map(drop);
        assert_eq!(call(height, "f(3)"), "ok");
        assert_eq!(call(height, "f(3.0)"), "ok");
        assert_eq!(call(height, "f('three')"), "f: height must be an integer, got string \"three\"");
        assert_eq!(call(height, "f('3')"), "f: height must be an integer, got string \"3\"");
        assert_eq!(call(height, "f(1.5)"), "f: height must be an integer, got number 1.5");
        assert_eq!(call(height, "f(-1)"), "f: height must not be negative, got -1");
        assert_eq!(call(height, "f(-2.0)"), "f: height must not be negative, got -2");
        assert_eq!(call(height, "f(1e30)"), "f: height must be an integer, got number 1e30");
        assert_eq!(call(height, "f()"), "f: height must be an integer, got nil");
        assert_eq!(call(height, "f({})"), "f: height must be an integer, got table");
        assert_eq!(call(height, "f(true)"), "f: height must be an integer, got boolean true");
        assert_eq!(call(height, "f(print)"), "f: height must be an integer, got function");
        let id = |_: &Lua, args: Args| args.optional_string(0, "id").map(drop);
        assert_eq!(call(id, "f()"), "ok");
        assert_eq!(call(id, "f(1)"), "f: id must be a string, got number 1");
        assert_eq!(call(id, "f('\\255')"), "f: id must be UTF-8 text");
        let long = |_: &Lua, args: Args| args.boolean(0, "flag").map(drop);
        assert_eq!(
            call(long, "f(string.rep('x', 50))"),
            format!("f: flag must be true or false, got string \"{}…\"", "x".repeat(40))
        );
    }

    #[test]
    fn table_fields_are_named_and_an_account_must_be_64_hex_characters() {
        let transfer = |lua: &Lua, args: Args| {
            let fields = args.fields(lua, 0, "transfer")?;
            fields.account("to")?;
            fields.integer("amount")?;
            fields.optional_integer("fee")?;
            Ok(())
        };
        let to = "ab".repeat(32);
        assert_eq!(call(transfer, &format!("f{{to = '{to}', amount = 5}}")), "ok");
        assert_eq!(call(transfer, "f{to = 'abc', amount = 5}"), "f: to must be 64 hex characters, got 3");
        assert_eq!(call(transfer, "f{to = 7}"), "f: to must be a string, got number 7");
        assert_eq!(
            call(transfer, &format!("f{{to = '{to}', amount = '10'}}")),
            "f: amount must be an integer, got string \"10\""
        );
        assert_eq!(
            call(transfer, &format!("f{{to = '{to}', amount = 1, fee = -5}}")),
            "f: fee must not be negative, got -5"
        );
        assert_eq!(call(transfer, "f(5)"), "f: transfer must be a table, got number 5");
        let required = |_: &Lua, args: Args| args.required_fields(0, "order").map(drop);
        assert_eq!(call(required, "f()"), "f: order must be a table, got nil");
    }

    #[test]
    fn a_method_called_with_a_dot_says_to_use_a_colon() {
        let lua = Lua::new();
        let function = lua
            .create_function(|_, values: MultiValue| {
                let (id, rest) = method(values, "id", "chain(id):block")?;
                Args::new(format!("chain({id:?}):block"), rest).integer(0, "height")
            })
            .unwrap();
        let object = lua.create_table().unwrap();
        object.set("id", "main").unwrap();
        object.set("block", function).unwrap();
        lua.globals().set("c", object).unwrap();
        assert_eq!(lua.load("return c:block(4)").eval::<u64>().unwrap(), 4);
        for dot_call in ["return c.block(4)", "return c.block{4}", "return c.block()"] {
            let error = lua.load(dot_call).eval::<u64>().expect_err(dot_call);
            assert_eq!(message(&error), "chain(id):block: call it with a colon, as in chain(id):block(...)");
        }
        let error = lua.load("return c:block('x')").eval::<u64>().expect_err("a wrong height");
        assert_eq!(message(&error), "chain(\"main\"):block: height must be an integer, got string \"x\"");
    }
}
