//! The bodies of the HALO fuzz targets.
//!
//! Each target is a plain function of the input bytes. The cargo-fuzz binaries in `fuzz/` call
//! these functions under libFuzzer (nightly), and `tests/corpus.rs` calls the same functions on
//! every committed corpus file with stable Rust, so a crash once found stays fixed. A target
//! "crashes" by panicking: every parser must turn hostile input into an error value, and the
//! few invariants asserted here (a value that parsed once parses again after being written)
//! hold for every input.
//!
//! Structured targets (names ending in `_structured`) decode the bytes with [`arbitrary`] into
//! documents built from the protocol's own vocabulary, because raw bytes rarely get past a JSON
//! parser into the validation behind it.

mod catalog;
mod fhir;
mod model;
mod smart_client;
mod structured;

/// A fuzz target: its name (the `fuzz/fuzz_targets/<name>.rs` binary and the
/// `fuzz/corpus/<name>/` folder) and its body.
pub type Target = (&'static str, fn(&[u8]));

/// Every target, in the order `docs/fuzzing.md` lists them.
pub const TARGETS: &[Target] = &[
    ("catalog", catalog::catalog),
    ("catalog_structured", catalog::catalog_structured),
    ("scope", model::scope),
    ("smart_configuration", model::smart_configuration),
    ("token_response", model::token_response),
    ("introspection", model::introspection),
    ("jwt", smart_client::jwt),
    ("jwt_claims_structured", smart_client::jwt_claims_structured),
    ("form", smart_client::form),
    ("set_context", model::set_context),
    ("set_context_structured", model::set_context_structured),
    ("notification", model::notification),
    ("json_limits", model::json_limits),
    ("validate", fhir::validate),
    ("validate_structured", fhir::validate_structured),
    ("primitives", fhir::primitives),
    ("fhirpath", fhir::fhirpath),
    ("xml", fhir::xml),
    ("xml_write", fhir::xml_write),
];

/// The body of the target called `name`, if there is one.
pub fn target(name: &str) -> Option<fn(&[u8])> {
    TARGETS
        .iter()
        .find(|(target, _)| *target == name)
        .map(|(_, body)| *body)
}

/// The input as text, as a server reading a UTF-8 body would have it: invalid UTF-8 is replaced,
/// not rejected, so the parser behind still sees every byte pattern that can be text.
fn text(data: &[u8]) -> std::borrow::Cow<'_, str> {
    String::from_utf8_lossy(data)
}
