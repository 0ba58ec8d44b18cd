//! JSON documents built by [`arbitrary`] from a vocabulary of the protocol's own keys and
//! values, so that most inputs are well-formed JSON of the right general shape and the fuzzer
//! spends its time in the validation rules rather than in the JSON parser.

use arbitrary::{Arbitrary, Unstructured};
use serde_json::{Map, Number, Value};

/// How deep a generated document may nest; deeper inputs are cut off (network JSON is bounded to
/// 64 levels before any parser sees it).
const MAX_DEPTH: usize = 12;

/// A JSON value whose keys and strings are mostly taken from a vocabulary.
#[derive(Debug, Arbitrary)]
pub(crate) enum Json {
    Null,
    Bool(bool),
    Int(i64),
    Small(u8),
    Decimal(i32, u8),
    Word(u16),
    Text(String),
    Array(Vec<Json>),
    Object(Vec<(Key, Json)>),
}

/// An object key: a word of the vocabulary, or any text.
#[derive(Debug, Arbitrary)]
pub(crate) enum Key {
    Word(u16),
    Text(String),
}

/// The keys and string values a generated document is made of.
pub(crate) struct Vocabulary {
    pub(crate) keys: &'static [&'static str],
    pub(crate) strings: &'static [&'static str],
}

impl Vocabulary {
    fn key(&self, key: &Key) -> String {
        match key {
            Key::Word(i) => pick(self.keys, *i).to_owned(),
            Key::Text(text) => text.clone(),
        }
    }

    /// The value as JSON, cut off at [`MAX_DEPTH`].
    pub(crate) fn value(&self, json: &Json) -> Value {
        self.value_at(json, 0)
    }

    fn value_at(&self, json: &Json, depth: usize) -> Value {
        if depth > MAX_DEPTH {
            return Value::Null;
        }
        match json {
            Json::Null => Value::Null,
            Json::Bool(b) => Value::Bool(*b),
            Json::Int(n) => Value::from(*n),
            Json::Small(n) => Value::from(*n),
            Json::Decimal(n, scale) => decimal(*n, *scale),
            Json::Word(i) => Value::String(pick(self.strings, *i).to_owned()),
            Json::Text(text) => Value::String(text.clone()),
            Json::Array(items) => Value::Array(
                items
                    .iter()
                    .map(|item| self.value_at(item, depth + 1))
                    .collect(),
            ),
            Json::Object(members) => Value::Object(
                members
                    .iter()
                    .map(|(key, value)| (self.key(key), self.value_at(value, depth + 1)))
                    .collect::<Map<String, Value>>(),
            ),
        }
    }

    /// Builds a value of an `arbitrary` [`Json`] from the rest of `u`; `Null` when the bytes run
    /// out or do not decode.
    pub(crate) fn arbitrary_value(&self, u: &mut Unstructured<'_>) -> Value {
        Json::arbitrary(u).map_or(Value::Null, |json| self.value(&json))
    }

    /// A string of the vocabulary, or any text.
    pub(crate) fn arbitrary_string(&self, u: &mut Unstructured<'_>) -> String {
        match Key::arbitrary(u) {
            Ok(Key::Word(i)) => pick(self.strings, i).to_owned(),
            Ok(Key::Text(text)) => text,
            Err(_) => String::new(),
        }
    }
}

/// The `i`-th word, wrapping around.
pub(crate) fn pick(words: &'static [&'static str], i: u16) -> &'static str {
    words
        .get(usize::from(i) % words.len().max(1))
        .copied()
        .unwrap_or("")
}

/// A decimal written as FHIR does (`80.20`), kept exactly through `arbitrary_precision`.
fn decimal(n: i32, scale: u8) -> Value {
    let digits = n.unsigned_abs().to_string();
    let scale = usize::from(scale % 6);
    let text = if scale == 0 {
        digits
    } else {
        let padded = format!("{digits:0>width$}", width = scale + 1);
        let (whole, fraction) = padded.split_at(padded.len() - scale);
        format!("{whole}.{fraction}")
    };
    let text = if n < 0 { format!("-{text}") } else { text };
    serde_json::from_str::<Number>(&text).map_or(Value::Null, Value::Number)
}
