//! JSON paths for findings (`$[3].contacts[0].title`), built without allocating until a
//! finding actually needs one: validating a clean entry should cost no strings.

use std::fmt;

/// A location in the catalog document, as a chain of borrowed steps from the root.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Path<'a> {
    /// `$`, the document itself.
    Root,
    /// `parent[index]`.
    Index(&'a Path<'a>, usize),
    /// `parent.key` (or `parent['key']` when the key is not a plain name).
    Key(&'a Path<'a>, &'a str),
}

impl<'a> Path<'a> {
    /// This path followed by `[index]`.
    pub(crate) fn index(&'a self, index: usize) -> Path<'a> {
        Path::Index(self, index)
    }

    /// This path followed by `.key`.
    pub(crate) fn key(&'a self, key: &'a str) -> Path<'a> {
        Path::Key(self, key)
    }
}

fn is_plain_name(key: &str) -> bool {
    let mut chars = key.chars();
    matches!(chars.next(), Some(c) if c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
}

impl fmt::Display for Path<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Path::Root => f.write_str("$"),
            Path::Index(parent, i) => write!(f, "{parent}[{i}]"),
            Path::Key(parent, key) if is_plain_name(key) => write!(f, "{parent}.{key}"),
            Path::Key(parent, key) => {
                write!(f, "{parent}['")?;
                for c in key.chars() {
                    if c == '\'' || c == '\\' {
                        f.write_str("\\")?;
                    }
                    write!(f, "{c}")?;
                }
                f.write_str("']")
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::Path;

    #[test]
    fn renders_indices_names_and_quoted_keys() {
        let root = Path::Root;
        let entry = root.index(3);
        let tr = entry.key("translations");
        let fr = tr.key("fr-CA");
        let name = fr.key("name");
        assert_eq!(name.to_string(), "$[3].translations['fr-CA'].name");
        let odd = entry.key("it's");
        assert_eq!(odd.to_string(), "$[3]['it\\'s']");
    }
}
