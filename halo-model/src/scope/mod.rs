//! SMART App Launch 2.1 scopes: grammar, v1 mapping, scope sets.
