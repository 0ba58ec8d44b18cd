//! OAuth 2.0 error responses (RFC 6749 §4.1.2.1 and §5.2).
