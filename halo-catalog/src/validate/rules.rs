//! Checks on single values: UUIDs, URLs, email addresses, language tags. Each returns why the
//! value is wrong, in words, or nothing when it is fine.

use url::{Host, Url};

/// Why `text` is not an RFC 4122 UUID in its 36-character `8-4-4-4-12` hexadecimal form, or
/// `None` when it is one.
///
/// The variant must be RFC 4122's (`10xx`, the first hex digit of the fourth group is `8`, `9`,
/// `a` or `b`) and the version one that RFC 4122 or its successor RFC 9562 defines (1 to 8).
/// The nil UUID is rejected: it identifies nothing.
pub(crate) fn uuid_problem(text: &str) -> Option<&'static str> {
    let bytes = text.as_bytes();
    if bytes.len() != 36 {
        return Some("is not 36 characters in the form xxxxxxxx-xxxx-xxxx-xxxx-xxxxxxxxxxxx");
    }
    for (i, b) in bytes.iter().enumerate() {
        let ok = match i {
            8 | 13 | 18 | 23 => *b == b'-',
            _ => b.is_ascii_hexdigit(),
        };
        if !ok {
            return Some(
                "is not in the form xxxxxxxx-xxxx-xxxx-xxxx-xxxxxxxxxxxx (hexadecimal digits)",
            );
        }
    }
    if !matches!(bytes[19].to_ascii_lowercase(), b'8' | b'9' | b'a' | b'b') {
        return Some(
            "does not have the RFC 4122 variant (the first digit of the fourth group must be 8, 9, a or b)",
        );
    }
    if !matches!(bytes[14], b'1'..=b'8') {
        return Some(
            "does not have a defined UUID version (the first digit of the third group must be 1 to 8)",
        );
    }
    None
}

/// What a URL field turned out to be.
pub(crate) enum UrlCheck {
    /// An absolute `https` URL.
    Https,
    /// An absolute `http` URL; `loopback` when its host is `localhost` or a loopback address.
    Http {
        /// Whether the host is loopback.
        loopback: bool,
    },
    /// Absolute, but neither http nor https.
    OtherScheme(String),
    /// Not an absolute URL; the reason.
    Invalid(String),
}

/// Reads `text` as an absolute URL.
pub(crate) fn check_url(text: &str) -> UrlCheck {
    // `Url::parse` quietly trims surrounding spaces; a catalog value with them would not be the
    // URL a PoC opens, so they are an error here.
    if text.trim() != text {
        return UrlCheck::Invalid("has leading or trailing whitespace".to_owned());
    }
    match Url::parse(text) {
        Ok(url) if matches!(url.scheme(), "http" | "https") && !has_written_host(text) => {
            UrlCheck::Invalid("has no host (write it as scheme://host/path)".to_owned())
        }
        Ok(url) => match url.scheme() {
            "https" => UrlCheck::Https,
            "http" => UrlCheck::Http {
                loopback: is_loopback(&url),
            },
            other => UrlCheck::OtherScheme(other.to_owned()),
        },
        Err(url::ParseError::RelativeUrlWithoutBase) => {
            UrlCheck::Invalid("is not an absolute URL (it has no scheme such as https://)".into())
        }
        Err(e) => UrlCheck::Invalid(format!("is not a valid URL ({e})")),
    }
}

/// Whether an http(s) URL is written with `//` and a non-empty host after its scheme. The WHATWG
/// parser repairs `https:///launch` into `https://launch/` (and `https:example.com` into
/// `https://example.com/`), so a URL that parses can still name a host its author never wrote.
fn has_written_host(text: &str) -> bool {
    let Some((_, rest)) = text.split_once(':') else {
        return false;
    };
    let Some(rest) = rest.strip_prefix("//") else {
        return false;
    };
    let authority = rest.split(['/', '\\', '?', '#']).next().unwrap_or("");
    let host_and_port = authority.rsplit('@').next().unwrap_or("");
    let host = if host_and_port.starts_with('[') {
        host_and_port
    } else {
        host_and_port.split(':').next().unwrap_or("")
    };
    !host.is_empty()
}

fn is_loopback(url: &Url) -> bool {
    match url.host() {
        Some(Host::Domain(d)) => d.eq_ignore_ascii_case("localhost"),
        Some(Host::Ipv4(ip)) => ip.is_loopback(),
        Some(Host::Ipv6(ip)) => ip.is_loopback(),
        None => false,
    }
}

/// Why `text` is not a syntactically valid email address, or `None`.
///
/// This is the practical `local@domain` shape (RFC 5321/5322 without quoted local parts or
/// address literals, which no support mailbox needs): one `@`, a local part without spaces or
/// dot runs, and a domain of at least two labels of letters, digits and inner hyphens.
/// Internationalised letters are accepted in both parts (RFC 6531).
pub(crate) fn email_problem(text: &str) -> Option<&'static str> {
    let Some((local, domain)) = text.split_once('@') else {
        return Some("has no `@`");
    };
    if domain.contains('@') {
        return Some("has more than one `@`");
    }
    if local.is_empty() {
        return Some("has nothing before the `@`");
    }
    if local.chars().count() > 64 {
        return Some("has a part before the `@` longer than 64 characters");
    }
    let local_ok = local.chars().all(|c| {
        c.is_alphanumeric() || (c.is_ascii_punctuation() && !"\"(),:;<>@[\\]".contains(c))
    });
    if !local_ok {
        return Some("has a character that is not allowed before the `@`");
    }
    if local.starts_with('.') || local.ends_with('.') || local.contains("..") {
        return Some("has a misplaced `.` before the `@`");
    }
    let labels: Vec<&str> = domain.split('.').collect();
    if labels.len() < 2 {
        return Some("has a domain without a `.` (expected something like example.com)");
    }
    let labels_ok = labels.iter().all(|l| {
        !l.is_empty()
            && l.chars().count() <= 63
            && !l.starts_with('-')
            && !l.ends_with('-')
            && l.chars().all(|c| c.is_alphanumeric() || c == '-')
    });
    if !labels_ok {
        return Some("has a malformed domain after the `@`");
    }
    None
}

/// Whether `tag` is a well-formed BCP 47 language tag in the shape catalogs use: a 2–3 letter
/// (or 4–8 letter registered) primary language subtag, then subtags of 1–8 letters or digits
/// (`fr`, `fr-CA`, `zh-Hant-TW`, `en-x-plain`).
pub(crate) fn is_language_tag(tag: &str) -> bool {
    let mut subtags = tag.split('-');
    let primary_ok = subtags
        .next()
        .is_some_and(|p| (2..=8).contains(&p.len()) && p.bytes().all(|b| b.is_ascii_alphabetic()));
    primary_ok
        && subtags
            .all(|s| (1..=8).contains(&s.len()) && s.bytes().all(|b| b.is_ascii_alphanumeric()))
}

#[cfg(test)]
mod tests {
    use super::*;

    // REQ: CAT-04
    #[test]
    fn uuids() {
        assert_eq!(uuid_problem("fcf9956c-f952-40e0-8e24-a65d56118db2"), None);
        assert_eq!(uuid_problem("FCF9956C-F952-40E0-8E24-A65D56118DB2"), None);
        // The HALO example's publisher id: variant nibble 4 is the NCS variant, not RFC 4122's.
        assert!(uuid_problem("6b4929be-a7c0-4a38-4a8e-53338dbcb7f5").is_some());
        assert!(uuid_problem("00000000-0000-0000-0000-000000000000").is_some());
        assert!(uuid_problem("fcf9956cf95240e08e24a65d56118db2").is_some());
        assert!(uuid_problem("fcf9956c-f952-40e0-8e24-a65d56118dbz").is_some());
        assert!(uuid_problem("fcf9956c-f952-90e0-8e24-a65d56118db2").is_some());
    }

    // REQ: CAT-05
    #[test]
    fn urls() {
        assert!(matches!(
            check_url("https://example.com/x"),
            UrlCheck::Https
        ));
        assert!(matches!(
            check_url("http://127.0.0.1:8080/launch"),
            UrlCheck::Http { loopback: true }
        ));
        assert!(matches!(
            check_url("http://[::1]/"),
            UrlCheck::Http { loopback: true }
        ));
        assert!(matches!(
            check_url("http://LOCALHOST/"),
            UrlCheck::Http { loopback: true }
        ));
        assert!(matches!(
            check_url("http://example.com/"),
            UrlCheck::Http { loopback: false }
        ));
        assert!(matches!(check_url("ftp://example.com/"), UrlCheck::OtherScheme(s) if s == "ftp"));
        assert!(matches!(
            check_url("https://user@example.com:8443/x"),
            UrlCheck::Https
        ));
    }

    // REQ: CAT-05
    #[test]
    fn a_url_without_a_host_is_invalid_even_when_the_parser_repairs_it() {
        // Seen in a real catalog: the parser would read this as https://launch/.
        for text in [
            "https:///launch",
            "https:/launch",
            "https:launch.example.com/x",
            "http:///",
            "https://@/x",
            "https://:443/x",
            "https://?x",
            "https://#x",
            "https:\\\\example.com/x",
        ] {
            assert!(
                matches!(check_url(text), UrlCheck::Invalid(_)),
                "{text} has no written host"
            );
        }
        assert!(matches!(check_url("/relative/path"), UrlCheck::Invalid(_)));
        assert!(matches!(
            check_url(" https://example.com"),
            UrlCheck::Invalid(_)
        ));
        assert!(matches!(
            check_url("https://exa mple.com"),
            UrlCheck::Invalid(_)
        ));
    }

    // REQ: CAT-06
    #[test]
    fn emails() {
        for ok in [
            "support@example.com",
            "a.b+c@sub.example.ca",
            "soutien@santé.example.ca",
        ] {
            assert_eq!(email_problem(ok), None, "{ok}");
        }
        for bad in [
            "support",
            "@example.com",
            "a@b@example.com",
            "a b@example.com",
            "a@localhost",
            "a@-x.example.com",
            "a..b@example.com",
            "a@example..com",
        ] {
            assert!(email_problem(bad).is_some(), "{bad}");
        }
    }

    // REQ: CAT-14
    #[test]
    fn language_tags() {
        for ok in ["fr", "fr-CA", "en", "zh-Hant-TW", "en-x-plain", "iu-Latn"] {
            assert!(is_language_tag(ok), "{ok}");
        }
        for bad in [
            "",
            "f",
            "fr_CA",
            "français",
            "fr-",
            "-CA",
            "fr-CA-toolongsubtag",
        ] {
            assert!(!is_language_tag(bad), "{bad}");
        }
    }
}
