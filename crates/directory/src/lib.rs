//! LDAP to Active Directory.
