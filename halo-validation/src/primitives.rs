//! The JSON shape and lexical format of FHIR primitive values (the regular expressions of the R4
//! primitive type definitions, written out by hand).

use halo_model::fhir::json_kind;
use serde_json::Value;

/// Checks a primitive value against its type. `Err` carries what is wrong, for the message.
pub(crate) fn check(type_code: &str, value: &Value) -> Result<(), String> {
    let code = type_code
        .strip_prefix("http://hl7.org/fhirpath/System.")
        .map_or(type_code, |system| match system {
            "String" => "string",
            "Boolean" => "boolean",
            "Integer" => "integer",
            "Decimal" => "decimal",
            "Date" => "date",
            "DateTime" => "dateTime",
            "Time" => "time",
            _ => "string",
        });
    match code {
        "boolean" => match value {
            Value::Bool(_) => Ok(()),
            other => Err(format!(
                "a boolean must be JSON true or false, found {}",
                json_kind(other)
            )),
        },
        "integer" | "positiveInt" | "unsignedInt" => {
            let Value::Number(number) = value else {
                return Err(format!(
                    "an {code} must be a JSON number, found {}",
                    json_kind(value)
                ));
            };
            let Some(n) = number
                .as_i64()
                .filter(|_| !number.to_string().contains(['.', 'e', 'E']))
            else {
                return Err(format!("`{number}` is not a whole number"));
            };
            let (low, label) = match code {
                "positiveInt" => (1, "at least 1"),
                "unsignedInt" => (0, "at least 0"),
                _ => (i64::from(i32::MIN), "a 32-bit integer"),
            };
            if n < low || n > i64::from(i32::MAX) {
                return Err(format!("`{n}` is out of range: a {code} is {label}"));
            }
            Ok(())
        }
        "decimal" => match value {
            Value::Number(_) => Ok(()),
            other => Err(format!(
                "a decimal must be a JSON number, found {}",
                json_kind(other)
            )),
        },
        _ => {
            let Value::String(text) = value else {
                return Err(format!(
                    "a {code} must be a JSON string, found {}",
                    json_kind(value)
                ));
            };
            check_text(code, text)
        }
    }
}

fn check_text(code: &str, text: &str) -> Result<(), String> {
    if text.is_empty() {
        return Err(format!("a {code} must not be empty"));
    }
    let ok = match code {
        "code" => {
            !text.starts_with(char::is_whitespace)
                && !text.ends_with(char::is_whitespace)
                && !text.contains("  ")
                && !text.contains(['\t', '\n', '\r'])
        }
        "id" => {
            text.len() <= 64
                && text
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'.')
        }
        "uri" | "url" | "canonical" => !text.contains(char::is_whitespace),
        "oid" => text.strip_prefix("urn:oid:").is_some_and(is_oid),
        "uuid" => text.strip_prefix("urn:uuid:").is_some_and(is_uuid),
        "base64Binary" => {
            let compact: Vec<u8> = text.bytes().filter(|b| !b.is_ascii_whitespace()).collect();
            compact.len().is_multiple_of(4)
                && compact
                    .iter()
                    .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'+' | b'/' | b'='))
        }
        "date" => is_date(text, false),
        "dateTime" => is_date_time(text, false),
        "instant" => is_date_time(text, true),
        "time" => is_time(text),
        "xhtml" => text.trim_start().starts_with("<div") && text.trim_end().ends_with("</div>"),
        _ => true,
    };
    if ok {
        Ok(())
    } else {
        Err(format!(
            "`{}` is not a valid {code}{}",
            shorten(text),
            hint(code)
        ))
    }
}

fn hint(code: &str) -> &'static str {
    match code {
        "id" => " (1-64 characters: letters, digits, `-` and `.`)",
        "code" => " (no leading, trailing or repeated whitespace)",
        "uri" | "url" | "canonical" => " (no whitespace)",
        "date" => " (YYYY, YYYY-MM or YYYY-MM-DD)",
        "dateTime" => " (YYYY, YYYY-MM, YYYY-MM-DD or YYYY-MM-DDThh:mm:ss with a time zone)",
        "instant" => " (YYYY-MM-DDThh:mm:ss[.fff] with a time zone, e.g. 2024-01-15T10:00:00Z)",
        "time" => " (hh:mm:ss)",
        "oid" => " (urn:oid:1.2.3)",
        "uuid" => " (urn:uuid: and a lower-case UUID)",
        "xhtml" => " (a <div> element)",
        _ => "",
    }
}

fn shorten(text: &str) -> String {
    if text.chars().count() > 80 {
        format!("{}…", text.chars().take(80).collect::<String>())
    } else {
        text.to_owned()
    }
}

fn digits(text: &str, count: usize) -> Option<u32> {
    (text.len() == count && text.bytes().all(|b| b.is_ascii_digit()))
        .then(|| text.parse().ok())
        .flatten()
}

/// `YYYY`, `YYYY-MM` or `YYYY-MM-DD` (with `full`, only the last), with a real calendar day.
fn is_date(text: &str, full: bool) -> bool {
    let parts: Vec<&str> = text.split('-').collect();
    let year = match parts.first().and_then(|y| digits(y, 4)) {
        Some(year) if year >= 1 => year,
        _ => return false,
    };
    match parts.as_slice() {
        [_] => !full,
        [_, month] => !full && digits(month, 2).is_some_and(|m| (1..=12).contains(&m)),
        [_, month, day] => match (digits(month, 2), digits(day, 2)) {
            (Some(m), Some(d)) if (1..=12).contains(&m) => d >= 1 && d <= days_in(year, m),
            _ => false,
        },
        _ => false,
    }
}

fn days_in(year: u32, month: u32) -> u32 {
    match month {
        2 if year.is_multiple_of(4) && (!year.is_multiple_of(100) || year.is_multiple_of(400)) => {
            29
        }
        2 => 28,
        4 | 6 | 9 | 11 => 30,
        _ => 31,
    }
}

/// A date, optionally followed by `Thh:mm:ss[.f+]` and a zone (`Z` or `±hh:mm`), which a time
/// requires. `instant` requires the time.
fn is_date_time(text: &str, instant: bool) -> bool {
    let Some((date, time)) = text.split_once('T') else {
        return !instant && is_date(text, false);
    };
    if !is_date(date, true) {
        return false;
    }
    let (clock, zone) = if let Some(clock) = time.strip_suffix('Z') {
        (clock, "Z")
    } else {
        match time.rfind(['+', '-']) {
            Some(at) => (&time[..at], &time[at..]),
            None => return false,
        }
    };
    let zone_ok = zone == "Z"
        || (zone.len() == 6
            && digits(&zone[1..3], 2).is_some_and(|h| h <= 14)
            && &zone[3..4] == ":"
            && digits(&zone[4..6], 2).is_some_and(|m| m < 60));
    zone_ok && is_time(clock)
}

/// `hh:mm:ss` with optional fractional seconds.
fn is_time(text: &str) -> bool {
    let (clock, fraction) = match text.split_once('.') {
        Some((clock, fraction)) => (clock, Some(fraction)),
        None => (text, None),
    };
    if fraction.is_some_and(|f| f.is_empty() || !f.bytes().all(|b| b.is_ascii_digit())) {
        return false;
    }
    let parts: Vec<&str> = clock.split(':').collect();
    match parts.as_slice() {
        [h, m, s] => {
            digits(h, 2).is_some_and(|h| h < 24)
                && digits(m, 2).is_some_and(|m| m < 60)
                && digits(s, 2).is_some_and(|s| s <= 60)
        }
        _ => false,
    }
}

fn is_oid(text: &str) -> bool {
    let mut arcs = text.split('.');
    let first_ok = arcs.next().is_some_and(|a| matches!(a, "0" | "1" | "2"));
    let rest: Vec<&str> = arcs.collect();
    first_ok
        && !rest.is_empty()
        && rest.iter().all(|arc| {
            !arc.is_empty()
                && arc.bytes().all(|b| b.is_ascii_digit())
                && (arc.len() == 1 || !arc.starts_with('0'))
        })
}

fn is_uuid(text: &str) -> bool {
    let groups: Vec<&str> = text.split('-').collect();
    groups.len() == 5
        && groups.iter().zip([8, 4, 4, 4, 12]).all(|(g, len)| {
            g.len() == len && g.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
        })
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn dates_follow_the_calendar() {
        assert!(check("date", &json!("2024-02-29")).is_ok());
        assert!(check("date", &json!("2023-02-29")).is_err());
        assert!(check("date", &json!("2024-13")).is_err());
        assert!(check("date", &json!("2024")).is_ok());
        assert!(check("date", &json!("24-01-01")).is_err());
    }

    #[test]
    fn date_times_need_a_zone_when_they_have_a_time() {
        assert!(check("dateTime", &json!("2024-01-15T10:30:00Z")).is_ok());
        assert!(check("dateTime", &json!("2024-01-15T10:30:00.123-05:00")).is_ok());
        assert!(check("dateTime", &json!("2024-01-15T10:30:00")).is_err());
        assert!(check("dateTime", &json!("2024-01-15 10:30:00Z")).is_err());
        assert!(check("instant", &json!("2024-01-15")).is_err());
        assert!(check("instant", &json!("2024-01-15T10:30:00+01:00")).is_ok());
    }

    #[test]
    fn numbers_and_booleans_are_json_types() {
        assert!(check("boolean", &json!("true")).is_err());
        assert!(check("integer", &json!(1.5)).is_err());
        assert!(check("positiveInt", &json!(0)).is_err());
        assert!(check("unsignedInt", &json!(0)).is_ok());
        assert!(check("decimal", &json!("1.5")).is_err());
    }

    #[test]
    fn string_formats() {
        assert!(check("id", &json!("abc-1.2")).is_ok());
        assert!(check("id", &json!("abc_1")).is_err());
        assert!(check("code", &json!(" final")).is_err());
        assert!(check("uri", &json!("http://x y")).is_err());
        assert!(check("string", &json!("")).is_err());
        assert!(check("oid", &json!("urn:oid:2.16.840.1")).is_ok());
        assert!(
            check(
                "uuid",
                &json!("urn:uuid:d12004a7-5ed5-41ab-a8f2-0de5f0c98847")
            )
            .is_ok()
        );
        assert!(
            check(
                "uuid",
                &json!("urn:uuid:D12004A7-5ed5-41ab-a8f2-0de5f0c98847")
            )
            .is_err()
        );
    }
}
