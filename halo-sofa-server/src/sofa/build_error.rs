//! Why a [`SofaBuilder`](super::SofaBuilder) refused to build: a SoFA assembled without its
//! store would lose everything at restart, and one whose resource server commits app writes
//! without telling the PoC breaks deliver-before-commit (D-08). Neither happens silently.

/// A part the builder needs and was not given.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum BuildError {
    /// No store: pass one with [`SofaBuilder::store`](super::SofaBuilder::store) (a
    /// `SqliteStore`, a `PostgresStore`, or a `MemoryStore` in tests — never by default).
    #[error(
        "the SoFA has no store: pass one with SofaBuilder::store (SqliteStore, PostgresStore, \
         or MemoryStore in tests)"
    )]
    MissingStore,
    /// The resource server is on but no change notifier was given: pass the subscriptions'
    /// with [`SofaBuilder::notifier`](super::SofaBuilder::notifier), or, in a test that wants
    /// writes committed with no one told, call
    /// [`SofaBuilder::commit_writes_without_notifying_the_poc_for_tests`](super::SofaBuilder::commit_writes_without_notifying_the_poc_for_tests).
    #[error(
        "the resource server has no change notifier: pass the subscriptions' notifier with \
         SofaBuilder::notifier (app writes must reach the PoC before they commit, D-08)"
    )]
    MissingNotifier,
}
