//! Validation of catalog JSON against the HALO App Catalog rules (REQ CAT-02..CAT-09, CAT-14).
//!
//! Validation reads `serde_json::Value`, not the typed [`AppEntry`](crate::AppEntry): a catalog
//! with a number where a name belongs must still produce a finding with a path rather than one
//! opaque deserialisation error, and every rule runs even after the first one fails.

mod rules;
mod scopes;

use crate::finding::{Code, Finding, Report};
use crate::path::Path;
use rules::UrlCheck;
use serde_json::{Map, Value};
use std::collections::HashMap;

pub(crate) use rules::uuid_problem;

/// Validates a whole catalog document (a JSON array of entries) and returns every finding.
///
/// Paths start at the document: `$[3].publisher.name`. Duplicate `id`s are reported on the later
/// entries.
///
/// ```
/// let doc = serde_json::json!([{ "id": "not-a-uuid" }]);
/// let report = halo_catalog::validate_catalog(&doc);
/// assert!(report.has_errors());
/// assert!(report.findings.iter().any(|f| f.path == "$[0].id" && f.code.as_str() == "invalid-uuid"));
/// ```
pub fn validate_catalog(doc: &Value) -> Report {
    match doc.as_array() {
        Some(items) => validate_items(items).0,
        None => Report {
            findings: vec![Finding::new(
                Code::NotAnArray,
                "$",
                format!(
                    "the catalog must be a JSON array of app entries, found {}",
                    describe(doc)
                ),
            )],
        },
    }
}

/// Validates one entry on its own; paths start at `$` (the entry).
pub fn validate_entry(entry: &Value) -> Report {
    let mut findings = Vec::new();
    let mut sink = Sink {
        out: &mut findings,
        entry: None,
    };
    check_entry(entry, &Path::Root, &mut sink);
    Report { findings }
}

impl crate::AppEntry {
    /// Validates this entry against the catalog rules; paths start at `$` (the entry).
    pub fn validate(&self) -> Report {
        match serde_json::to_value(self) {
            Ok(value) => validate_entry(&value),
            // Serialising plain strings, bools and JSON values cannot fail; should it ever, say so
            // rather than report a clean entry.
            Err(e) => Report {
                findings: vec![Finding::new(
                    Code::NotAnObject,
                    "$",
                    format!("the entry could not be turned into JSON: {e}"),
                )],
            },
        }
    }
}

/// Validates every item; also says, per item, whether it is free of errors.
pub(crate) fn validate_items(items: &[Value]) -> (Report, Vec<bool>) {
    let mut findings = Vec::new();
    let mut clean = Vec::with_capacity(items.len());
    let mut first_by_id: HashMap<String, usize> = HashMap::with_capacity(items.len());
    let root = Path::Root;
    for (i, item) in items.iter().enumerate() {
        let start = findings.len();
        let path = root.index(i);
        let mut sink = Sink {
            out: &mut findings,
            entry: Some(i),
        };
        check_entry(item, &path, &mut sink);
        if let Some(id) = item.get("id").and_then(Value::as_str) {
            // UUIDs are case-insensitive, so `ABC…` and `abc…` are the same app.
            let key = id.trim().to_ascii_lowercase();
            if !key.is_empty() {
                match first_by_id.get(&key) {
                    Some(first) => sink.push(
                        Code::DuplicateId,
                        &path.key("id"),
                        format!("id `{id}` is already used by entry {first} ($[{first}].id); every entry needs its own id"),
                    ),
                    None => {
                        first_by_id.insert(key, i);
                    }
                }
            }
        }
        let has_error = findings[start..]
            .iter()
            .any(|f| f.severity == crate::Severity::Error);
        clean.push(!has_error);
    }
    (Report { findings }, clean)
}

/// Where findings go, tagged with the entry they concern.
pub(crate) struct Sink<'o> {
    out: &'o mut Vec<Finding>,
    entry: Option<usize>,
}

impl Sink<'_> {
    pub(crate) fn push(&mut self, code: Code, path: &Path<'_>, message: String) {
        self.out.push(Finding {
            severity: code.severity(),
            code,
            path: path.to_string(),
            message,
            entry: self.entry,
        });
    }
}

/// A JSON value's kind, for "found …" messages.
pub(crate) fn describe(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Need {
    Mandatory,
    Optional,
}

/// Character limits of a text field (Unicode scalar values, the "characters" of the HALO catalog tables).
#[derive(Clone, Copy)]
struct Len {
    min: usize,
    max: Option<usize>,
}

const ANY: Len = Len { min: 0, max: None };
const fn max(n: usize) -> Len {
    Len {
        min: 0,
        max: Some(n),
    }
}
const NAME: Len = Len {
    min: 3,
    max: Some(150),
};
const URL_MAX: Len = max(2048);

/// The fields of the entry table, in table order; anything else is kept as an unknown field.
const ENTRY_FIELDS: &[&str] = &[
    "id",
    "name",
    "description",
    "descriptionShort",
    "tags",
    "helpUrl",
    "iconUrl",
    "screenshots",
    "privacyPolicyUrl",
    "termsOfServiceUrl",
    "launchUrl",
    "eligibilityCriteria",
    "contacts",
    "publisher",
    "isEnrolling",
    "scopes",
    "translations",
];
const CONTACT_FIELDS: &[&str] = &["title", "email", "phone", "url"];
const PUBLISHER_FIELDS: &[&str] = &["id", "name", "url"];
const TRANSLATION_FIELDS: &[&str] = &[
    "name",
    "description",
    "descriptionShort",
    "eligibilityCriteria",
];

fn check_entry(entry: &Value, path: &Path<'_>, sink: &mut Sink<'_>) {
    let Some(obj) = entry.as_object() else {
        sink.push(
            Code::NotAnObject,
            path,
            format!(
                "an app entry must be a JSON object, found {}",
                describe(entry)
            ),
        );
        return;
    };

    if let Some(id) = text(obj, "id", Need::Mandatory, max(36), path, sink)
        && let Some(problem) = uuid_problem(id)
    {
        sink.push(
            Code::InvalidUuid,
            &path.key("id"),
            format!("id `{id}` {problem}; an entry id must be an RFC 4122 UUID"),
        );
    }
    text(obj, "name", Need::Mandatory, NAME, path, sink);
    text(obj, "description", Need::Mandatory, ANY, path, sink);
    text(obj, "descriptionShort", Need::Mandatory, ANY, path, sink);
    check_tags(obj, path, sink);
    url(obj, "helpUrl", Need::Optional, URL_MAX, false, path, sink);
    url(obj, "iconUrl", Need::Mandatory, URL_MAX, false, path, sink);
    check_screenshots(obj, path, sink);
    url(
        obj,
        "privacyPolicyUrl",
        Need::Mandatory,
        URL_MAX,
        false,
        path,
        sink,
    );
    url(
        obj,
        "termsOfServiceUrl",
        Need::Mandatory,
        URL_MAX,
        false,
        path,
        sink,
    );
    url(obj, "launchUrl", Need::Mandatory, ANY, true, path, sink);
    text(
        obj,
        "eligibilityCriteria",
        Need::Optional,
        max(2048),
        path,
        sink,
    );
    check_contacts(obj, path, sink);
    check_publisher(obj, path, sink);
    match present(obj, "isEnrolling") {
        None | Some(Value::Bool(_)) => {}
        Some(other) => sink.push(
            Code::WrongType,
            &path.key("isEnrolling"),
            format!(
                "`isEnrolling` must be true or false, found {}",
                describe(other)
            ),
        ),
    }
    if let Some(items) = array(obj, "scopes", Need::Optional, path, sink) {
        scopes::check(items, &path.key("scopes"), sink);
    }
    check_translations(obj, path, sink);
    unknown_fields(obj, ENTRY_FIELDS, "app entry", path, sink);
}

/// The value of `key`, treating `null` as absent (JSON writers often emit `null` for "none").
fn present<'v>(obj: &'v Map<String, Value>, key: &str) -> Option<&'v Value> {
    obj.get(key).filter(|v| !v.is_null())
}

fn missing(key: &str, path: &Path<'_>, sink: &mut Sink<'_>) {
    sink.push(
        Code::MissingField,
        &path.key(key),
        format!("required field `{key}` is missing"),
    );
}

/// Checks a text field; returns it when it is a non-empty string (even if too long), so callers
/// can run further checks on it.
fn text<'v>(
    obj: &'v Map<String, Value>,
    key: &'static str,
    need: Need,
    len: Len,
    path: &Path<'_>,
    sink: &mut Sink<'_>,
) -> Option<&'v str> {
    let value = match present(obj, key) {
        Some(v) => v,
        None => {
            if need == Need::Mandatory {
                missing(key, path, sink);
            }
            return None;
        }
    };
    let Some(s) = value.as_str() else {
        sink.push(
            Code::WrongType,
            &path.key(key),
            format!("`{key}` must be a string, found {}", describe(value)),
        );
        return None;
    };
    if s.trim().is_empty() {
        sink.push(
            Code::EmptyField,
            &path.key(key),
            format!("`{key}` is empty"),
        );
        return None;
    }
    check_length(key, s, len, &path.key(key), sink);
    Some(s)
}

fn check_length(key: &str, s: &str, len: Len, path: &Path<'_>, sink: &mut Sink<'_>) {
    // A UTF-8 string never has more characters than bytes, so most values skip the count.
    let needs_max = len.max.is_some_and(|m| s.len() > m);
    let needs_min = len.min > 0 && s.len() < len.min * 4;
    if !needs_max && !needs_min {
        return;
    }
    let chars = s.chars().count();
    if let Some(m) = len.max.filter(|m| chars > *m) {
        sink.push(
            Code::TooLong,
            path,
            format!("`{key}` has {chars} characters; at most {m} are allowed"),
        );
    }
    if chars < len.min {
        sink.push(
            Code::TooShort,
            path,
            format!(
                "`{key}` has {chars} characters; at least {} are needed",
                len.min
            ),
        );
    }
}

/// Checks a URL field (text rules first, then absolute http(s); `launch` adds the https rule).
fn url(
    obj: &Map<String, Value>,
    key: &'static str,
    need: Need,
    len: Len,
    launch: bool,
    path: &Path<'_>,
    sink: &mut Sink<'_>,
) {
    if let Some(s) = text(obj, key, need, len, path, sink) {
        check_url_value(key, s, launch, &path.key(key), sink);
    }
}

fn check_url_value(key: &str, s: &str, launch: bool, path: &Path<'_>, sink: &mut Sink<'_>) {
    match rules::check_url(s) {
        UrlCheck::Https => {}
        UrlCheck::Http { loopback } if launch => {
            if loopback {
                sink.push(
                    Code::LaunchUrlLoopbackHttp,
                    path,
                    format!("`{key}` `{s}` uses plain http on a loopback host; fine for local testing, but a published app must launch over https"),
                );
            } else {
                sink.push(
                    Code::LaunchUrlNotHttps,
                    path,
                    format!("`{key}` `{s}` must use https"),
                );
            }
        }
        UrlCheck::Http { .. } => {}
        UrlCheck::OtherScheme(scheme) => sink.push(
            Code::UnsupportedUrlScheme,
            path,
            format!(
                "`{key}` `{s}` uses the `{scheme}` scheme; only http and https URLs are allowed"
            ),
        ),
        UrlCheck::Invalid(why) => sink.push(Code::InvalidUrl, path, format!("`{key}` `{s}` {why}")),
    }
}

/// Returns the items of an array field; reports a wrong type or (when mandatory) absence.
fn array<'v>(
    obj: &'v Map<String, Value>,
    key: &'static str,
    need: Need,
    path: &Path<'_>,
    sink: &mut Sink<'_>,
) -> Option<&'v [Value]> {
    match present(obj, key) {
        None => {
            if need == Need::Mandatory {
                missing(key, path, sink);
            }
            None
        }
        Some(Value::Array(items)) => Some(items),
        Some(other) => {
            sink.push(
                Code::WrongType,
                &path.key(key),
                format!("`{key}` must be an array, found {}", describe(other)),
            );
            None
        }
    }
}

fn check_tags(obj: &Map<String, Value>, path: &Path<'_>, sink: &mut Sink<'_>) {
    let Some(items) = array(obj, "tags", Need::Optional, path, sink) else {
        return;
    };
    let tags = path.key("tags");
    for (i, item) in items.iter().enumerate() {
        match item.as_str() {
            Some(s) if s.trim().is_empty() => {
                sink.push(
                    Code::EmptyTag,
                    &tags.index(i),
                    "this tag is empty".to_owned(),
                );
            }
            Some(_) => {}
            None => sink.push(
                Code::WrongType,
                &tags.index(i),
                format!("a tag must be a string, found {}", describe(item)),
            ),
        }
    }
}

fn check_screenshots(obj: &Map<String, Value>, path: &Path<'_>, sink: &mut Sink<'_>) {
    let Some(items) = array(obj, "screenshots", Need::Optional, path, sink) else {
        return;
    };
    let shots = path.key("screenshots");
    for (i, item) in items.iter().enumerate() {
        let here = shots.index(i);
        match item.as_str() {
            Some(s) if s.trim().is_empty() => {
                sink.push(
                    Code::EmptyField,
                    &here,
                    "this screenshot URL is empty".to_owned(),
                );
            }
            Some(s) => check_url_value("screenshots", s, false, &here, sink),
            None => sink.push(
                Code::WrongType,
                &here,
                format!(
                    "a screenshot must be a URL string, found {}",
                    describe(item)
                ),
            ),
        }
    }
}

fn check_contacts(obj: &Map<String, Value>, path: &Path<'_>, sink: &mut Sink<'_>) {
    let Some(items) = array(obj, "contacts", Need::Mandatory, path, sink) else {
        return;
    };
    let contacts = path.key("contacts");
    if items.is_empty() {
        sink.push(
            Code::EmptyField,
            &contacts,
            "`contacts` is empty; at least one contact with an email and one with a URL are required".to_owned(),
        );
        return;
    }
    let (mut any_email, mut any_url) = (false, false);
    for (i, item) in items.iter().enumerate() {
        let here = contacts.index(i);
        let Some(c) = item.as_object() else {
            sink.push(
                Code::NotAnObject,
                &here,
                format!("a contact must be a JSON object, found {}", describe(item)),
            );
            continue;
        };
        text(c, "title", Need::Mandatory, max(150), &here, sink);
        let email = text(c, "email", Need::Optional, max(150), &here, sink);
        if let Some(e) = email
            && let Some(problem) = rules::email_problem(e)
        {
            sink.push(
                Code::InvalidEmail,
                &here.key("email"),
                format!("email `{e}` {problem}"),
            );
        }
        text(c, "phone", Need::Optional, max(30), &here, sink);
        let url_text = text(c, "url", Need::Optional, URL_MAX, &here, sink);
        if let Some(u) = url_text {
            check_url_value("url", u, false, &here.key("url"), sink);
        }
        any_email |= email.is_some();
        any_url |= url_text.is_some();
        // A wrongly typed channel is already an error; only a contact with truly nothing to
        // reach gets this warning.
        let has_any = ["email", "phone", "url"]
            .iter()
            .any(|k| present(c, k).is_some());
        if !has_any {
            sink.push(
                Code::ContactWithoutChannel,
                &here,
                "this contact has no email, phone or url, so nobody can use it".to_owned(),
            );
        }
        unknown_fields(c, CONTACT_FIELDS, "contact", &here, sink);
    }
    if !any_email {
        sink.push(
            Code::MissingContactEmail,
            &contacts,
            "no contact has an `email`; at least one contact must carry an email address"
                .to_owned(),
        );
    }
    if !any_url {
        sink.push(
            Code::MissingContactUrl,
            &contacts,
            "no contact has a `url`; at least one contact must carry a support URL".to_owned(),
        );
    }
}

fn check_publisher(obj: &Map<String, Value>, path: &Path<'_>, sink: &mut Sink<'_>) {
    let here = path.key("publisher");
    let p = match present(obj, "publisher") {
        None => return missing("publisher", path, sink),
        Some(Value::Object(p)) => p,
        Some(other) => {
            return sink.push(
                Code::NotAnObject,
                &here,
                format!(
                    "`publisher` must be a JSON object, found {}",
                    describe(other)
                ),
            );
        }
    };
    if let Some(id) = text(p, "id", Need::Mandatory, max(36), &here, sink)
        && uuid_problem(id).is_some()
        && id.chars().count() <= 36
    {
        sink.push(
            Code::PublisherIdNotUuid,
            &here.key("id"),
            format!("publisher id `{id}` is not an RFC 4122 UUID; allowed, but a UUID avoids clashes between publishers"),
        );
    }
    text(p, "name", Need::Mandatory, max(150), &here, sink);
    url(p, "url", Need::Optional, URL_MAX, false, &here, sink);
    unknown_fields(p, PUBLISHER_FIELDS, "publisher", &here, sink);
}

fn check_translations(obj: &Map<String, Value>, path: &Path<'_>, sink: &mut Sink<'_>) {
    let here = path.key("translations");
    let t = match present(obj, "translations") {
        None => return,
        Some(Value::Object(t)) => t,
        Some(other) => {
            return sink.push(
                Code::NotAnObject,
                &here,
                format!(
                    "`translations` must be an object keyed by language tag, found {}",
                    describe(other)
                ),
            );
        }
    };
    for (tag, value) in t {
        let lang = here.key(tag);
        if !rules::is_language_tag(tag) {
            sink.push(
                Code::InvalidLanguageTag,
                &lang,
                format!("`{tag}` is not a BCP 47 language tag such as `fr` or `fr-CA`"),
            );
        }
        let Some(tr) = value.as_object() else {
            sink.push(
                Code::NotAnObject,
                &lang,
                format!(
                    "a translation must be a JSON object, found {}",
                    describe(value)
                ),
            );
            continue;
        };
        // The same limits as the base fields (CAT-14); every field is optional here.
        text(tr, "name", Need::Optional, NAME, &lang, sink);
        text(tr, "description", Need::Optional, ANY, &lang, sink);
        text(tr, "descriptionShort", Need::Optional, ANY, &lang, sink);
        text(
            tr,
            "eligibilityCriteria",
            Need::Optional,
            max(2048),
            &lang,
            sink,
        );
        unknown_fields(tr, TRANSLATION_FIELDS, "translation", &lang, sink);
    }
}

fn unknown_fields(
    obj: &Map<String, Value>,
    known: &[&str],
    what: &str,
    path: &Path<'_>,
    sink: &mut Sink<'_>,
) {
    for key in obj.keys() {
        if !known.contains(&key.as_str()) {
            sink.push(
                Code::UnknownField,
                &path.key(key),
                format!("`{key}` is not a HALO {what} field; it is kept as is, but PoCs will not read it"),
            );
        }
    }
}
