//! The administration portal under `/{tenant}/portal/`: server-rendered pages without any
//! JavaScript (dashboard, users, domains, apps, agents, settings, sign-in log, audit log), whose
//! forms change things through the admin API in-process ([`act`]), signed in
//! through our own STS as the built-in portal client ([`PORTAL_CLIENT_ID`]). Every page reads
//! the signed-in user from the store and checks their role against the same operation table
//! as the admin API ([`crate::admin_api::ops`]).

use axum::routing::{get, post};
use axum::Router;

use crate::state::Shared;

pub mod act;
mod audit;
pub mod auth;
mod dashboard;
mod directory;
pub mod layout;
mod settings;
mod signins;
pub mod svg;
mod sync;

/// Client id of the built-in portal client (defined below the layers that name it).
pub use crate::model::PORTAL_CLIENT_ID;

/// The portal's routes (full paths under `/{tenant}/portal`, so that the dashboard answers
/// both with and without the trailing slash), merged into the server's router.
pub fn routes() -> Router<Shared> {
    Router::new()
        .route("/{tenant}/portal", get(dashboard::page))
        .route("/{tenant}/portal/", get(dashboard::page))
        .route("/{tenant}/portal/callback", get(auth::callback))
        .route("/{tenant}/portal/signout", post(auth::sign_out))
        .route("/{tenant}/portal/users", get(directory::users))
        .route("/{tenant}/portal/users/{upn}", get(directory::user))
        .route("/{tenant}/portal/act", post(act::act))
        .route("/{tenant}/portal/audit", get(audit::page))
        .route("/{tenant}/portal/audit.csv", get(audit::csv))
        .route("/{tenant}/portal/domains", get(directory::domains))
        .route("/{tenant}/portal/apps", get(directory::apps))
        .route("/{tenant}/portal/agents", get(directory::agents))
        .route("/{tenant}/portal/sync", get(sync::page))
        .route(
            "/{tenant}/portal/settings",
            get(settings::page).post(settings::save),
        )
        .route("/{tenant}/portal/signins", get(signins::page))
        .route("/{tenant}/portal/signins.csv", get(signins::csv))
        .route("/{tenant}/portal/signins/{id}", get(signins::detail))
}

#[cfg(test)]
mod tests;

#[cfg(test)]
mod escaping_tests;
