//! v2's embedded formats and how a record crosses between the dialects. The queue stores a
//! message as text (PostgreSQL `text`), so:
//!
//! - `json`: a record's value is stored as its compact JSON text (`{"a":1}`, `"hello"`, `42`);
//!   read back, a message that parses as JSON is that JSON, any other text (a message produced
//!   through `/queue`, say `hello`) is the JSON string `"hello"`.
//! - `binary`: a record's value is base64; its bytes are stored as they are, so they must be
//!   UTF-8 without NUL (422 otherwise); read back, the message's bytes in base64.
//!
//! A key routes as `/queue`'s `key` does (the same hash of the same text: a JSON string key is
//! its string, a binary key its decoded bytes); it is not stored, so records read back carry
//! `"key":null`.

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use serde_json::Value;

use super::KafkaError;

/// An embedded format: what records' keys and values are in a v2 body.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    Json,
    Binary,
}

impl Format {
    /// `"json"` or `"binary"`, as a consumer instance names it (v2's default is binary).
    pub fn parse(name: &str) -> Result<Format, KafkaError> {
        match name {
            "json" => Ok(Format::Json),
            "binary" => Ok(Format::Binary),
            other => Err(KafkaError::InvalidConsumerConfig(format!(
                "format `{other}` is not served here; use `json` or `binary`"
            ))),
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Format::Json => "json",
            Format::Binary => "binary",
        }
    }

    /// Its content type: `application/vnd.kafka.json.v2+json`.
    pub fn content_type(self) -> &'static str {
        match self {
            Format::Json => "application/vnd.kafka.json.v2+json",
            Format::Binary => "application/vnd.kafka.binary.v2+json",
        }
    }

    /// The format a content type names, if it is one of v2's served here.
    pub fn from_content_type(media: &str) -> Option<Format> {
        [Format::Json, Format::Binary]
            .into_iter()
            .find(|f| media.eq_ignore_ascii_case(f.content_type()))
    }

    /// The message text a record's value is stored as.
    pub fn value_to_text(self, value: &Value) -> Result<String, KafkaError> {
        match self {
            Format::Json => Ok(value.to_string()),
            Format::Binary => {
                let bytes = decode(value, "value")?.ok_or_else(|| {
                    KafkaError::invalid("value: a null value cannot be stored by this queue")
                })?;
                String::from_utf8(bytes).map_err(|_| {
                    KafkaError::invalid(
                        "value: the queue stores text: the decoded bytes must be UTF-8",
                    )
                })
            }
        }
    }

    /// The routing key of a record's key (`None` for a null or absent key).
    pub fn key_to_route(self, key: &Value) -> Result<Option<String>, KafkaError> {
        match self {
            Format::Json => Ok(match key {
                Value::Null => None,
                Value::String(s) => Some(s.clone()),
                other => Some(other.to_string()),
            }),
            Format::Binary => {
                Ok(decode(key, "key")?.map(|bytes| String::from_utf8_lossy(&bytes).into_owned()))
            }
        }
    }

    /// A stored message's text as a record's value.
    pub fn text_to_value(self, text: &str) -> Value {
        match self {
            Format::Json => {
                serde_json::from_str(text).unwrap_or_else(|_| Value::String(text.into()))
            }
            Format::Binary => Value::String(STANDARD.encode(text.as_bytes())),
        }
    }
}

/// A base64 string's bytes; `None` for null.
fn decode(value: &Value, field: &str) -> Result<Option<Vec<u8>>, KafkaError> {
    match value {
        Value::Null => Ok(None),
        Value::String(s) => STANDARD
            .decode(s.as_bytes())
            .map(Some)
            .map_err(|e| KafkaError::invalid(format!("{field}: not valid base64: {e}"))),
        _ => Err(KafkaError::invalid(format!(
            "{field}: the binary format takes base64 strings"
        ))),
    }
}

/// The media types an `Accept` header lists (parameters and spaces dropped); `*/*` when absent.
pub fn accepted(header: Option<&str>) -> Vec<String> {
    match header {
        None => vec!["*/*".to_owned()],
        Some(h) => h
            .split(',')
            .map(|m| {
                m.split(';')
                    .next()
                    .unwrap_or("")
                    .trim()
                    .to_ascii_lowercase()
            })
            .filter(|m| !m.is_empty())
            .collect(),
    }
}

/// Whether an `Accept` header takes the v2 replies without embedded data.
pub fn accepts_v2(header: Option<&str>) -> bool {
    accepted(header).iter().any(|m| {
        matches!(
            m.as_str(),
            "*/*"
                | "application/*"
                | "application/json"
                | super::V2_JSON
                | "application/vnd.kafka+json"
        )
    })
}

/// Whether a request body's content type is one of v2's for bodies without embedded data.
pub fn is_v2_body(media: &str) -> bool {
    let media = media.to_ascii_lowercase();
    matches!(
        media.as_str(),
        super::V2_JSON | "application/vnd.kafka+json" | "application/json"
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn json_values_round_trip_through_text() {
        for value in [
            json!({"foo": "bar"}),
            json!("hello"),
            json!(42),
            json!(null),
        ] {
            let text = Format::Json.value_to_text(&value).unwrap();
            assert_eq!(Format::Json.text_to_value(&text), value);
        }
        // Text from the native dialect that is not JSON reads as a JSON string.
        assert_eq!(
            Format::Json.text_to_value("hello world"),
            json!("hello world")
        );
    }

    #[test]
    fn binary_values_are_base64_of_the_stored_bytes() {
        let text = Format::Binary.value_to_text(&json!("S2Fma2E=")).unwrap();
        assert_eq!(text, "Kafka");
        assert_eq!(Format::Binary.text_to_value("Kafka"), json!("S2Fma2E="));
        assert!(Format::Binary.value_to_text(&json!("not base64!")).is_err());
        assert!(
            Format::Binary.value_to_text(&json!("/w==")).is_err(),
            "0xff is not UTF-8"
        );
        assert!(Format::Binary.value_to_text(&json!(null)).is_err());
        assert!(Format::Binary.value_to_text(&json!(12)).is_err());
    }

    #[test]
    fn keys_route_like_the_native_key() {
        assert_eq!(
            Format::Json.key_to_route(&json!("k1")).unwrap(),
            Some("k1".into())
        );
        assert_eq!(
            Format::Json.key_to_route(&json!(7)).unwrap(),
            Some("7".into())
        );
        assert_eq!(Format::Json.key_to_route(&json!(null)).unwrap(), None);
        assert_eq!(
            Format::Binary.key_to_route(&json!("azE=")).unwrap(),
            Some("k1".into())
        );
    }

    #[test]
    fn content_negotiation() {
        assert_eq!(
            Format::from_content_type("application/vnd.kafka.binary.v2+json"),
            Some(Format::Binary)
        );
        assert_eq!(Format::from_content_type("application/json"), None);
        assert!(accepts_v2(None));
        assert!(accepts_v2(Some(
            "application/vnd.kafka.v2+json; q=0.9, text/html"
        )));
        assert!(!accepts_v2(Some("text/html")));
        assert!(is_v2_body("application/vnd.kafka.v2+json"));
        assert!(!is_v2_body("text/plain"));
        assert_eq!(Format::parse("avro").unwrap_err().error_code(), 42204);
    }
}
