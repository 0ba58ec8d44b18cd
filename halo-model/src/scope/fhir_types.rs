//! The FHIR R4 (4.0.1) resource type names, used to restore the case of `launch/<type>` scopes,
//! which the spec writes in lower case (`launch/imagingstudy` means `ImagingStudy`).

use crate::fhir::r4_resource_type_ignoring_case;

/// The resource type `text` names, compared without regard to case. A name FHIR R4 does not know
/// (a later FHIR version's type, say) keeps its letters with the first one upper-cased, so
/// `launch/Foo` and `launch/foo` both mean `Foo`.
pub(crate) fn normalise_resource_type(text: &str) -> String {
    if let Some(known) = r4_resource_type_ignoring_case(text) {
        return known.to_owned();
    }
    let mut chars = text.chars();
    chars
        .next()
        .map(|first| first.to_ascii_uppercase().to_string() + chars.as_str())
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    // REQ: SCP-03
    #[test]
    fn lower_case_names_get_their_fhir_case() {
        assert_eq!(normalise_resource_type("patient"), "Patient");
        assert_eq!(normalise_resource_type("imagingstudy"), "ImagingStudy");
        assert_eq!(
            normalise_resource_type("PRACTITIONERROLE"),
            "PractitionerRole"
        );
        assert_eq!(normalise_resource_type("futureThing"), "FutureThing");
    }
}
