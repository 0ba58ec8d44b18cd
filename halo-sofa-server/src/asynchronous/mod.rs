//! The FHIR asynchronous request pattern (`Prefer: respond-async`, 202 and a status endpoint).
