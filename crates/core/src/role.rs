//! Roles granted per tenant (contract) and the two kinds of user.

use serde::{Deserialize, Serialize};
use std::fmt;
use std::str::FromStr;

use crate::ids::InvalidValue;

/// A role a user holds in one tenant (DESIGN §3, contract names).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Role {
    Requester,
    Implementer,
    TechnicalApprover,
    BusinessApprover,
    ChangeManager,
    ReleaseManager,
    Auditor,
    TenantAdmin,
}

impl Role {
    pub const ALL: [Role; 8] = [
        Role::Requester,
        Role::Implementer,
        Role::TechnicalApprover,
        Role::BusinessApprover,
        Role::ChangeManager,
        Role::ReleaseManager,
        Role::Auditor,
        Role::TenantAdmin,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Role::Requester => "requester",
            Role::Implementer => "implementer",
            Role::TechnicalApprover => "technical-approver",
            Role::BusinessApprover => "business-approver",
            Role::ChangeManager => "change-manager",
            Role::ReleaseManager => "release-manager",
            Role::Auditor => "auditor",
            Role::TenantAdmin => "tenant-admin",
        }
    }
}

impl fmt::Display for Role {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Role {
    type Err = InvalidValue;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Role::ALL
            .into_iter()
            .find(|r| r.as_str() == s)
            .ok_or_else(|| {
                let names: Vec<_> = Role::ALL.iter().map(|r| r.as_str()).collect();
                InvalidValue::new(
                    "role",
                    format!("unknown role {s:?}; roles are {}", names.join(", ")),
                )
            })
    }
}

/// MSP staff may be bound to many tenants; a client user belongs to exactly one.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum UserKind {
    Msp,
    Client,
}

impl UserKind {
    pub fn as_str(self) -> &'static str {
        match self {
            UserKind::Msp => "msp",
            UserKind::Client => "client",
        }
    }
}

impl FromStr for UserKind {
    type Err = InvalidValue;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "msp" => Ok(UserKind::Msp),
            "client" => Ok(UserKind::Client),
            _ => Err(InvalidValue::new(
                "kind",
                format!("unknown user kind {s:?}; use msp or client"),
            )),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn role_names_round_trip() {
        for role in Role::ALL {
            assert_eq!(role.as_str().parse::<Role>(), Ok(role));
            assert_eq!(
                serde_json::to_string(&role).ok(),
                Some(format!("\"{role}\""))
            );
        }
        assert!("approver".parse::<Role>().is_err());
    }
}
