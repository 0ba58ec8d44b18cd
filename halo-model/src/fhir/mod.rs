//! FHIR JSON: raw lossless resources, media types, and typed resources through `fhir-model`.
