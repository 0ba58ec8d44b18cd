//! Bounded JSON parsing: size and nesting limits checked before any parsing work.

use serde_json::Value;

/// Limits on a JSON document read from the network (SEC-03).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct JsonLimits {
    /// The largest document accepted, in bytes.
    pub max_bytes: usize,
    /// The deepest nesting of arrays and objects accepted.
    pub max_depth: usize,
}

impl Default for JsonLimits {
    /// 8 MiB and 64 levels: a large `$set-context` Bundle is a few hundred kilobytes and about a
    /// dozen levels deep; anything far past that is a mistake or an attack.
    fn default() -> Self {
        JsonLimits {
            max_bytes: 8 * 1024 * 1024,
            max_depth: 64,
        }
    }
}

/// Why a JSON document was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum JsonError {
    /// The document is larger than the limit.
    #[error("the document is {size} bytes, more than the {limit} bytes accepted")]
    TooLarge {
        /// The document's size.
        size: usize,
        /// The limit.
        limit: usize,
    },
    /// Arrays and objects are nested deeper than the limit.
    #[error("the document nests arrays and objects more than {limit} levels deep")]
    TooDeep {
        /// The limit.
        limit: usize,
    },
    /// The bytes are not JSON.
    #[error("the body is not valid JSON: {0}")]
    Syntax(String),
}

/// The deepest nesting of arrays and objects in `bytes`, counted without parsing (brackets inside
/// strings are skipped). Malformed input gives a number too; parsing reports the syntax error.
pub fn json_depth(bytes: &[u8]) -> usize {
    let mut depth = 0usize;
    let mut deepest = 0usize;
    let mut in_string = false;
    let mut escaped = false;
    for &b in bytes {
        if in_string {
            if escaped {
                escaped = false;
            } else if b == b'\\' {
                escaped = true;
            } else if b == b'"' {
                in_string = false;
            }
            continue;
        }
        match b {
            b'"' => in_string = true,
            b'[' | b'{' => {
                depth += 1;
                deepest = deepest.max(depth);
            }
            b']' | b'}' => depth = depth.saturating_sub(1),
            _ => {}
        }
    }
    deepest
}

/// Parses JSON from the network: size first, then depth (a linear scan), then the parse. The
/// depth check runs before `serde_json` so a hostile document never reaches its recursion.
pub fn parse_json(bytes: &[u8], limits: JsonLimits) -> Result<Value, JsonError> {
    if bytes.len() > limits.max_bytes {
        return Err(JsonError::TooLarge {
            size: bytes.len(),
            limit: limits.max_bytes,
        });
    }
    if json_depth(bytes) > limits.max_depth {
        return Err(JsonError::TooDeep {
            limit: limits.max_depth,
        });
    }
    serde_json::from_slice(bytes).map_err(|e| JsonError::Syntax(e.to_string()))
}

/// How a JSON value is named in an error message (`an array`, `a string`...), by its kind
/// only, so a message never echoes the value (which may be a secret or health data).
pub fn json_kind(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    // REQ: SEC-03
    #[test]
    fn depth_and_size_are_bounded_before_parsing() {
        let limits = JsonLimits {
            max_bytes: 1000,
            max_depth: 5,
        };
        assert!(parse_json(br#"{"a":[{"b":[1]}]}"#, limits).is_ok());
        let deep = format!("{}{}", "[".repeat(200), "]".repeat(200));
        assert_eq!(
            parse_json(deep.as_bytes(), limits),
            Err(JsonError::TooDeep { limit: 5 })
        );
        let big = vec![b' '; 1001];
        assert!(matches!(
            parse_json(&big, limits),
            Err(JsonError::TooLarge { size: 1001, .. })
        ));
        assert!(matches!(
            parse_json(b"{not json", limits),
            Err(JsonError::Syntax(_))
        ));
    }

    #[test]
    fn brackets_inside_strings_do_not_count() {
        assert_eq!(json_depth(br#"{"a":"[[[[\"[[[","b":{}}"#), 2);
        assert_eq!(json_depth(b"42"), 0);
    }

    #[test]
    fn numbers_keep_their_text() {
        let value = parse_json(
            br#"{"value":1.50,"big":12345678901234567890123}"#,
            JsonLimits::default(),
        )
        .unwrap();
        assert_eq!(
            serde_json::to_string(&value).unwrap(),
            r#"{"value":1.50,"big":12345678901234567890123}"#
        );
    }
}
