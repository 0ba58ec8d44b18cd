//! The five SMART v2 interactions (`c r u d s`) and a compact set of them.

use std::fmt;

/// One FHIR interaction a resource scope can grant, named by its SMART v2 letter.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Interaction {
    /// `c`: FHIR `create`.
    Create,
    /// `r`: FHIR `read`, also `vread` and instance history.
    Read,
    /// `u`: FHIR `update`, also `patch` and upsert.
    Update,
    /// `d`: FHIR `delete`.
    Delete,
    /// `s`: FHIR `search`, also type and system history and system search.
    Search,
}

impl Interaction {
    /// Every interaction in the order SMART v2 writes them (`cruds`).
    pub const ALL: [Interaction; 5] = [
        Interaction::Create,
        Interaction::Read,
        Interaction::Update,
        Interaction::Delete,
        Interaction::Search,
    ];

    /// The SMART v2 letter of this interaction.
    pub fn letter(self) -> char {
        match self {
            Self::Create => 'c',
            Self::Read => 'r',
            Self::Update => 'u',
            Self::Delete => 'd',
            Self::Search => 's',
        }
    }

    /// The interaction a SMART v2 letter stands for.
    pub fn from_letter(letter: char) -> Option<Interaction> {
        Self::ALL.into_iter().find(|i| i.letter() == letter)
    }

    fn bit(self) -> u8 {
        match self {
            Self::Create => 1,
            Self::Read => 1 << 1,
            Self::Update => 1 << 2,
            Self::Delete => 1 << 3,
            Self::Search => 1 << 4,
        }
    }
}

impl fmt::Display for Interaction {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let name = match self {
            Self::Create => "create",
            Self::Read => "read",
            Self::Update => "update",
            Self::Delete => "delete",
            Self::Search => "search",
        };
        f.write_str(name)
    }
}

/// A set of [`Interaction`]s. Displays as its v2 letters in `cruds` order (empty set: ``).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct Permissions(u8);

impl Permissions {
    /// No interaction.
    pub const fn empty() -> Permissions {
        Permissions(0)
    }

    /// All five interactions (`cruds`).
    pub const fn all() -> Permissions {
        Permissions(0b1_1111)
    }

    /// v1 `read`: read and search (`rs`).
    pub const fn v1_read() -> Permissions {
        Permissions(0b1_0010)
    }

    /// v1 `write`: create, update and delete (`cud`).
    pub const fn v1_write() -> Permissions {
        Permissions(0b0_1101)
    }

    /// Whether `interaction` is in the set.
    pub fn contains(self, interaction: Interaction) -> bool {
        self.0 & interaction.bit() != 0
    }

    /// Whether every interaction of `other` is in this set.
    pub fn contains_all(self, other: Permissions) -> bool {
        self.0 & other.0 == other.0
    }

    /// Whether the set is empty.
    pub fn is_empty(self) -> bool {
        self.0 == 0
    }

    /// The set with `interaction` added.
    #[must_use]
    pub fn with(self, interaction: Interaction) -> Permissions {
        Permissions(self.0 | interaction.bit())
    }

    /// Interactions in either set.
    #[must_use]
    pub fn union(self, other: Permissions) -> Permissions {
        Permissions(self.0 | other.0)
    }

    /// Interactions in both sets.
    #[must_use]
    pub fn intersection(self, other: Permissions) -> Permissions {
        Permissions(self.0 & other.0)
    }

    /// Interactions in this set but not in `other`.
    #[must_use]
    pub fn difference(self, other: Permissions) -> Permissions {
        Permissions(self.0 & !other.0)
    }

    /// The interactions in `cruds` order.
    pub fn iter(self) -> impl Iterator<Item = Interaction> {
        Interaction::ALL
            .into_iter()
            .filter(move |i| self.contains(*i))
    }
}

impl From<Interaction> for Permissions {
    fn from(interaction: Interaction) -> Self {
        Permissions(interaction.bit())
    }
}

impl FromIterator<Interaction> for Permissions {
    fn from_iter<T: IntoIterator<Item = Interaction>>(iter: T) -> Self {
        iter.into_iter()
            .fold(Permissions::empty(), Permissions::with)
    }
}

impl fmt::Display for Permissions {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.iter().try_for_each(|i| write!(f, "{}", i.letter()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    // REQ: SCP-02
    #[test]
    fn v1_equivalents_are_the_v2_sets_the_spec_names() {
        assert_eq!(Permissions::v1_read().to_string(), "rs");
        assert_eq!(Permissions::v1_write().to_string(), "cud");
        assert_eq!(Permissions::all().to_string(), "cruds");
    }

    #[test]
    fn set_operations() {
        let rs: Permissions = [Interaction::Read, Interaction::Search]
            .into_iter()
            .collect();
        assert!(rs.contains(Interaction::Read));
        assert!(!rs.contains(Interaction::Create));
        assert_eq!(Permissions::all().difference(rs).to_string(), "cud");
        assert_eq!(Permissions::all().intersection(rs), rs);
        assert!(Permissions::all().contains_all(rs));
        assert!(!rs.contains_all(Permissions::all()));
        assert!(Permissions::empty().is_empty());
        assert_eq!(
            Permissions::from(Interaction::Create).union(rs).to_string(),
            "crs"
        );
        for letter in "cruds".chars() {
            let i = Interaction::from_letter(letter).map(Interaction::letter);
            assert_eq!(i, Some(letter));
        }
        assert_eq!(Interaction::from_letter('x'), None);
    }
}
