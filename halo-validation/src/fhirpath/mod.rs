//! The FHIRPath subset the invariants of the supported definitions need.
//!
//! Parsing happens once, when definitions load; evaluation runs per element. Anything outside the
//! subset (an unknown function, a type test on an untyped JSON value) is an
//! [`Unsupported`](eval::Unsupported) result, never a silent pass.

mod eval;
mod parse;

pub(crate) use eval::{Env, Item, evaluate, to_bool, unsupported_features};
pub(crate) use parse::{Expr, parse};
