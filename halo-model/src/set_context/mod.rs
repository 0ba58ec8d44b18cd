//! HALO `$set-context` / `$clear-context` profiles: builders, parsers, validators.
