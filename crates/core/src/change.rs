//! A change request's type, risk level and states (DESIGN §5, contract
//! names), and which transitions the state machine allows.

kebab_enum!(
    /// Standard (pre-approved template), normal, emergency.
    ChangeType { Standard = "standard", Normal = "normal", Emergency = "emergency" }
);

kebab_enum!(
    /// The risk level a questionnaire's score maps to; ordered.
    RiskLevel { Low = "low", Medium = "medium", High = "high", Critical = "critical" }
);

kebab_enum!(
    /// The states of a change request (contract).
    ChangeState {
        Draft = "draft",
        Submitted = "submitted",
        AwaitingApproval = "awaiting-approval",
        Approved = "approved",
        Scheduled = "scheduled",
        Implementing = "implementing",
        Implemented = "implemented",
        Failed = "failed",
        RolledBack = "rolled-back",
        InReview = "in-review",
        Closed = "closed",
        Rejected = "rejected",
        Cancelled = "cancelled",
        Expired = "expired",
    }
);

impl ChangeState {
    /// No further transitions.
    pub fn is_final(self) -> bool {
        matches!(
            self,
            ChangeState::Closed | ChangeState::Cancelled | ChangeState::Expired
        )
    }

    /// Approvals may be given or changed only while awaiting them (and,
    /// for an emergency change implemented first, retrospectively).
    pub fn takes_decisions(self) -> bool {
        matches!(self, ChangeState::AwaitingApproval)
    }

    /// A requester may still edit the content: before implementation
    /// starts. After submission an edit that changes the fingerprint is a
    /// new revision and re-opens approval.
    pub fn editable(self) -> bool {
        matches!(
            self,
            ChangeState::Draft
                | ChangeState::Submitted
                | ChangeState::AwaitingApproval
                | ChangeState::Approved
                | ChangeState::Scheduled
                | ChangeState::Rejected
        )
    }

    /// Counts toward "in flight" for conflicts and the agent's bundle.
    pub fn is_approved(self) -> bool {
        matches!(self, ChangeState::Approved | ChangeState::Scheduled)
    }
}

/// May a change move from `from` to `to`? (The machine of DESIGN §5; the
/// server adds who may ask and under which conditions.)
pub fn allowed(from: ChangeState, to: ChangeState) -> bool {
    use ChangeState::*;
    match (from, to) {
        (Draft, Submitted | Cancelled) => true,
        (Submitted, AwaitingApproval | Approved | Cancelled) => true,
        (AwaitingApproval, Approved | Rejected | Cancelled | Expired | Implementing) => true,
        // A material edit after submission re-opens approval.
        (AwaitingApproval | Approved | Scheduled, AwaitingApproval) => true,
        (Approved, Scheduled | Implementing | Cancelled | Expired) => true,
        // A cancelled release gives its scheduled changes back.
        (Scheduled, Approved | Implementing | Cancelled | Expired) => true,
        (Implementing, Implemented | Failed | RolledBack) => true,
        (Failed, RolledBack) => true,
        (Implemented | Failed | RolledBack, InReview | Closed) => true,
        (InReview, Closed) => true,
        // A rejected change may be revised and submitted again.
        (Rejected, Draft | Cancelled) => true,
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn contract_state_names() {
        let names: Vec<&str> = ChangeState::ALL.iter().map(|s| s.as_str()).collect();
        assert_eq!(
            names,
            [
                "draft",
                "submitted",
                "awaiting-approval",
                "approved",
                "scheduled",
                "implementing",
                "implemented",
                "failed",
                "rolled-back",
                "in-review",
                "closed",
                "rejected",
                "cancelled",
                "expired"
            ]
        );
        assert_eq!(
            "rolled-back".parse::<ChangeState>(),
            Ok(ChangeState::RolledBack)
        );
        assert!("done".parse::<ChangeState>().is_err());
    }

    #[test]
    fn final_states_go_nowhere() {
        for from in ChangeState::ALL.iter().filter(|s| s.is_final()) {
            for to in ChangeState::ALL {
                assert!(!allowed(*from, *to), "{from} -> {to}");
            }
        }
    }

    #[test]
    fn the_happy_path_is_allowed_and_shortcuts_are_not() {
        use ChangeState::*;
        let path = [
            Draft,
            Submitted,
            AwaitingApproval,
            Approved,
            Scheduled,
            Implementing,
            Implemented,
            InReview,
            Closed,
        ];
        for w in path.windows(2) {
            assert!(allowed(w[0], w[1]), "{} -> {}", w[0], w[1]);
        }
        assert!(!allowed(Draft, Approved));
        assert!(!allowed(AwaitingApproval, Implemented));
        assert!(!allowed(Implementing, Approved));
    }

    #[test]
    fn risk_levels_are_ordered() {
        assert!(RiskLevel::Low < RiskLevel::Medium && RiskLevel::High < RiskLevel::Critical);
    }
}
