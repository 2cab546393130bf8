//! The Passthru admin API as both of its sides see it: [`api`] holds the request and response
//! body of every operation (serde, with the JSON schema the cloud's OpenAPI document is
//! derived from), and [`cli`] is `passthru-cloud admin`, the command line that calls the API
//! over HTTPS. Neither touches a store or a server framework: the cloud's handlers take and
//! answer these same types.

pub mod api;
pub mod cli;
