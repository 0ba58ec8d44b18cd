//! Comparing JSON values the way `fixed[x]`, `pattern[x]` and slice discriminators need.

use serde_json::Value;

/// Equality with numbers compared by value (`1.0` = `1`), as `fixed[x]` requires.
pub(crate) fn equal(a: &Value, b: &Value) -> bool {
    match (a, b) {
        (Value::Number(x), Value::Number(y)) => match (x.as_f64(), y.as_f64()) {
            (Some(x), Some(y)) => x == y,
            _ => x == y,
        },
        (Value::Array(x), Value::Array(y)) => {
            x.len() == y.len() && x.iter().zip(y).all(|(a, b)| equal(a, b))
        }
        (Value::Object(x), Value::Object(y)) => {
            x.len() == y.len()
                && x.iter()
                    .all(|(k, v)| y.get(k).is_some_and(|other| equal(v, other)))
        }
        _ => a == b,
    }
}

/// Whether `value` contains `pattern`: every property of the pattern is present with a matching
/// value, and every item of a pattern array matches some item of the value array.
pub(crate) fn contains(value: &Value, pattern: &Value) -> bool {
    match (value, pattern) {
        (Value::Object(v), Value::Object(p)) => p
            .iter()
            .all(|(k, pv)| v.get(k).is_some_and(|vv| contains(vv, pv))),
        (Value::Array(v), Value::Array(p)) => {
            p.iter().all(|pv| v.iter().any(|vv| contains(vv, pv)))
        }
        _ => equal(value, pattern),
    }
}

/// The values at a dotted member path (`coding.system`), arrays flattened; `$this` is the value.
pub(crate) fn at_path<'a>(value: &'a Value, path: &str) -> Vec<&'a Value> {
    let mut current = vec![value];
    for segment in path.split('.') {
        if segment == "$this" {
            continue;
        }
        let mut next = Vec::new();
        for item in current {
            match item.get(segment) {
                Some(Value::Array(items)) => next.extend(items.iter().filter(|v| !v.is_null())),
                Some(Value::Null) | None => {}
                Some(other) => next.push(other),
            }
        }
        current = next;
    }
    current
}

/// A short rendering of a JSON value for a message.
pub(crate) fn show(value: &Value) -> String {
    let text = value.to_string();
    if text.chars().count() > 120 {
        format!("{}…", text.chars().take(120).collect::<String>())
    } else {
        text
    }
}

/// The closest of `candidates` to `name`, if close enough to be a likely typo.
pub(crate) fn closest<'c>(
    name: &str,
    candidates: impl Iterator<Item = &'c str>,
) -> Option<&'c str> {
    let limit = (name.len() / 3).clamp(1, 3);
    candidates
        .map(|c| (distance(&name.to_lowercase(), &c.to_lowercase()), c))
        .filter(|(d, _)| *d <= limit)
        .min_by_key(|(d, _)| *d)
        .map(|(_, c)| c)
}

/// Levenshtein distance.
fn distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut previous: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut current = vec![i + 1];
        for (j, cb) in b.iter().enumerate() {
            let cost = usize::from(ca != *cb);
            current.push(
                (previous[j] + cost)
                    .min(previous[j + 1] + 1)
                    .min(current[j] + 1),
            );
        }
        previous = current;
    }
    previous[b.len()]
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn patterns_match_subsets() {
        let value = json!({"coding": [{"system": "s", "code": "JHN", "display": "x"}, {"code": "y"}], "text": "t"});
        assert!(contains(
            &value,
            &json!({"coding": [{"system": "s", "code": "JHN"}]})
        ));
        assert!(!contains(
            &value,
            &json!({"coding": [{"system": "s", "code": "MR"}]})
        ));
        assert!(equal(&json!(1.0), &json!(1)));
        assert!(!equal(&json!({"a": 1, "b": 2}), &json!({"a": 1})));
    }

    #[test]
    fn typos_find_their_element() {
        let names = ["valueQuantity", "valueString", "valueCodeableConcept"];
        assert_eq!(
            closest("valueQuantiy", names.into_iter()),
            Some("valueQuantity")
        );
        assert_eq!(closest("zzz", names.into_iter()), None);
    }

    #[test]
    fn paths_flatten_arrays() {
        let value = json!({"coding": [{"system": "a"}, {"system": "b"}]});
        assert_eq!(at_path(&value, "coding.system").len(), 2);
        assert_eq!(at_path(&value, "$this").len(), 1);
    }
}
