//! In-process tests of client authentication at the token endpoint.
