//! Fetching a catalog: `GET [base]` with `Accept: application/json`, a timeout and a body limit
//! (REQ CAT-13).

use crate::finding::Report;
use crate::model::Catalog;
use crate::parse::{CatalogError, Mode, Parsed};
use std::time::Duration;
use url::Url;

/// How long a catalog fetch may take, connection to last byte, unless set otherwise.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(30);
/// The largest catalog body accepted unless set otherwise (a 10,000-entry catalog is ~20 MiB).
pub const DEFAULT_MAX_BODY: usize = 64 * 1024 * 1024;

/// Why a catalog could not be fetched.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ClientError {
    /// The base URL is not an absolute http(s) URL.
    #[error("catalog URL `{0}` is not an absolute http or https URL")]
    InvalidBase(String),
    /// The HTTP client could not be built (TLS set-up).
    #[error("could not set up the HTTP client: {0}")]
    Setup(#[source] reqwest::Error),
    /// The server did not answer within the timeout.
    #[error("the catalog at {url} did not answer within {} s", .after.as_secs_f32())]
    Timeout {
        /// The URL fetched.
        url: String,
        /// The timeout that ran out.
        after: Duration,
    },
    /// Connection, TLS or protocol failure.
    #[error("could not fetch the catalog at {url}: {source}")]
    Transport {
        /// The URL fetched.
        url: String,
        /// What failed.
        #[source]
        source: reqwest::Error,
    },
    /// The server answered with a status other than 2xx.
    #[error("the catalog at {url} answered HTTP {status}{}", if .body.is_empty() { String::new() } else { format!(": {}", .body) })]
    Status {
        /// The URL fetched.
        url: String,
        /// The HTTP status code.
        status: u16,
        /// The start of the response body (at most 512 characters), to show what the server said.
        body: String,
    },
    /// The body is larger than the limit.
    #[error("the catalog at {url} is larger than the {limit}-byte limit")]
    TooLarge {
        /// The URL fetched.
        url: String,
        /// The limit in bytes.
        limit: usize,
    },
    /// The body is not JSON.
    #[error("the catalog at {url} is not valid JSON: {source}")]
    InvalidJson {
        /// The URL fetched.
        url: String,
        /// Where the JSON breaks.
        #[source]
        source: serde_json::Error,
    },
    /// The JSON is not an array of entries.
    #[error("the catalog at {url} is not a JSON array of app entries (found {found})")]
    NotAnArray {
        /// The URL fetched.
        url: String,
        /// What was found instead.
        found: &'static str,
    },
    /// Strict mode: some entries have errors; the report lists them all.
    #[error("the catalog has {} invalid entr(y/ies)", .0.errors().filter_map(|f| f.entry).collect::<std::collections::BTreeSet<_>>().len())]
    InvalidEntries(Report),
}

impl ClientError {
    /// A stable machine-readable code for the kind of failure.
    pub fn code(&self) -> &'static str {
        match self {
            ClientError::InvalidBase(_) => "invalid-base-url",
            ClientError::Setup(_) => "client-setup",
            ClientError::Timeout { .. } => "timeout",
            ClientError::Transport { .. } => "transport",
            ClientError::Status { .. } => "http-status",
            ClientError::TooLarge { .. } => "too-large",
            ClientError::InvalidJson { .. } => "invalid-json",
            ClientError::NotAnArray { .. } => "not-an-array",
            ClientError::InvalidEntries(_) => "invalid-entries",
        }
    }
}

/// Fetches and validates a jurisdiction's App Catalog.
///
/// ```no_run
/// # async fn demo() -> Result<(), halo_catalog::ClientError> {
/// use halo_catalog::{CatalogClient, Mode};
/// let client = CatalogClient::new("https://catalog.example.ca/apps")?;
/// let parsed = client.fetch().await?;           // lenient: broken entries are reported
/// for entry in &parsed.catalog {
///     println!("{} {}", entry.id, entry.name);
/// }
/// # Ok(()) }
/// ```
#[derive(Debug, Clone)]
pub struct CatalogClient {
    http: reqwest::Client,
    base: Url,
    timeout: Duration,
    max_body: usize,
    mode: Mode,
}

impl CatalogClient {
    /// A client for the catalog at `base`, with [`DEFAULT_TIMEOUT`], [`DEFAULT_MAX_BODY`] and
    /// lenient mode.
    pub fn new(base: &str) -> Result<Self, ClientError> {
        let base = Url::parse(base).map_err(|_| ClientError::InvalidBase(base.to_owned()))?;
        if !matches!(base.scheme(), "http" | "https") || base.cannot_be_a_base() {
            return Err(ClientError::InvalidBase(base.to_string()));
        }
        let http = reqwest::Client::builder()
            .connect_timeout(DEFAULT_TIMEOUT)
            .build()
            .map_err(ClientError::Setup)?;
        Ok(Self {
            http,
            base,
            timeout: DEFAULT_TIMEOUT,
            max_body: DEFAULT_MAX_BODY,
            mode: Mode::Lenient,
        })
    }

    /// Uses `http` (for shared connection pools or custom TLS roots) instead of a new client.
    #[must_use]
    pub fn with_http_client(mut self, http: reqwest::Client) -> Self {
        self.http = http;
        self
    }

    /// Bounds the whole fetch, from connecting to the last byte of the body.
    #[must_use]
    pub fn with_timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    /// Refuses bodies larger than `bytes`.
    #[must_use]
    pub fn with_max_body(mut self, bytes: usize) -> Self {
        self.max_body = bytes;
        self
    }

    /// Lenient (the default) or strict handling of invalid entries.
    #[must_use]
    pub fn with_mode(mut self, mode: Mode) -> Self {
        self.mode = mode;
        self
    }

    /// The catalog URL.
    pub fn base(&self) -> &Url {
        &self.base
    }

    /// `GET [base]`: the raw body, checked for status and size but not parsed.
    pub async fn fetch_bytes(&self) -> Result<Vec<u8>, ClientError> {
        // reqwest's per-request timeout runs from connecting until the body has been read, so
        // a server that trickles bytes forever is cut off too.
        self.get_body(self.base.as_str()).await
    }

    /// `GET [base]`, then parse and validate it (see [`Catalog::parse`]).
    pub async fn fetch(&self) -> Result<Parsed, ClientError> {
        let bytes = self.fetch_bytes().await?;
        let url = self.base.to_string();
        Catalog::parse(&bytes, self.mode).map_err(|e| match e {
            CatalogError::Json(source) => ClientError::InvalidJson { url, source },
            CatalogError::NotAnArray { found } => ClientError::NotAnArray { url, found },
            CatalogError::Invalid(report) => ClientError::InvalidEntries(report),
        })
    }

    async fn get_body(&self, url: &str) -> Result<Vec<u8>, ClientError> {
        let transport = |source: reqwest::Error| {
            if source.is_timeout() {
                ClientError::Timeout {
                    url: url.to_owned(),
                    after: self.timeout,
                }
            } else {
                ClientError::Transport {
                    url: url.to_owned(),
                    source,
                }
            }
        };
        let mut response = self
            .http
            .get(self.base.clone())
            .header(reqwest::header::ACCEPT, "application/json")
            .timeout(self.timeout)
            .send()
            .await
            .map_err(transport)?;
        let status = response.status();
        if response
            .content_length()
            .is_some_and(|n| n > self.max_body as u64)
        {
            return Err(ClientError::TooLarge {
                url: url.to_owned(),
                limit: self.max_body,
            });
        }
        let mut body = Vec::new();
        while let Some(chunk) = response.chunk().await.map_err(transport)? {
            if body.len() + chunk.len() > self.max_body {
                return Err(ClientError::TooLarge {
                    url: url.to_owned(),
                    limit: self.max_body,
                });
            }
            body.extend_from_slice(&chunk);
            // An error page needs no more than its start.
            if !status.is_success() && body.len() > 4096 {
                break;
            }
        }
        if !status.is_success() {
            let text: String = String::from_utf8_lossy(&body).chars().take(512).collect();
            return Err(ClientError::Status {
                url: url.to_owned(),
                status: status.as_u16(),
                body: text.trim().to_owned(),
            });
        }
        Ok(body)
    }
}
