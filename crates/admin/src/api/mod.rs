//! The admin API's request and response bodies (`/{tenant}/admin/...`), shared by the cloud's
//! handlers and `passthru-cloud admin`. Each type derives [`utoipa::ToSchema`]: the cloud's
//! OpenAPI document takes its schemas from here, so a body the handler reads is the body the
//! document describes.
//!
//! A few answers carry records the cloud's store defines (synced groups, sync state, sign-in
//! lines, an agent's domain controllers): those stay JSON objects here (`serde_json::Value`).

mod agents;
mod apps;
mod domains;
mod tenant;
mod users;

pub use agents::{Agent, AgentList, AgentRevoked, RevokeAgent, RoundTrip};
pub use apps::{App, AppDeleted, AppList, NewApp, SetGroupsClaim, SetRedirectUris};
pub use domains::{
    valid_issuer, ConvertDomain, DnsProof, Domain, DomainConverted, DomainList, DomainRemoved,
    FederatedIdp, NewDomain, MANAGED,
};
pub use passthru_proto::admin::{ApiError, RegisterAgentRequest, RegisterAgentResponse};
pub use tenant::{
    Group, GroupList, PtaStatus, RunSync, SetPta, SetSetting, Setting, Settings, SignInList,
    SignInQuery, SigningKeys, SyncRequested, SyncStatus,
};
pub use users::{
    ListQuery, MfaReset, MfaSet, NewUser, PasswordSet, ResetPassword, SetMfa, SetPassword, SetRole,
    SetWriteback, SyncedUser, Unlocked, User, UserDeleted, UserList, UserMfa, WritebackSet,
};

#[cfg(test)]
mod tests;
