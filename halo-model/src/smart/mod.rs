//! SMART documents: `.well-known/smart-configuration`, token response, launch context, introspection.
