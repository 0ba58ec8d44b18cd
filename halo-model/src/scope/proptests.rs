//! Property tests: every string the grammar generates reads back to itself, and no input panics.

use proptest::prelude::*;

use super::*;

fn level() -> impl Strategy<Value = &'static str> {
    prop_oneof![Just("patient"), Just("user"), Just("system")]
}

fn resource_type() -> impl Strategy<Value = String> {
    prop_oneof![Just("*".to_owned()), "[A-Z][A-Za-z]{1,20}"]
}

/// A non-empty, in-order subset of `cruds`.
fn v2_permissions() -> impl Strategy<Value = String> {
    (1u8..32).prop_map(|bits| {
        "cruds"
            .chars()
            .enumerate()
            .filter(|(i, _)| bits & (1 << i) != 0)
            .map(|(_, c)| c)
            .collect()
    })
}

/// Query values: scope characters except the `&` separator (`=` and `?` are fine in a value).
fn query() -> impl Strategy<Value = String> {
    prop::collection::vec(
        (
            "[a-z_][a-zA-Z0-9_:.-]{0,12}",
            "[a-zA-Z0-9|:/._~%=?!#$'()*+,;@\\[\\]^`{}-]{1,24}",
        ),
        1..4,
    )
    .prop_map(|params| {
        let joined: Vec<String> = params.iter().map(|(n, v)| format!("{n}={v}")).collect();
        format!("?{}", joined.join("&"))
    })
}

fn resource_scope() -> impl Strategy<Value = String> {
    prop_oneof![
        (
            level(),
            resource_type(),
            v2_permissions(),
            prop::option::of(query())
        )
            .prop_map(|(l, t, p, q)| format!("{l}/{t}.{p}{}", q.unwrap_or_default())),
        (
            level(),
            resource_type(),
            prop_oneof![Just("read"), Just("write"), Just("*")]
        )
            .prop_map(|(l, t, p)| format!("{l}/{t}.{p}")),
    ]
}

fn context_scope() -> impl Strategy<Value = String> {
    prop_oneof![
        Just("launch".to_owned()),
        (
            "[A-Za-z]{1,20}",
            prop::option::of("[a-zA-Z0-9:/._~%=?-]{1,30}")
        )
            .prop_map(|(t, role)| match role {
                Some(r) => format!("launch/{t}?role={r}"),
                None => format!("launch/{t}"),
            }),
    ]
}

fn other_scope() -> impl Strategy<Value = String> {
    prop_oneof![
        prop::sample::select(vec![
            "openid",
            "fhirUser",
            "profile",
            "email",
            "address",
            "phone",
            "offline_access",
            "online_access",
            "Context.write",
        ])
        .prop_map(str::to_owned),
        "__[A-Za-z0-9._-]{1,20}",
        "(https?|urn):[a-zA-Z0-9/._~%#=?&-]{1,30}",
    ]
}

fn any_valid_scope() -> impl Strategy<Value = String> {
    prop_oneof![resource_scope(), context_scope(), other_scope()]
}

proptest! {
    // REQ: SCP-06
    #[test]
    fn every_valid_scope_round_trips(text in any_valid_scope()) {
        let scope = Scope::parse(&text).map_err(|e| TestCaseError::fail(e.to_string()))?;
        prop_assert_eq!(scope.to_string(), text.clone());
        let json = serde_json::to_string(&scope).map_err(|e| TestCaseError::fail(e.to_string()))?;
        let back: Scope = serde_json::from_str(&json).map_err(|e| TestCaseError::fail(e.to_string()))?;
        prop_assert_eq!(back, scope);
    }

    // REQ: SCP-06
    #[test]
    fn valid_scope_strings_round_trip_as_sets(texts in prop::collection::vec(any_valid_scope(), 0..8)) {
        let joined = texts.join(" ");
        let set = ScopeSet::parse(&joined).map_err(|e| TestCaseError::fail(e.to_string()))?;
        let mut unique: Vec<&String> = Vec::new();
        for t in &texts {
            if !unique.contains(&t) {
                unique.push(t);
            }
        }
        let expected: Vec<&str> = unique.iter().map(|s| s.as_str()).collect();
        prop_assert_eq!(set.to_string(), expected.join(" "));
        prop_assert_eq!(set.len(), unique.len());
    }

    // REQ: SCP-01
    #[test]
    fn permits_follows_the_permission_letters(
        l in level(), t in "[A-Z][a-z]{1,10}", p in v2_permissions()
    ) {
        let set = ScopeSet::parse(&format!("{l}/{t}.{p}")).map_err(|e| TestCaseError::fail(e.to_string()))?;
        for level in Level::ALL {
            for interaction in Interaction::ALL {
                let expected = level.as_str() == l && p.contains(interaction.letter());
                prop_assert_eq!(set.permits(level, &t, interaction), expected);
            }
        }
    }

    // REQ: SCP-05
    #[test]
    fn set_operations_agree_with_each_other(
        a in prop::collection::vec(any_valid_scope(), 0..6),
        b in prop::collection::vec(any_valid_scope(), 0..6),
    ) {
        let a = ScopeSet::parse(&a.join(" ")).map_err(|e| TestCaseError::fail(e.to_string()))?;
        let b = ScopeSet::parse(&b.join(" ")).map_err(|e| TestCaseError::fail(e.to_string()))?;
        prop_assert!(a.not_granted(&a).is_empty());
        prop_assert!(a.not_granted(&a.union(&b)).is_empty());
        prop_assert!(a.intersection(&b).not_granted(&a).is_empty());
        prop_assert!(a.intersection(&b).not_granted(&b).is_empty());
        for level in Level::ALL {
            for interaction in Interaction::ALL {
                let both = a.intersection(&b).permits(level, "Observation", interaction);
                prop_assert_eq!(
                    both,
                    a.permits(level, "Observation", interaction)
                        && b.permits(level, "Observation", interaction)
                );
            }
        }
    }

    #[test]
    fn arbitrary_text_never_panics(text in "\\PC{0,40}") {
        let _ = Scope::parse(&text);
        let _ = ScopeSet::parse_lenient(&text);
    }

    #[test]
    fn near_miss_text_never_panics(text in "(patient|user|system|launch)[/.?=&*a-zA-Z]{0,20}") {
        if let Ok(scope) = Scope::parse(&text) {
            prop_assert_eq!(scope.to_string(), text);
        }
    }
}
