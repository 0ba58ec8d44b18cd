//! Validation of catalog JSON against the HALO App Catalog rules (REQ CAT-02..CAT-09, CAT-14).
//!
//! Validation reads `serde_json::Value`, not the typed [`AppEntry`](crate::AppEntry): a catalog
//! with a number where a name belongs must still produce a finding with a path rather than one
//! opaque deserialisation error, and every rule runs even after the first one fails.

mod rules;
mod scopes;

use crate::finding::{Code, Finding, Report};
use crate::path::Path;
use halo_model::fhir::json_kind;
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
                    json_kind(doc)
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
        if let Some(id) = check_entry(item, &path, &mut sink) {
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

/// Declares the known members of one kind of object. `read` sorts an object's members into them
/// in one pass (a `match` on the key, no hashing), treats `null` as absent (JSON writers often
/// emit `null` for "none"), and keeps the other keys to report as unknown once the known ones
/// have been checked.
macro_rules! fields {
    ($name:ident, $what:literal { $($field:ident = $key:literal),* $(,)? }) => {
        #[derive(Default)]
        struct $name<'v> {
            $($field: Option<&'v Value>,)*
            unknown: Vec<&'v str>,
        }

        impl<'v> $name<'v> {
            fn read(obj: &'v Map<String, Value>) -> Self {
                let mut f = Self::default();
                for (key, value) in obj {
                    let slot = match key.as_str() {
                        $($key => &mut f.$field,)*
                        _ => {
                            f.unknown.push(key);
                            continue;
                        }
                    };
                    if !value.is_null() {
                        *slot = Some(value);
                    }
                }
                f
            }

            fn report_unknown(&self, path: &Path<'_>, sink: &mut Sink<'_>) {
                for key in &self.unknown {
                    sink.push(
                        Code::UnknownField,
                        &path.key(key),
                        format!(
                            "`{key}` is not a HALO {} field; it is kept as is, but PoCs will not read it",
                            $what
                        ),
                    );
                }
            }
        }
    };
}

// The entry table, in table order.
fields!(EntryFields, "app entry" {
    id = "id",
    name = "name",
    description = "description",
    description_short = "descriptionShort",
    tags = "tags",
    help_url = "helpUrl",
    icon_url = "iconUrl",
    screenshots = "screenshots",
    privacy_policy_url = "privacyPolicyUrl",
    terms_of_service_url = "termsOfServiceUrl",
    launch_url = "launchUrl",
    eligibility_criteria = "eligibilityCriteria",
    contacts = "contacts",
    publisher = "publisher",
    is_enrolling = "isEnrolling",
    scopes = "scopes",
    translations = "translations",
});
fields!(ContactFields, "contact" { title = "title", email = "email", phone = "phone", url = "url" });
fields!(PublisherFields, "publisher" { id = "id", name = "name", url = "url" });
fields!(TranslationFields, "translation" {
    name = "name",
    description = "description",
    description_short = "descriptionShort",
    eligibility_criteria = "eligibilityCriteria",
});

/// Checks one entry; returns its `id` when that is a string, for the duplicate check.
fn check_entry<'v>(entry: &'v Value, path: &Path<'_>, sink: &mut Sink<'_>) -> Option<&'v str> {
    let Some(obj) = entry.as_object() else {
        sink.push(
            Code::NotAnObject,
            path,
            format!(
                "an app entry must be a JSON object, found {}",
                json_kind(entry)
            ),
        );
        return None;
    };
    let f = EntryFields::read(obj);

    if let Some(id) = text(f.id, "id", Need::Mandatory, max(36), path, sink)
        && let Some(problem) = uuid_problem(id)
    {
        sink.push(
            Code::InvalidUuid,
            &path.key("id"),
            format!("id `{id}` {problem}; an entry id must be an RFC 4122 UUID"),
        );
    }
    text(f.name, "name", Need::Mandatory, NAME, path, sink);
    text(
        f.description,
        "description",
        Need::Mandatory,
        ANY,
        path,
        sink,
    );
    text(
        f.description_short,
        "descriptionShort",
        Need::Mandatory,
        ANY,
        path,
        sink,
    );
    check_tags(f.tags, path, sink);
    url(
        f.help_url,
        "helpUrl",
        Need::Optional,
        URL_MAX,
        false,
        path,
        sink,
    );
    url(
        f.icon_url,
        "iconUrl",
        Need::Mandatory,
        URL_MAX,
        false,
        path,
        sink,
    );
    check_screenshots(f.screenshots, path, sink);
    url(
        f.privacy_policy_url,
        "privacyPolicyUrl",
        Need::Mandatory,
        URL_MAX,
        false,
        path,
        sink,
    );
    url(
        f.terms_of_service_url,
        "termsOfServiceUrl",
        Need::Mandatory,
        URL_MAX,
        false,
        path,
        sink,
    );
    url(
        f.launch_url,
        "launchUrl",
        Need::Mandatory,
        ANY,
        true,
        path,
        sink,
    );
    text(
        f.eligibility_criteria,
        "eligibilityCriteria",
        Need::Optional,
        max(2048),
        path,
        sink,
    );
    check_contacts(f.contacts, path, sink);
    check_publisher(f.publisher, path, sink);
    match f.is_enrolling {
        None | Some(Value::Bool(_)) => {}
        Some(other) => sink.push(
            Code::WrongType,
            &path.key("isEnrolling"),
            format!(
                "`isEnrolling` must be true or false, found {}",
                json_kind(other)
            ),
        ),
    }
    if let Some(items) = array(f.scopes, "scopes", Need::Optional, path, sink) {
        scopes::check(items, &path.key("scopes"), sink);
    }
    check_translations(f.translations, path, sink);
    f.report_unknown(path, sink);
    f.id.and_then(Value::as_str)
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
    value: Option<&'v Value>,
    key: &'static str,
    need: Need,
    len: Len,
    path: &Path<'_>,
    sink: &mut Sink<'_>,
) -> Option<&'v str> {
    let Some(value) = value else {
        if need == Need::Mandatory {
            missing(key, path, sink);
        }
        return None;
    };
    let Some(s) = value.as_str() else {
        sink.push(
            Code::WrongType,
            &path.key(key),
            format!("`{key}` must be a string, found {}", json_kind(value)),
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
    // A UTF-8 string never has more characters than bytes, nor fewer than a quarter of them, so
    // most values skip the count.
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
    value: Option<&Value>,
    key: &'static str,
    need: Need,
    len: Len,
    launch: bool,
    path: &Path<'_>,
    sink: &mut Sink<'_>,
) {
    if let Some(s) = text(value, key, need, len, path, sink) {
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
    value: Option<&'v Value>,
    key: &'static str,
    need: Need,
    path: &Path<'_>,
    sink: &mut Sink<'_>,
) -> Option<&'v [Value]> {
    match value {
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
                format!("`{key}` must be an array, found {}", json_kind(other)),
            );
            None
        }
    }
}

fn check_tags(value: Option<&Value>, path: &Path<'_>, sink: &mut Sink<'_>) {
    let Some(items) = array(value, "tags", Need::Optional, path, sink) else {
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
                format!("a tag must be a string, found {}", json_kind(item)),
            ),
        }
    }
}

fn check_screenshots(value: Option<&Value>, path: &Path<'_>, sink: &mut Sink<'_>) {
    let Some(items) = array(value, "screenshots", Need::Optional, path, sink) else {
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
                    json_kind(item)
                ),
            ),
        }
    }
}

fn check_contacts(value: Option<&Value>, path: &Path<'_>, sink: &mut Sink<'_>) {
    let Some(items) = array(value, "contacts", Need::Mandatory, path, sink) else {
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
        let Some(obj) = item.as_object() else {
            sink.push(
                Code::NotAnObject,
                &here,
                format!("a contact must be a JSON object, found {}", json_kind(item)),
            );
            continue;
        };
        let c = ContactFields::read(obj);
        text(c.title, "title", Need::Mandatory, max(150), &here, sink);
        let email = text(c.email, "email", Need::Optional, max(150), &here, sink);
        if let Some(e) = email
            && let Some(problem) = rules::email_problem(e)
        {
            sink.push(
                Code::InvalidEmail,
                &here.key("email"),
                format!("email `{e}` {problem}"),
            );
        }
        text(c.phone, "phone", Need::Optional, max(30), &here, sink);
        let url_text = text(c.url, "url", Need::Optional, URL_MAX, &here, sink);
        if let Some(u) = url_text {
            check_url_value("url", u, false, &here.key("url"), sink);
        }
        any_email |= email.is_some();
        any_url |= url_text.is_some();
        // A wrongly typed channel is already an error; only a contact with truly nothing to
        // reach gets this warning.
        if c.email.is_none() && c.phone.is_none() && c.url.is_none() {
            sink.push(
                Code::ContactWithoutChannel,
                &here,
                "this contact has no email, phone or url, so nobody can use it".to_owned(),
            );
        }
        c.report_unknown(&here, sink);
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

fn check_publisher(value: Option<&Value>, path: &Path<'_>, sink: &mut Sink<'_>) {
    let here = path.key("publisher");
    let obj = match value {
        None => return missing("publisher", path, sink),
        Some(Value::Object(obj)) => obj,
        Some(other) => {
            return sink.push(
                Code::NotAnObject,
                &here,
                format!(
                    "`publisher` must be a JSON object, found {}",
                    json_kind(other)
                ),
            );
        }
    };
    let p = PublisherFields::read(obj);
    if let Some(id) = text(p.id, "id", Need::Mandatory, max(36), &here, sink)
        && uuid_problem(id).is_some()
        && id.chars().count() <= 36
    {
        sink.push(
            Code::PublisherIdNotUuid,
            &here.key("id"),
            format!("publisher id `{id}` is not an RFC 4122 UUID; allowed, but a UUID avoids clashes between publishers"),
        );
    }
    text(p.name, "name", Need::Mandatory, max(150), &here, sink);
    url(p.url, "url", Need::Optional, URL_MAX, false, &here, sink);
    p.report_unknown(&here, sink);
}

fn check_translations(value: Option<&Value>, path: &Path<'_>, sink: &mut Sink<'_>) {
    let here = path.key("translations");
    let obj = match value {
        None => return,
        Some(Value::Object(obj)) => obj,
        Some(other) => {
            return sink.push(
                Code::NotAnObject,
                &here,
                format!(
                    "`translations` must be an object keyed by language tag, found {}",
                    json_kind(other)
                ),
            );
        }
    };
    for (tag, value) in obj {
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
                    json_kind(value)
                ),
            );
            continue;
        };
        let t = TranslationFields::read(tr);
        // The same limits as the base fields (CAT-14); every field is optional here.
        text(t.name, "name", Need::Optional, NAME, &lang, sink);
        text(
            t.description,
            "description",
            Need::Optional,
            ANY,
            &lang,
            sink,
        );
        text(
            t.description_short,
            "descriptionShort",
            Need::Optional,
            ANY,
            &lang,
            sink,
        );
        text(
            t.eligibility_criteria,
            "eligibilityCriteria",
            Need::Optional,
            max(2048),
            &lang,
            sink,
        );
        t.report_unknown(&lang, sink);
    }
}
