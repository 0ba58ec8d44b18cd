//! The SMART EHR launch URL (REQ LI-01): the app's `launchUrl` with `iss` and `launch` added.

use url::Url;

use crate::error::{PocError, Result};

/// Builds the URL that opens an app: `launch_url` (the App Catalog's `launchUrl`) with `iss`
/// and `launch` appended as URL-encoded query parameters.
///
/// A query the launch URL already has is kept in order (some apps route on it); an `iss` or
/// `launch` already in it is replaced, because an app reading the first of two values would
/// start against the wrong server. A fragment is kept. Only `https` launch URLs are accepted,
/// and `http` on a loopback host (development).
///
/// ```
/// let url = halo_poc::launch_url(
///     "https://app.example.org/launch?tenant=ns",
///     "https://sofa.example.org/fhir",
///     "a b&c",
/// )?;
/// assert_eq!(
///     url.as_str(),
///     "https://app.example.org/launch?tenant=ns&iss=https%3A%2F%2Fsofa.example.org%2Ffhir&launch=a+b%26c"
/// );
/// # Ok::<(), halo_poc::PocError>(())
/// ```
pub fn launch_url(launch_url: &str, iss: &str, launch: &str) -> Result<Url> {
    let mut url = Url::parse(launch_url).map_err(|e| PocError::InvalidUrl {
        url: launch_url.to_owned(),
        reason: e.to_string(),
    })?;
    check_scheme(&url, launch_url)?;
    let iss_url = Url::parse(iss).map_err(|e| PocError::InvalidUrl {
        url: iss.to_owned(),
        reason: format!("iss must be an absolute URL ({e})"),
    })?;
    check_scheme(&iss_url, iss)?;
    if launch.is_empty() {
        return Err(PocError::InvalidUrl {
            url: launch_url.to_owned(),
            reason: "the launch id is empty".into(),
        });
    }
    let kept: Vec<(String, String)> = url
        .query_pairs()
        .filter(|(name, _)| name != "iss" && name != "launch")
        .map(|(n, v)| (n.into_owned(), v.into_owned()))
        .collect();
    {
        let mut pairs = url.query_pairs_mut();
        pairs.clear();
        for (name, value) in &kept {
            pairs.append_pair(name, value);
        }
        pairs.append_pair("iss", iss).append_pair("launch", launch);
    }
    Ok(url)
}

/// `https`, or `http` on a loopback host.
pub(crate) fn check_scheme(url: &Url, original: &str) -> Result<()> {
    let loopback = matches!(
        url.host(),
        Some(url::Host::Domain("localhost"))
            | Some(url::Host::Ipv4(std::net::Ipv4Addr::LOCALHOST))
            | Some(url::Host::Ipv6(std::net::Ipv6Addr::LOCALHOST))
    );
    match url.scheme() {
        "https" => Ok(()),
        "http" if loopback => Ok(()),
        other => Err(PocError::InvalidUrl {
            url: original.to_owned(),
            reason: format!("the scheme must be https (found '{other}')"),
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    // REQ: LI-01
    #[test]
    fn appends_encoded_iss_and_launch_keeping_the_query() {
        let url = launch_url(
            "https://app.example.org/smart/launch.html?x=1&y=%C3%A9#top",
            "https://sofa.example.org/fhir/R4",
            "Zx9_-AbC",
        )
        .unwrap();
        assert_eq!(
            url.as_str(),
            "https://app.example.org/smart/launch.html?x=1&y=%C3%A9&iss=https%3A%2F%2Fsofa.example.org%2Ffhir%2FR4&launch=Zx9_-AbC#top"
        );
        let pairs: Vec<(String, String)> = url.query_pairs().into_owned().collect();
        assert_eq!(pairs[1], ("y".into(), "é".into()));
        assert_eq!(pairs[2].1, "https://sofa.example.org/fhir/R4");
    }

    // REQ: LI-01
    #[test]
    fn replaces_stale_iss_and_launch_and_refuses_bad_urls() {
        let url = launch_url(
            "https://app.example.org/l?iss=https://evil.example&launch=old&k=v",
            "https://sofa.example.org/fhir",
            "new",
        )
        .unwrap();
        let pairs: Vec<(String, String)> = url.query_pairs().into_owned().collect();
        assert_eq!(
            pairs,
            [
                ("k".to_owned(), "v".to_owned()),
                ("iss".to_owned(), "https://sofa.example.org/fhir".to_owned()),
                ("launch".to_owned(), "new".to_owned())
            ]
        );
        for (launch, iss) in [
            ("not a url", "https://sofa.example.org"),
            ("javascript:alert(1)", "https://sofa.example.org"),
            ("http://app.example.org/l", "https://sofa.example.org"),
            ("https://app.example.org/l", "http://sofa.example.org"),
            ("https://app.example.org/l", "/fhir"),
        ] {
            let error = launch_url(launch, iss, "x").unwrap_err();
            assert_eq!(error.code(), "poc.invalid-url", "{launch} {iss}");
        }
        assert!(launch_url("http://127.0.0.1:8080/l", "http://localhost:9/fhir", "x").is_ok());
        assert!(launch_url("https://app.example.org/l", "https://s.example.org", "").is_err());
    }
}
