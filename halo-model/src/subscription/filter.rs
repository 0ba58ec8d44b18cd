//! Filter criteria of a backport Subscription (`backport-filter-criteria`).

use std::fmt;

/// One filter: `[Type(?|.)]parameter[:modifier]=value`. Several filters are ANDed.
///
/// Both forms seen in practice are read: the IG's examples write `Encounter?patient=Patient/123`,
/// Inferno's samples `Encounter.patient=Patient/123`.
///
/// ```
/// use halo_model::subscription::Filter;
/// let filter: Filter = "Encounter.patient:missing=false".parse().unwrap();
/// assert_eq!(filter.resource_type.as_deref(), Some("Encounter"));
/// assert_eq!(filter.parameter, "patient");
/// assert_eq!(filter.modifier.as_deref(), Some("missing"));
/// assert_eq!(filter.value, "false");
/// assert_eq!(filter.to_string(), "Encounter?patient:missing=false");
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Filter {
    /// The resource type the filter applies to, when given.
    pub resource_type: Option<String>,
    /// The filter parameter (as the topic's `canFilterBy` names it).
    pub parameter: String,
    /// The search modifier, when given.
    pub modifier: Option<String>,
    /// The value.
    pub value: String,
}

/// Why a filter string could not be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("filter criteria {0:?} is not [Type?]parameter[:modifier]=value")]
pub struct FilterError(pub String);

impl std::str::FromStr for Filter {
    type Err = FilterError;

    fn from_str(text: &str) -> Result<Filter, FilterError> {
        let error = || FilterError(text.to_owned());
        let (left, value) = text.split_once('=').ok_or_else(error)?;
        let (resource_type, left) = match left.split_once(['?', '.']) {
            Some((kind, rest)) => (Some(kind), rest),
            None => (None, left),
        };
        let (parameter, modifier) = match left.split_once(':') {
            Some((parameter, modifier)) => (parameter, Some(modifier)),
            None => (left, None),
        };
        let is_type = |t: &str| {
            t.chars().next().is_some_and(|c| c.is_ascii_uppercase())
                && t.chars().all(|c| c.is_ascii_alphabetic())
        };
        if parameter.is_empty()
            || value.is_empty()
            || resource_type.is_some_and(|t| !is_type(t))
            || modifier.is_some_and(str::is_empty)
        {
            return Err(error());
        }
        Ok(Filter {
            resource_type: resource_type.map(str::to_owned),
            parameter: parameter.to_owned(),
            modifier: modifier.map(str::to_owned),
            value: value.to_owned(),
        })
    }
}

impl fmt::Display for Filter {
    /// Writes the IG's query form (`Type?parameter=value`).
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if let Some(kind) = &self.resource_type {
            write!(f, "{kind}?")?;
        }
        f.write_str(&self.parameter)?;
        if let Some(modifier) = &self.modifier {
            write!(f, ":{modifier}")?;
        }
        write!(f, "={}", self.value)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn filters_without_a_type_and_bad_filters() {
        let plain: Filter = "patient=Patient/1".parse().unwrap();
        assert_eq!(plain.resource_type, None);
        for bad in [
            "",
            "patient",
            "=x",
            "patient=",
            "encounter?patient=1",
            "Encounter?patient:=1",
        ] {
            assert!(bad.parse::<Filter>().is_err(), "{bad}");
        }
    }
}
