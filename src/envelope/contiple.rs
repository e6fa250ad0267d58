//! Contiple's envelope: `{"data":{..response fields..}}` on success,
//! `{"error":{"code","message","detail"}}` otherwise. Values are strings or
//! null, as the seed shows; codes are strings (DESIGN §3).

use serde::{Serialize, Serializer, ser::SerializeMap};

use super::ErrorReply;
use crate::backend::Record;

/// `{"data":{...}}` with the route's response fields, in their order.
pub fn data_body(fields: &[String], record: &Record) -> Vec<u8> {
    #[derive(Serialize)]
    struct Data<'a> {
        data: Fields<'a>,
    }
    to_vec(&Data {
        data: Fields { fields, record },
    })
}

/// `{"error":{"code":..,"message":..,"detail":..}}`.
pub fn error_body(reply: ErrorReply<'_>) -> Vec<u8> {
    #[derive(Serialize)]
    struct Error<'a> {
        error: Inner<'a>,
    }
    #[derive(Serialize)]
    struct Inner<'a> {
        code: &'a str,
        message: &'a str,
        detail: Option<&'a str>,
    }
    to_vec(&Error {
        error: Inner {
            code: reply.code.as_str(),
            message: reply.code.message(),
            detail: reply.detail,
        },
    })
}

struct Fields<'a> {
    fields: &'a [String],
    record: &'a Record,
}

impl Serialize for Fields<'_> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let mut map = serializer.serialize_map(Some(self.fields.len()))?;
        for field in self.fields {
            map.serialize_entry(field, &self.record.get(field))?;
        }
        map.end()
    }
}

fn to_vec(value: &impl Serialize) -> Vec<u8> {
    // Serializing strings, options and maps with string keys cannot fail.
    serde_json::to_vec(value)
        .unwrap_or_else(|_| br#"{"error":{"code":"internal","message":"","detail":null}}"#.to_vec())
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use serde_json::{Value, json};

    use super::*;
    use crate::error::ErrorCode;

    #[test]
    fn data_carries_exactly_the_response_fields() {
        let record = Record::new(
            Arc::from(vec!["userName".into(), "id".into(), "phone".into()]),
            vec![Some("홍길동".into()), None, Some("010-1234-5678".into())],
        );
        let body = data_body(&["userName".into(), "id".into(), "missing".into()], &record);
        let value: Value = serde_json::from_slice(&body).unwrap();
        assert_eq!(
            value,
            json!({"data":{"userName":"홍길동","id":null,"missing":null}})
        );
    }

    #[test]
    fn errors_have_code_message_and_detail() {
        let body = error_body(ErrorReply {
            status: ErrorCode::NoResult.status(),
            code: ErrorCode::NoResult,
            detail: None,
        });
        let value: Value = serde_json::from_slice(&body).unwrap();
        assert_eq!(value["error"]["code"], "no_result");
        assert_eq!(value["error"]["detail"], Value::Null);
        assert!(value["error"]["message"].as_str().unwrap().len() > 5);
    }
}
