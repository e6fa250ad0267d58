//! The request fields a route looks up by, read from the top-level JSON
//! object of an authenticated body.

use serde_json::Value;

use super::strict_json::{self, JsonError};

/// Why a body does not make a lookup request.
#[derive(Debug, thiserror::Error)]
pub enum FieldsError {
    /// Not UTF-8 or not valid JSON.
    #[error(transparent)]
    Json(#[from] JsonError),
    /// Valid JSON whose top level is not an object.
    #[error("the body must be a JSON object")]
    NotAnObject,
    /// A required field is absent or null.
    #[error("the field \"{0}\" is required")]
    Missing(String),
    /// A field is an object, array or boolean.
    #[error("the field \"{0}\" must be a string or a number")]
    WrongType(String),
}

/// Which body fields a route reads, and which may be absent.
#[derive(Debug, Clone)]
pub struct FieldSpec {
    names: Vec<String>,
    optional: Vec<bool>,
}

impl FieldSpec {
    /// `names` in lookup order; `optional` names a subset of them.
    pub fn new(names: Vec<String>, optional: &[String]) -> Self {
        let optional = names.iter().map(|n| optional.contains(n)).collect();
        Self { names, optional }
    }

    /// The field names, in order.
    pub fn names(&self) -> &[String] {
        &self.names
    }

    /// The position of `name`, if the route reads it.
    pub fn position(&self, name: &str) -> Option<usize> {
        self.names.iter().position(|n| n == name)
    }
}

/// The route's request fields, in [`FieldSpec`] order; `None` is an absent
/// optional field (looked up as null).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LookupRequest(Vec<Option<String>>);

impl LookupRequest {
    /// Parses a body. Fields the route does not name are ignored; numbers
    /// are accepted and rendered as their JSON text.
    pub fn parse(body: &[u8], spec: &FieldSpec) -> Result<LookupRequest, FieldsError> {
        let Value::Object(mut object) = strict_json::parse(body)? else {
            return Err(FieldsError::NotAnObject);
        };
        let mut values = Vec::with_capacity(spec.names.len());
        for (name, optional) in spec.names.iter().zip(&spec.optional) {
            let value = match object.remove(name) {
                None | Some(Value::Null) if *optional => None,
                None | Some(Value::Null) => return Err(FieldsError::Missing(name.clone())),
                Some(Value::String(s)) => Some(s),
                Some(Value::Number(n)) => Some(n.to_string()),
                Some(_) => return Err(FieldsError::WrongType(name.clone())),
            };
            values.push(value);
        }
        Ok(LookupRequest(values))
    }

    /// Builds a request from values already in spec order (tests, benches).
    pub fn from_values(values: Vec<Option<String>>) -> Self {
        LookupRequest(values)
    }

    /// The value at `index` of the spec, `None` when absent.
    pub fn get(&self, index: usize) -> Option<&str> {
        self.0.get(index).and_then(|v| v.as_deref())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec() -> FieldSpec {
        FieldSpec::new(vec!["callNum".into(), "nation".into()], &["nation".into()])
    }

    #[test]
    fn fields_are_read_in_spec_order_and_extras_ignored() {
        let req = LookupRequest::parse(
            br#"{"nation":"korea","callNum":"1","extra":{"x":[1]}}"#,
            &spec(),
        )
        .unwrap();
        assert_eq!(req.get(0), Some("1"));
        assert_eq!(req.get(1), Some("korea"));
    }

    #[test]
    fn numbers_are_stringified_and_optional_fields_may_be_absent() {
        let req = LookupRequest::parse(br#"{"callNum":1021}"#, &spec()).unwrap();
        assert_eq!(req.get(0), Some("1021"));
        assert_eq!(req.get(1), None);
    }

    #[test]
    fn malformed_bodies_are_refused_with_their_reason() {
        let cases: &[(&[u8], &str)] = &[
            (br#"{"nation":"korea"}"#, "required"),
            (br#"{"callNum":null}"#, "required"),
            (br#"{"callNum":true}"#, "string or a number"),
            (br#"{"callNum":["1"]}"#, "string or a number"),
            (br#"["1"]"#, "JSON object"),
            (b"", "not valid JSON"),
            (b"\xff", "UTF-8"),
        ];
        for (body, expected) in cases {
            let err = LookupRequest::parse(body, &spec()).unwrap_err().to_string();
            assert!(err.contains(expected), "{err} should mention {expected}");
        }
    }
}
