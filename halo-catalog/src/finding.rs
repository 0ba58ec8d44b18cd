//! Validation findings: what is wrong (or worth knowing) about a catalog, and where.

use serde::{Serialize, Serializer};
use std::fmt;

/// How serious a finding is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    /// The entry breaks a HALO rule; a strict reader rejects it.
    Error,
    /// Allowed, but likely a mistake or a problem for some PoCs.
    Warning,
    /// Worth knowing; nothing to fix.
    Info,
}

impl Severity {
    /// `error`, `warning` or `info`.
    pub fn as_str(self) -> &'static str {
        match self {
            Severity::Error => "error",
            Severity::Warning => "warning",
            Severity::Info => "info",
        }
    }
}

impl fmt::Display for Severity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

macro_rules! codes {
    ($( $(#[doc = $doc:literal])* $variant:ident = $text:literal, $sev:ident; )*) => {
        /// The stable, machine-readable kind of a finding. The text form ([`Code::as_str`]) never
        /// changes once released; tools may match on it.
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
        #[non_exhaustive]
        pub enum Code {
            $( $(#[doc = $doc])* $variant, )*
        }

        impl Code {
            /// The stable text form, e.g. `missing-field`.
            pub fn as_str(self) -> &'static str {
                match self { $( Code::$variant => $text, )* }
            }

            /// The severity every finding of this kind has.
            pub fn severity(self) -> Severity {
                match self { $( Code::$variant => Severity::$sev, )* }
            }

            /// Every code, in declaration order (for documentation and tests).
            pub const ALL: &'static [Code] = &[ $( Code::$variant, )* ];
        }
    };
}

codes! {
    /// The catalog is not valid JSON.
    InvalidJson = "invalid-json", Error;
    /// The catalog is not a JSON array.
    NotAnArray = "not-an-array", Error;
    /// An entry, contact, publisher or translation is not a JSON object.
    NotAnObject = "not-an-object", Error;
    /// A mandatory field is absent or `null`.
    MissingField = "missing-field", Error;
    /// A mandatory field is an empty string, an empty array or only whitespace.
    EmptyField = "empty-field", Error;
    /// A field has the wrong JSON type (for example a number where a string belongs).
    WrongType = "wrong-type", Error;
    /// A text is longer than its limit (counted in Unicode characters).
    TooLong = "too-long", Error;
    /// A text is shorter than its minimum (counted in Unicode characters).
    TooShort = "too-short", Error;
    /// The entry `id` is not an RFC 4122 UUID in its 36-character text form.
    InvalidUuid = "invalid-uuid", Error;
    /// The publisher `id` is not an RFC 4122 UUID (allowed: the HALO specification's own example is not one).
    PublisherIdNotUuid = "publisher-id-not-uuid", Warning;
    /// Two entries share one `id`.
    DuplicateId = "duplicate-id", Error;
    /// A URL field is not an absolute URL.
    InvalidUrl = "invalid-url", Error;
    /// A URL field uses a scheme other than `http` or `https`.
    UnsupportedUrlScheme = "unsupported-url-scheme", Error;
    /// `launchUrl` is plain `http` to a host that is not loopback.
    LaunchUrlNotHttps = "launch-url-not-https", Error;
    /// `launchUrl` is plain `http` to a loopback host (fine for local testing only).
    LaunchUrlLoopbackHttp = "launch-url-loopback-http", Warning;
    /// No contact carries an `email`.
    MissingContactEmail = "missing-contact-email", Error;
    /// No contact carries a `url`.
    MissingContactUrl = "missing-contact-url", Error;
    /// A contact `email` is not a syntactically valid address.
    InvalidEmail = "invalid-email", Error;
    /// A contact has none of `email`, `phone`, `url`.
    ContactWithoutChannel = "contact-without-channel", Warning;
    /// A `scopes` item is not a valid SMART App Launch 2.1 scope.
    InvalidScope = "invalid-scope", Error;
    /// A scope is listed more than once.
    DuplicateScope = "duplicate-scope", Warning;
    /// A scope carries a `?` search restriction, which HALO lets PoCs ignore.
    ScopeQueryIgnored = "scope-query-ignored", Info;
    /// A `tags` item is empty.
    EmptyTag = "empty-tag", Warning;
    /// A `translations` key is not a well-formed BCP 47 language tag.
    InvalidLanguageTag = "invalid-language-tag", Error;
    /// A field HALO does not define; it is kept, but no PoC will read it.
    UnknownField = "unknown-field", Info;
}

impl fmt::Display for Code {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl Serialize for Code {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(self.as_str())
    }
}

/// One thing validation found: `{severity, code, path, message}` (REQ CAT-08).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Finding {
    /// How serious it is (always `code.severity()`).
    pub severity: Severity,
    /// The stable kind of finding.
    pub code: Code,
    /// JSON path of the value concerned, e.g. `$[3].publisher.name`.
    pub path: String,
    /// What is wrong, in words a publisher can act on.
    pub message: String,
    /// Index of the catalog entry concerned, when the finding is about one entry.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub entry: Option<usize>,
}

impl Finding {
    /// A finding of kind `code` at `path`; its severity is the code's.
    pub fn new(code: Code, path: impl Into<String>, message: impl Into<String>) -> Self {
        Self {
            severity: code.severity(),
            code,
            path: path.into(),
            message: message.into(),
            entry: None,
        }
    }
}

impl fmt::Display for Finding {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} [{}] {}: {}",
            self.severity, self.code, self.path, self.message
        )
    }
}

/// Every finding of a validation run, in document order.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
#[serde(transparent)]
pub struct Report {
    /// The findings, entry by entry and field by field.
    pub findings: Vec<Finding>,
}

impl Report {
    /// Whether any finding is an error.
    pub fn has_errors(&self) -> bool {
        self.findings.iter().any(|f| f.severity == Severity::Error)
    }

    /// How many findings have severity `severity`.
    pub fn count(&self, severity: Severity) -> usize {
        self.findings
            .iter()
            .filter(|f| f.severity == severity)
            .count()
    }

    /// The error findings.
    pub fn errors(&self) -> impl Iterator<Item = &Finding> {
        self.findings
            .iter()
            .filter(|f| f.severity == Severity::Error)
    }

    /// The findings about entry `index`.
    pub fn for_entry(&self, index: usize) -> impl Iterator<Item = &Finding> {
        self.findings.iter().filter(move |f| f.entry == Some(index))
    }

    /// Whether the report holds no finding at all.
    pub fn is_empty(&self) -> bool {
        self.findings.is_empty()
    }
}
