//! FHIR media types and content negotiation, in one place for every endpoint.
//!
//! ```
//! use halo_model::fhir::media::{self, Format};
//!
//! // `_format` wins over `Accept`; `application/json` is accepted as FHIR JSON.
//! assert_eq!(media::negotiate(Some("application/json"), None), Ok(Format::Json));
//! assert_eq!(media::negotiate(Some("application/fhir+json"), Some("xml")), Ok(Format::Xml));
//! assert_eq!(media::negotiate(Some("*/*"), None), Ok(Format::Json));
//!
//! let content_type = media::MediaType::parse("application/fhir+json; charset=utf-8").unwrap();
//! assert_eq!(content_type.format, Format::Json);
//! ```

use std::fmt;

/// `application/fhir+json`.
pub const FHIR_JSON: &str = "application/fhir+json";
/// `application/fhir+json; fhirVersion=4.0`: what the SDK's FHIR responses carry.
pub const FHIR_JSON_R4: &str = "application/fhir+json; fhirVersion=4.0";
/// `application/fhir+xml`.
pub const FHIR_XML: &str = "application/fhir+xml";
/// `application/fhir+xml; fhirVersion=4.0`.
pub const FHIR_XML_R4: &str = "application/fhir+xml; fhirVersion=4.0";
/// `application/json`: accepted as FHIR JSON, and the type of SMART and OAuth documents.
pub const JSON: &str = "application/json";
/// `application/x-www-form-urlencoded`: OAuth token and authorize POST bodies.
pub const FORM: &str = "application/x-www-form-urlencoded";
/// The FHIR version parameter value for R4 (`fhirVersion=4.0`).
pub const R4_VERSION_PARAMETER: &str = "4.0";

/// A FHIR serialisation format.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Format {
    /// JSON.
    Json,
    /// XML.
    Xml,
}

impl Format {
    /// The media type a response in this format carries.
    pub fn content_type(self) -> &'static str {
        match self {
            Format::Json => FHIR_JSON_R4,
            Format::Xml => FHIR_XML_R4,
        }
    }
}

/// A parsed `Content-Type` of a FHIR request body.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MediaType {
    /// The format.
    pub format: Format,
    /// Whether the FHIR-specific type was used (`application/fhir+json` rather than
    /// `application/json`).
    pub fhir_specific: bool,
    /// The `fhirVersion` parameter, when present.
    pub fhir_version: Option<String>,
}

/// Why a media type was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MediaTypeError {
    /// The type is not a FHIR format.
    #[error("`{0}` is not a FHIR format; send application/fhir+json")]
    Unsupported(String),
    /// The `fhirVersion` parameter names a version other than R4.
    #[error("fhirVersion `{0}` is not supported; this server speaks FHIR R4 (4.0)")]
    WrongVersion(String),
    /// Nothing in `Accept` or `_format` can be produced.
    #[error("none of the requested formats (`{0}`) can be produced; ask for application/fhir+json")]
    NotAcceptable(String),
}

impl MediaType {
    /// Parses a `Content-Type` header value: `application/fhir+json`, `application/json`, the
    /// legacy `application/json+fhir`, their XML counterparts, with `charset` and `fhirVersion`
    /// parameters (any other `fhirVersion` than 4.0 is refused).
    pub fn parse(content_type: &str) -> Result<MediaType, MediaTypeError> {
        let mut parts = content_type.split(';');
        let essence = parts.next().unwrap_or("").trim().to_ascii_lowercase();
        let (format, fhir_specific) = match essence.as_str() {
            "application/fhir+json" | "application/json+fhir" => (Format::Json, true),
            "application/json" => (Format::Json, false),
            "application/fhir+xml" | "application/xml+fhir" => (Format::Xml, true),
            "application/xml" | "text/xml" => (Format::Xml, false),
            _ => return Err(MediaTypeError::Unsupported(content_type.trim().to_string())),
        };
        let mut fhir_version = None;
        for parameter in parts {
            let Some((name, value)) = parameter.split_once('=') else {
                continue;
            };
            if name.trim().eq_ignore_ascii_case("fhirVersion") {
                let value = value.trim().trim_matches('"').to_string();
                if value != R4_VERSION_PARAMETER && value != "4.0.1" {
                    return Err(MediaTypeError::WrongVersion(value));
                }
                fhir_version = Some(value);
            }
        }
        Ok(MediaType {
            format,
            fhir_specific,
            fhir_version,
        })
    }
}

impl fmt::Display for MediaType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match (self.format, self.fhir_specific) {
            (Format::Json, true) => FHIR_JSON,
            (Format::Json, false) => JSON,
            (Format::Xml, true) => FHIR_XML,
            (Format::Xml, false) => "application/xml",
        })?;
        if let Some(version) = &self.fhir_version {
            write!(f, "; fhirVersion={version}")?;
        }
        Ok(())
    }
}

/// Reads the `_format` search parameter (`json`, `xml`, or a media type).
fn format_parameter(value: &str) -> Option<Format> {
    match value.trim().to_ascii_lowercase().as_str() {
        "json" => Some(Format::Json),
        "xml" => Some(Format::Xml),
        other => MediaType::parse(other).ok().map(|m| m.format),
    }
}

/// Chooses the response format: the `_format` parameter wins (FHIR §3.1.0.1.7), then `Accept`
/// with its `q` weights, then JSON when nothing is asked for.
pub fn negotiate(accept: Option<&str>, format: Option<&str>) -> Result<Format, MediaTypeError> {
    if let Some(value) = format {
        return format_parameter(value)
            .ok_or_else(|| MediaTypeError::NotAcceptable(value.to_string()));
    }
    let Some(accept) = accept.filter(|a| !a.trim().is_empty()) else {
        return Ok(Format::Json);
    };
    let mut best: Option<(f32, Format)> = None;
    for range in accept.split(',') {
        let mut parts = range.split(';');
        let essence = parts.next().unwrap_or("").trim().to_ascii_lowercase();
        let mut quality = 1.0f32;
        let mut version_ok = true;
        for parameter in parts {
            if let Some((name, value)) = parameter.split_once('=') {
                let name = name.trim();
                if name.eq_ignore_ascii_case("q") {
                    quality = value.trim().parse().unwrap_or(0.0);
                } else if name.eq_ignore_ascii_case("fhirVersion") {
                    let value = value.trim();
                    version_ok = value == R4_VERSION_PARAMETER || value == "4.0.1";
                }
            }
        }
        if quality <= 0.0 || !version_ok {
            continue;
        }
        let format = match essence.as_str() {
            "*/*" | "application/*" => Some(Format::Json),
            other => MediaType::parse(other).ok().map(|m| m.format),
        };
        if let Some(format) = format {
            // Strictly greater: among equal weights the first listed wins.
            if best.is_none_or(|(q, _)| quality > q) {
                best = Some((quality, format));
            }
        }
    }
    best.map(|(_, f)| f)
        .ok_or_else(|| MediaTypeError::NotAcceptable(accept.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn content_types_are_read_with_their_parameters() {
        let m = MediaType::parse("application/fhir+json; fhirVersion=4.0; charset=UTF-8").unwrap();
        assert_eq!(m.format, Format::Json);
        assert!(m.fhir_specific);
        assert_eq!(m.fhir_version.as_deref(), Some("4.0"));
        assert_eq!(m.to_string(), "application/fhir+json; fhirVersion=4.0");
        assert!(!MediaType::parse("Application/JSON").unwrap().fhir_specific);
        assert_eq!(
            MediaType::parse("application/fhir+xml").unwrap().format,
            Format::Xml
        );
        assert!(matches!(
            MediaType::parse("text/plain"),
            Err(MediaTypeError::Unsupported(_))
        ));
        assert!(matches!(
            MediaType::parse("application/fhir+json; fhirVersion=5.0"),
            Err(MediaTypeError::WrongVersion(v)) if v == "5.0"
        ));
    }

    #[test]
    fn negotiation_honours_format_parameter_and_weights() {
        assert_eq!(negotiate(None, None), Ok(Format::Json));
        assert_eq!(negotiate(Some(""), None), Ok(Format::Json));
        assert_eq!(
            negotiate(Some("application/fhir+xml"), Some("json")),
            Ok(Format::Json)
        );
        assert_eq!(
            negotiate(
                Some("application/fhir+json;q=0.5, application/fhir+xml"),
                None
            ),
            Ok(Format::Xml)
        );
        assert_eq!(
            negotiate(Some("text/html, application/*;q=0.8"), None),
            Ok(Format::Json)
        );
        assert!(matches!(
            negotiate(Some("text/html"), None),
            Err(MediaTypeError::NotAcceptable(_))
        ));
        assert!(negotiate(None, Some("turtle")).is_err());
        assert!(negotiate(Some("application/fhir+json; fhirVersion=3.0"), None).is_err());
    }
}
