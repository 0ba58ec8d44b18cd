//! The JSON shape and lexical format of FHIR primitive values: the regular expressions of the R4
//! primitive type definitions, compiled once with the `regex` crate, plus the calendar check the
//! regexes cannot express.

use std::sync::LazyLock;

use halo_model::fhir::json_kind;
use regex::Regex;
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
        "id" => is_id(text),
        "uri" | "url" | "canonical" => !text.contains(char::is_whitespace),
        "oid" => is_oid(text),
        "uuid" => is_uuid(text),
        "base64Binary" => {
            let compact: Vec<u8> = text.bytes().filter(|b| !b.is_ascii_whitespace()).collect();
            compact.len().is_multiple_of(4)
                && compact
                    .iter()
                    .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'+' | b'/' | b'='))
        }
        "date" => is_date(text),
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

/// The R4 `date` regex, with the parts captured so the calendar can be checked too.
static DATE: LazyLock<Regex> = LazyLock::new(|| {
    anchored(&format!(
        "(?<year>{YEAR})(-(?<month>{MONTH})(-(?<day>{DAY}))?)?"
    ))
});

/// The R4 `dateTime` regex: a time needs a full date and a zone.
static DATE_TIME: LazyLock<Regex> = LazyLock::new(|| {
    anchored(&format!(
        "(?<year>{YEAR})(-(?<month>{MONTH})(-(?<day>{DAY})(T{TIME_PATTERN}{ZONE})?)?)?"
    ))
});

/// The R4 `instant` regex: always a full date, a time and a zone.
static INSTANT: LazyLock<Regex> = LazyLock::new(|| {
    anchored(&format!(
        "(?<year>{YEAR})-(?<month>{MONTH})-(?<day>{DAY})T{TIME_PATTERN}{ZONE}"
    ))
});

/// The R4 `time` regex.
static TIME: LazyLock<Regex> = LazyLock::new(|| anchored(TIME_PATTERN));

/// The R4 `oid` regex.
static OID: LazyLock<Regex> = LazyLock::new(|| anchored(r"urn:oid:[0-2](\.(0|[1-9][0-9]*))+"));

/// The R4 `uuid` regex (lower-case hexadecimal, as the specification writes it).
static UUID: LazyLock<Regex> = LazyLock::new(|| {
    anchored("urn:uuid:[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")
});

/// The R4 `id` regex.
static ID: LazyLock<Regex> = LazyLock::new(|| anchored(r"[A-Za-z0-9\-\.]{1,64}"));

const YEAR: &str = "[0-9]([0-9]([0-9][1-9]|[1-9]0)|[1-9]00)|[1-9]000";
const MONTH: &str = "0[1-9]|1[0-2]";
const DAY: &str = "0[1-9]|[1-2][0-9]|3[0-1]";
const TIME_PATTERN: &str = r"([01][0-9]|2[0-3]):[0-5][0-9]:([0-5][0-9]|60)(\.[0-9]+)?";
const ZONE: &str = r"(Z|(\+|-)((0[0-9]|1[0-3]):[0-5][0-9]|14:00))";

/// Compiles one of the fixed patterns above, matched against the whole value.
fn anchored(pattern: &str) -> Regex {
    match Regex::new(&format!("^(?:{pattern})$")) {
        Ok(regex) => regex,
        // The patterns are constants checked by the tests below; a typo is a bug to see at once.
        Err(e) => unreachable!("invalid primitive pattern {pattern}: {e}"),
    }
}

fn is_id(text: &str) -> bool {
    ID.is_match(text)
}

/// `date`, `dateTime` or `instant` per `regex`, and a day that exists in that month (the regex
/// alone accepts `2023-02-31`).
fn is_calendar_match(regex: &Regex, text: &str) -> bool {
    let Some(captures) = regex.captures(text) else {
        return false;
    };
    let number = |name: &str| {
        captures
            .name(name)
            .and_then(|m| m.as_str().parse::<u32>().ok())
    };
    match (number("year"), number("month"), number("day")) {
        (Some(year), Some(month), Some(day)) => day <= days_in(year, month),
        (Some(_), _, None) => true,
        _ => false,
    }
}

fn is_date(text: &str) -> bool {
    is_calendar_match(&DATE, text)
}

fn is_date_time(text: &str, instant: bool) -> bool {
    is_calendar_match(if instant { &INSTANT } else { &DATE_TIME }, text)
}

fn is_time(text: &str) -> bool {
    TIME.is_match(text)
}

fn is_oid(text: &str) -> bool {
    OID.is_match(text)
}

fn is_uuid(text: &str) -> bool {
    UUID.is_match(text)
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

    // REQ: HARD-02
    #[test]
    fn a_multi_byte_character_in_a_zone_is_an_error_not_a_panic() {
        // Seen in a `$set-context` Patient.deceasedDateTime: the old hand-written check sliced
        // the zone by byte offsets and split the `é`.
        for code in ["dateTime", "instant"] {
            assert!(check(code, &json!("2024-01-01T10:00:00+1é00")).is_err());
            assert!(check(code, &json!("2024-01-01T10:00:00+é")).is_err());
            assert!(check(code, &json!("2024-01-01T10:00:00-00:0é")).is_err());
        }
        assert!(check("time", &json!("1é:00:00")).is_err());
        assert!(check("date", &json!("2024-é1")).is_err());
    }

    #[test]
    fn zones_follow_the_r4_pattern() {
        assert!(check("dateTime", &json!("2024-01-15T10:30:00+14:00")).is_ok());
        assert!(check("dateTime", &json!("2024-01-15T10:30:00+14:30")).is_err());
        assert!(check("dateTime", &json!("2024-01-15T10:30:00+13:59")).is_ok());
        assert!(check("dateTime", &json!("2024-01-15T10:30:00+1:00")).is_err());
        assert!(check("dateTime", &json!("2024-01-15T24:00:00Z")).is_err());
        assert!(check("dateTime", &json!("2024-01-15T23:59:60Z")).is_ok());
        assert!(check("dateTime", &json!("2024-01T10:30:00Z")).is_err());
        assert!(check("dateTime", &json!("0000")).is_err());
        assert!(check("dateTime", &json!("2024-02-30")).is_err());
        assert!(check("instant", &json!("2024-02-29T10:30:00.5Z")).is_ok());
        assert!(check("instant", &json!("2023-02-29T10:30:00Z")).is_err());
        assert!(check("time", &json!("10:30:00.")).is_err());
        assert!(check("time", &json!("10:30")).is_err());
        assert!(check("date", &json!("2024-01-15\n")).is_err());
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
        assert!(check("oid", &json!("urn:oid:2.016")).is_err());
        assert!(check("oid", &json!("urn:oid:3.1")).is_err());
        assert!(check("id", &json!("a".repeat(64))).is_ok());
        assert!(check("id", &json!("a".repeat(65))).is_err());
        assert!(check("id", &json!("é")).is_err());
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
