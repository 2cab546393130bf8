//! The admin API's request and response bodies (`/{tenant}/admin/...`), shared by the cloud's
//! handlers and `passthru-cloud admin`. Each type derives [`utoipa::ToSchema`]: the cloud's
//! OpenAPI document takes its schemas from here, so a body the handler reads is the body the
//! document describes. Answers that show the cloud's records (synced groups, sync state,
//! sign-in lines, an agent's domain controllers) have their own types here, with the records'
//! fields as the cloud sends them; the handlers convert.

mod agents;
mod apps;
mod credentials;
mod directory;
mod domains;
mod tenant;
mod users;

pub use agents::{
    Agent, AgentList, AgentRevoked, DomainController, Release, ReleaseList, ReleaseRemoved,
    RevokeAgent, RoundTrip, SIGNED_MANIFEST_HEADER,
};
pub use apps::{
    App, AppDeleted, AppList, AssignRole, ExposeApi, NewApp, RoleAssignment, RoleAssignmentList,
    SetGroupsClaim, SetIdTokenAlg, SetRedirectUris,
};
pub use credentials::{
    Credential, CredentialList, CredentialRemoved, NewCertificate, NewSecret, SecretAdded,
    DEFAULT_SECRET_DAYS, MAX_SECRET_DAYS,
};
pub use directory::{
    Group, GroupList, GroupMember, RunSync, SyncForest, SyncRequested, SyncRun, SyncStatus,
    SyncedGroup,
};
pub use domains::{
    valid_issuer, ConvertDomain, DnsProof, Domain, DomainConverted, DomainList, DomainRemoved,
    FederatedIdp, NewDomain, MANAGED,
};
pub use passthru_proto::admin::{ApiError, RegisterAgentRequest, RegisterAgentResponse};
pub use tenant::{
    AuditEntry, AuditList, AuditQuery, PtaStatus, SetPta, SetSetting, Setting, SettingValue,
    Settings, SignIn, SignInDetail, SignInList, SignInQuery, SigningKeys,
};
pub use users::{
    ListQuery, MfaReset, MfaSet, NewUser, PasswordSet, ResetPassword, SetMfa, SetPassword, SetRole,
    SetWriteback, SyncedUser, Unlocked, User, UserDeleted, UserList, UserMfa, WritebackSet,
};

#[cfg(test)]
mod tests;
