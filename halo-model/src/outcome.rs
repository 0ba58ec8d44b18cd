//! FHIR OperationOutcome: builder and reader.
