//! Which ChangePolicy governs a tenant: the one that names it, else the
//! default (no tenants). Ties go to the lowest name and are reported, so a
//! misconfiguration shows up instead of depending on list order.

use crate::api::ChangePolicy;
use kube::ResourceExt;

/// Condition type on a ChangePolicy that collides with another for a tenant.
pub const AMBIGUOUS: &str = "Ambiguous";
/// Reason: several policies name the same tenant.
pub const REASON_TENANT_NAMED_TWICE: &str = "TenantNamedTwice";
/// Reason: several policies have no tenants, so several defaults exist.
pub const REASON_SEVERAL_DEFAULTS: &str = "SeveralDefaults";

/// How the selected policy came to govern the tenant.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Scope {
    /// The policy names the tenant in `spec.tenants`.
    Tenant,
    /// No policy names the tenant; this is the default (empty `tenants`).
    Default,
}

/// Several policies matched equally well; the caller surfaces this as an
/// Event or an `Ambiguous` condition.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Ambiguity {
    /// [`REASON_TENANT_NAMED_TWICE`] or [`REASON_SEVERAL_DEFAULTS`].
    pub reason: &'static str,
    /// Names of the policies that matched but were not chosen, sorted.
    pub passed_over: Vec<String>,
    /// What happened and what to do about it.
    pub message: String,
}

/// The policy governing a tenant.
#[derive(Clone, Debug)]
pub struct Selection<'a> {
    pub policy: &'a ChangePolicy,
    pub scope: Scope,
    pub ambiguity: Option<Ambiguity>,
}

/// The policy governing `tenant`, or `None` when no policy names it and no
/// default exists: the tenant is then not governed and admission lets its
/// workloads through (there is nobody to ask for approval).
///
/// Enforcement is not considered here: a selected policy with
/// `enforcement: Off` still governs the tenant, and the caller decides what
/// `Off` means for its request.
/// `policies` may be owned objects or the `Arc`s a reflector store holds.
pub fn select_policy<'a, P: AsRef<ChangePolicy>>(
    policies: &'a [P],
    tenant: &str,
) -> Option<Selection<'a>> {
    let naming: Vec<&ChangePolicy> = policies
        .iter()
        .map(AsRef::as_ref)
        .filter(|p| p.spec.tenants.iter().any(|t| t == tenant))
        .collect();
    let (scope, mut candidates) = if naming.is_empty() {
        let defaults = policies
            .iter()
            .map(AsRef::as_ref)
            .filter(|p| p.spec.tenants.is_empty());
        (Scope::Default, defaults.collect::<Vec<_>>())
    } else {
        (Scope::Tenant, naming)
    };
    candidates.sort_by_cached_key(|p| p.name_any());
    let (policy, rest) = candidates.split_first()?;
    let ambiguity = (!rest.is_empty()).then(|| {
        let chosen = policy.name_any();
        let passed_over: Vec<String> = rest.iter().map(|p| p.name_any()).collect();
        let all = std::iter::once(chosen.clone())
            .chain(passed_over.iter().cloned())
            .collect::<Vec<_>>()
            .join(", ");
        match scope {
            Scope::Tenant => Ambiguity {
                reason: REASON_TENANT_NAMED_TWICE,
                message: format!(
                    "ChangePolicies {all} all name tenant {tenant}; using {chosen} (lowest name). \
                     Remove {tenant} from all but one of them."
                ),
                passed_over,
            },
            Scope::Default => Ambiguity {
                reason: REASON_SEVERAL_DEFAULTS,
                message: format!(
                    "ChangePolicies {all} are all defaults (no tenants); using {chosen} \
                     (lowest name) for tenant {tenant}. Keep one default or give the others tenants."
                ),
                passed_over,
            },
        }
    });
    Some(Selection {
        policy,
        scope,
        ambiguity,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::ChangePolicySpec;

    fn policy(name: &str, tenants: &[&str]) -> ChangePolicy {
        ChangePolicy::new(
            name,
            ChangePolicySpec {
                tenants: tenants.iter().map(ToString::to_string).collect(),
                ..ChangePolicySpec::default()
            },
        )
    }

    fn chosen(policies: &[ChangePolicy], tenant: &str) -> Option<(String, Scope)> {
        select_policy(policies, tenant).map(|s| (s.policy.name_any(), s.scope))
    }

    #[test]
    fn a_policy_naming_the_tenant_beats_the_default() {
        let policies = [policy("default", &[]), policy("client-a", &["client-a"])];
        assert_eq!(
            chosen(&policies, "client-a"),
            Some(("client-a".into(), Scope::Tenant))
        );
    }

    #[test]
    fn a_tenant_without_its_own_policy_gets_the_default() {
        let policies = [policy("client-a", &["client-a"]), policy("default", &[])];
        assert_eq!(
            chosen(&policies, "client-b"),
            Some(("default".into(), Scope::Default))
        );
    }

    #[test]
    fn no_policy_means_not_governed() {
        assert!(select_policy::<ChangePolicy>(&[], "client-a").is_none());
        let policies = [policy("client-a", &["client-a"])];
        assert!(select_policy(&policies, "client-b").is_none());
    }

    #[test]
    fn two_policies_naming_a_tenant_pick_the_lowest_name_and_say_so() {
        let policies = [
            policy("zeta", &["client-a"]),
            policy("alpha", &["client-b", "client-a"]),
        ];
        let Some(selection) = select_policy(&policies, "client-a") else {
            panic!("a policy names client-a");
        };
        assert_eq!(selection.policy.name_any(), "alpha");
        let Some(ambiguity) = selection.ambiguity else {
            panic!("two policies name client-a");
        };
        assert_eq!(ambiguity.reason, REASON_TENANT_NAMED_TWICE);
        assert_eq!(ambiguity.passed_over, vec!["zeta".to_string()]);
        assert!(ambiguity.message.contains("alpha, zeta"));
    }

    #[test]
    fn several_defaults_are_reported() {
        let policies = [policy("b-default", &[]), policy("a-default", &[])];
        let Some(selection) = select_policy(&policies, "client-a") else {
            panic!("defaults exist");
        };
        assert_eq!(selection.policy.name_any(), "a-default");
        assert_eq!(
            selection.ambiguity.map(|a| a.reason),
            Some(REASON_SEVERAL_DEFAULTS)
        );
    }

    #[test]
    fn one_match_is_not_ambiguous() {
        let policies = [policy("client-a", &["client-a"]), policy("other", &["x"])];
        assert!(select_policy(&policies, "client-a").is_some_and(|s| s.ambiguity.is_none()));
    }
}
