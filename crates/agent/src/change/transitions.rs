//! The ChangeRequest phase graph: which moves between `ChangePhase`s exist and,
//! for every other pair, a reason a person can act on. `lifecycle` decides
//! when to move; this module only says whether a move is legal.

use crate::api::{ChangePhase, ChangeType};

/// A phase change the lifecycle forbids, with why.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{from} -> {to} is not allowed: {why}")]
pub struct IllegalTransition {
    pub from: ChangePhase,
    pub to: ChangePhase,
    pub why: String,
}

/// Whether a change may move from `from` to `to`, whatever its type:
///
/// ```text
/// PendingApproval -> Approved | Implementing (emergency) | Rejected | Expired | Cancelled
/// Approved        -> Implementing | Rejected | Expired | Cancelled
/// Implementing    -> Implemented | Failed
/// Failed          -> RolledBack
/// Implemented | Failed | RolledBack -> Closed
/// ```
///
/// Closed, Rejected, Expired and Cancelled are final. `PendingApproval ->
/// Implementing` is an emergency's move; [`allowed_for`] also checks the type.
pub fn allowed(from: ChangePhase, to: ChangePhase) -> Result<(), IllegalTransition> {
    use ChangePhase::{
        Approved, Cancelled, Closed, Expired, Failed, Implemented, Implementing, PendingApproval,
        Rejected, RolledBack,
    };
    let why: String = match (from, to) {
        _ if from.is_terminal() => {
            format!("a {from} change cannot change phase; open a new ChangeRequest")
        }
        _ if from == to => format!("the change is already {from}"),
        (PendingApproval, Approved | Implementing | Rejected | Expired | Cancelled)
        | (Approved, Implementing | Rejected | Expired | Cancelled)
        | (Implementing, Implemented | Failed)
        | (Failed, RolledBack)
        | (Implemented | Failed | RolledBack, Closed) => return Ok(()),
        (_, PendingApproval) => "a change never returns to PendingApproval; \
             a changed change is a new ChangeRequest"
            .into(),
        (_, Approved) => "only a PendingApproval change can be approved".into(),
        (_, Implementing) => {
            "implementation starts only from Approved (or PendingApproval for an emergency)".into()
        }
        (_, Implemented | Failed) => {
            "only an Implementing change has a rollout outcome to record".into()
        }
        (_, RolledBack) => "only a Failed change is rolled back".into(),
        (_, Closed) => "only an Implemented, Failed or RolledBack change can close".into(),
        (_, Cancelled) => "implementation has started, so the change can no longer be \
             cancelled; let it finish or roll it back"
            .into(),
        (_, Rejected) => "implementation has started, so a rejection no longer changes the \
             phase; it keeps the change from closing"
            .into(),
        (_, Expired) => "implementation has started, so the change can no longer expire".into(),
    };
    Err(IllegalTransition { from, to, why })
}

/// [`allowed`], and only an emergency may start implementation before it
/// is Approved.
pub fn allowed_for(
    change_type: ChangeType,
    from: ChangePhase,
    to: ChangePhase,
) -> Result<(), IllegalTransition> {
    allowed(from, to)?;
    if (from, to) == (ChangePhase::PendingApproval, ChangePhase::Implementing)
        && change_type != ChangeType::Emergency
    {
        return Err(IllegalTransition {
            from,
            to,
            why: format!(
                "a {change_type} change must be Approved before implementation starts; \
                 only an Emergency change may implement first"
            ),
        });
    }
    Ok(())
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use ChangePhase::*;

    pub(crate) const ALL: [ChangePhase; 10] = ChangePhase::ALL;

    #[test]
    fn the_happy_path_is_allowed() {
        let path = [PendingApproval, Approved, Implementing, Implemented, Closed];
        for pair in path.windows(2) {
            assert_eq!(allowed(pair[0], pair[1]), Ok(()), "{pair:?}");
        }
    }

    #[test]
    fn a_failed_change_rolls_back_then_closes() {
        assert_eq!(allowed(Implementing, Failed), Ok(()));
        assert_eq!(allowed(Failed, RolledBack), Ok(()));
        assert_eq!(allowed(RolledBack, Closed), Ok(()));
        assert_eq!(allowed(Failed, Closed), Ok(()));
    }

    #[test]
    fn closed_change_cannot_move() {
        for to in ALL {
            let Err(illegal) = allowed(Closed, to) else {
                panic!("Closed -> {to} must be illegal");
            };
            assert_eq!(
                illegal.why,
                "a Closed change cannot change phase; open a new ChangeRequest"
            );
        }
    }

    #[test]
    fn final_phases_are_exactly_the_terminal_ones() {
        for from in ALL {
            let moves = ALL.iter().filter(|&&to| allowed(from, to).is_ok()).count();
            assert_eq!(moves == 0, from.is_terminal(), "{from}");
        }
    }

    #[test]
    fn cancel_only_before_implementation() {
        assert_eq!(allowed(PendingApproval, Cancelled), Ok(()));
        assert_eq!(allowed(Approved, Cancelled), Ok(()));
        let Err(illegal) = allowed(Implementing, Cancelled) else {
            panic!("an implementing change cannot be cancelled");
        };
        assert!(illegal.why.contains("let it finish or roll it back"));
    }

    #[test]
    fn nothing_returns_to_pending_approval() {
        for from in ALL {
            assert!(allowed(from, PendingApproval).is_err(), "{from}");
        }
    }

    #[test]
    fn only_emergencies_implement_before_approval() {
        assert_eq!(
            allowed_for(ChangeType::Emergency, PendingApproval, Implementing),
            Ok(())
        );
        for t in [ChangeType::Normal, ChangeType::Standard] {
            assert!(allowed_for(t, PendingApproval, Implementing).is_err());
            assert_eq!(allowed_for(t, Approved, Implementing), Ok(()));
        }
    }

    #[test]
    fn the_message_names_both_phases() {
        let Err(illegal) = allowed(Implemented, RolledBack) else {
            panic!("only a Failed change rolls back");
        };
        assert_eq!(
            illegal.to_string(),
            "Implemented -> RolledBack is not allowed: only a Failed change is rolled back"
        );
    }
}
