//! Who may do what in which tenant: the one permission table every API
//! handler and portal page consults (one call per handler).

use serde::Serialize;
use std::collections::{BTreeMap, BTreeSet};

use crate::ids::{Email, TenantId, UserId};
use crate::role::{Role, UserKind};

/// The authenticated caller, built by the server from a session, an API
/// token or a signed link; never from a field in a request body.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Principal {
    pub user: UserId,
    pub email: Email,
    pub name: String,
    pub kind: UserKind,
    /// Installation-wide administrator (MSP only).
    pub admin: bool,
    /// The roles held in each tenant the user is bound to.
    pub roles: BTreeMap<TenantId, BTreeSet<Role>>,
}

impl Principal {
    pub fn roles_in(&self, tenant: TenantId) -> impl Iterator<Item = Role> + '_ {
        self.roles.get(&tenant).into_iter().flatten().copied()
    }

    /// How messages name them: their name, else their address.
    pub fn name_or_email(&self) -> &str {
        if self.name.trim().is_empty() {
            self.email.as_str()
        } else {
            &self.name
        }
    }

    pub fn has_role(&self, tenant: TenantId, role: Role) -> bool {
        self.roles.get(&tenant).is_some_and(|r| r.contains(&role))
    }

    /// Bound to the tenant at all (any role), or an installation admin.
    pub fn sees(&self, tenant: TenantId) -> bool {
        self.admin || self.roles.get(&tenant).is_some_and(|r| !r.is_empty())
    }

    /// The tenants whose data this principal may read; `None` means all.
    pub fn visible_tenants(&self) -> Option<BTreeSet<TenantId>> {
        if self.admin {
            None
        } else {
            Some(
                self.roles
                    .iter()
                    .filter(|(_, r)| !r.is_empty())
                    .map(|(t, _)| *t)
                    .collect(),
            )
        }
    }
}

/// Everything a caller can ask to do inside one tenant.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Action {
    /// Read changes, policies, boards, windows, the audit chain.
    Read,
    /// Create, edit, submit and cancel one's changes.
    RequestChange,
    /// Approve or reject (still limited to the frozen approvers).
    Decide,
    /// Start, complete, fail and review a change.
    Implement,
    /// Comment on a change.
    Comment,
    /// Boards, policies, questionnaires, windows, templates, configuration items.
    ManagePolicy,
    /// Users and role bindings of the tenant, blackout dates.
    AdministerTenant,
    /// Add blackout dates for the tenant.
    ManageBlackouts,
    /// Package the tenant's approved changes into releases, authorize
    /// their phases, run their runbooks and authorize a rollback.
    Release,
    /// Let a release start despite a conflict, with a reason.
    OverrideConflict,
}

impl Action {
    pub const ALL: [Action; 10] = [
        Action::Read,
        Action::RequestChange,
        Action::Decide,
        Action::Implement,
        Action::Comment,
        Action::ManagePolicy,
        Action::AdministerTenant,
        Action::ManageBlackouts,
        Action::Release,
        Action::OverrideConflict,
    ];

    /// The roles that grant this action in a tenant.
    pub fn granted_by(self) -> &'static [Role] {
        use Role::*;
        match self {
            Action::Read => &Role::ALL,
            Action::RequestChange => &[Requester, ChangeManager],
            Action::Decide => &[TechnicalApprover, BusinessApprover, ChangeManager],
            Action::Implement => &[Implementer],
            Action::Comment => &[
                Requester,
                Implementer,
                TechnicalApprover,
                BusinessApprover,
                ChangeManager,
                ReleaseManager,
                TenantAdmin,
            ],
            Action::ManagePolicy => &[ChangeManager],
            Action::AdministerTenant => &[TenantAdmin],
            Action::ManageBlackouts => &[TenantAdmin, ChangeManager],
            Action::Release => &[ReleaseManager],
            Action::OverrideConflict => &[ChangeManager],
        }
    }
}

/// Why an action was refused. `Hidden` means the tenant is not the
/// caller's at all: the server answers 404 so nothing leaks, not even
/// that the tenant exists.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Denied {
    Hidden,
    Forbidden {
        action: Action,
        needs: &'static [Role],
    },
}

/// The one authorization call: may `principal` do `action` in `tenant`?
/// Installation admins may do everything; auditors only read.
pub fn authorize(principal: &Principal, tenant: TenantId, action: Action) -> Result<(), Denied> {
    if principal.admin {
        return Ok(());
    }
    if !principal.sees(tenant) {
        return Err(Denied::Hidden);
    }
    let needs = action.granted_by();
    if principal.roles_in(tenant).any(|r| needs.contains(&r)) {
        Ok(())
    } else {
        Err(Denied::Forbidden { action, needs })
    }
}

/// Installation-wide actions (tenants, MSP users): admins only.
pub fn authorize_admin(principal: &Principal) -> Result<(), Denied> {
    if principal.admin {
        Ok(())
    } else {
        Err(Denied::Forbidden {
            action: Action::AdministerTenant,
            needs: &[],
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn principal(roles: &[(i64, Role)]) -> Principal {
        let mut map: BTreeMap<TenantId, BTreeSet<Role>> = BTreeMap::new();
        for (t, r) in roles {
            map.entry(TenantId(*t)).or_default().insert(*r);
        }
        Principal {
            user: UserId(1),
            email: Email::parse("p@x.example").expect("valid"),
            name: "P".into(),
            kind: UserKind::Client,
            admin: false,
            roles: map,
        }
    }

    #[test]
    fn another_tenant_is_hidden_not_forbidden() {
        let p = principal(&[(1, Role::BusinessApprover)]);
        assert_eq!(
            authorize(&p, TenantId(2), Action::Read),
            Err(Denied::Hidden)
        );
        assert!(authorize(&p, TenantId(1), Action::Read).is_ok());
    }

    #[test]
    fn auditors_only_read() {
        let p = principal(&[(1, Role::Auditor)]);
        for action in Action::ALL {
            let allowed = authorize(&p, TenantId(1), action).is_ok();
            assert_eq!(allowed, action == Action::Read, "{action:?}");
        }
    }

    #[test]
    fn approvers_decide_but_do_not_request() {
        let p = principal(&[(1, Role::BusinessApprover)]);
        assert!(authorize(&p, TenantId(1), Action::Decide).is_ok());
        assert!(matches!(
            authorize(&p, TenantId(1), Action::RequestChange),
            Err(Denied::Forbidden { .. })
        ));
    }

    #[test]
    fn admins_may_do_everything_everywhere() {
        let mut p = principal(&[]);
        p.admin = true;
        for action in Action::ALL {
            assert!(authorize(&p, TenantId(9), action).is_ok());
        }
        assert!(authorize_admin(&p).is_ok());
        assert!(authorize_admin(&principal(&[(1, Role::TenantAdmin)])).is_err());
    }
}
