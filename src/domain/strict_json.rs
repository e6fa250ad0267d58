//! JSON parsing for authenticated bodies: duplicate keys are refused (two
//! readers could disagree on which one counts) and so is nesting of depth 33
//! or more, where the top-level value is depth 1.

use std::fmt;

use serde::de::{DeserializeSeed, Error as _, MapAccess, SeqAccess, Visitor};
use serde_json::{Map, Value};

/// The deepest value accepted; the top-level value is depth 1.
pub const MAX_DEPTH: usize = 32;

/// Why a body is not acceptable JSON.
#[derive(Debug, thiserror::Error)]
pub enum JsonError {
    /// The bytes are not UTF-8.
    #[error("the body is not valid UTF-8")]
    NotUtf8,
    /// Syntax error, duplicate key, too deep, trailing data.
    #[error("the body is not valid JSON: {0}")]
    Invalid(#[from] serde_json::Error),
}

/// Parses `body`, ignoring one leading UTF-8 byte-order mark.
pub fn parse(body: &[u8]) -> Result<Value, JsonError> {
    let text = std::str::from_utf8(body).map_err(|_| JsonError::NotUtf8)?;
    let text = text.strip_prefix('\u{feff}').unwrap_or(text);
    let mut deserializer = serde_json::Deserializer::from_str(text);
    let value = Strict { depth: 1 }.deserialize(&mut deserializer)?;
    deserializer.end()?;
    Ok(value)
}

/// A value at `depth`.
#[derive(Clone, Copy)]
struct Strict {
    depth: usize,
}

impl Strict {
    fn child(self) -> Strict {
        Strict {
            depth: self.depth + 1,
        }
    }
}

impl<'de> DeserializeSeed<'de> for Strict {
    type Value = Value;

    fn deserialize<D: serde::Deserializer<'de>>(self, deserializer: D) -> Result<Value, D::Error> {
        if self.depth > MAX_DEPTH {
            return Err(D::Error::custom(format!(
                "nesting deeper than {MAX_DEPTH} levels"
            )));
        }
        deserializer.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for Strict {
    type Value = Value;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a JSON value")
    }

    fn visit_bool<E>(self, v: bool) -> Result<Value, E> {
        Ok(Value::Bool(v))
    }

    fn visit_i64<E>(self, v: i64) -> Result<Value, E> {
        Ok(Value::from(v))
    }

    fn visit_u64<E>(self, v: u64) -> Result<Value, E> {
        Ok(Value::from(v))
    }

    fn visit_f64<E>(self, v: f64) -> Result<Value, E> {
        Ok(serde_json::Number::from_f64(v).map_or(Value::Null, Value::Number))
    }

    fn visit_str<E>(self, v: &str) -> Result<Value, E> {
        Ok(Value::String(v.to_owned()))
    }

    fn visit_string<E>(self, v: String) -> Result<Value, E> {
        Ok(Value::String(v))
    }

    fn visit_unit<E>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Value, A::Error> {
        let mut items = Vec::new();
        while let Some(item) = seq.next_element_seed(self.child())? {
            items.push(item);
        }
        Ok(Value::Array(items))
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Value, A::Error> {
        let mut object = Map::new();
        while let Some(key) = map.next_key::<String>()? {
            if object.contains_key(&key) {
                return Err(A::Error::custom(format!("duplicate key \"{key}\"")));
            }
            let value = map.next_value_seed(self.child())?;
            object.insert(key, value);
        }
        Ok(Value::Object(object))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn nested(depth: usize) -> String {
        // `depth` nested arrays around a scalar: the scalar is at depth + 1.
        format!("{}1{}", "[".repeat(depth), "]".repeat(depth))
    }

    #[test]
    fn depth_32_is_accepted_and_33_refused() {
        assert!(parse(nested(31).as_bytes()).is_ok(), "scalar at depth 32");
        assert!(parse(nested(32).as_bytes()).is_err(), "scalar at depth 33");
        assert!(parse(b"[]").is_ok());
        let deep_empty = format!("{}{}", "[".repeat(33), "]".repeat(33));
        assert!(parse(deep_empty.as_bytes()).is_err(), "33 empty arrays");
        let ok_empty = format!("{}{}", "[".repeat(32), "]".repeat(32));
        assert!(parse(ok_empty.as_bytes()).is_ok(), "32 empty arrays");
    }

    #[test]
    fn duplicate_keys_are_refused_at_any_level() {
        assert!(parse(br#"{"a":1,"a":2}"#).is_err());
        assert!(parse(br#"{"a":{"b":1,"b":1}}"#).is_err());
        assert!(parse(br#"{"a":1,"b":{"a":2}}"#).is_ok());
    }

    #[test]
    fn a_bom_is_ignored_and_bad_utf8_refused() {
        let with_bom = b"\xef\xbb\xbf{\"a\":\"1\"}";
        assert_eq!(parse(with_bom).unwrap()["a"], "1");
        assert!(matches!(
            parse(b"{\"a\":\"\xff\"}"),
            Err(JsonError::NotUtf8)
        ));
    }

    #[test]
    fn trailing_data_and_empty_input_are_refused() {
        assert!(parse(b"{} {}").is_err());
        assert!(parse(b"").is_err());
        assert!(parse(b"   ").is_err());
    }
}
