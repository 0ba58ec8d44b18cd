//! Subscriptions R5 Backport on R4: Subscription, status Parameters, notification Bundle, operations.
