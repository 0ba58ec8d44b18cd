//! Every canonical URL the SDK uses, in one place.
