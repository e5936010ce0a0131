//! The controls of seed 003, each with the records that prove it and the
//! exceptions an auditor looks at first, taken in one change at a time.

use super::{ChangeEvidence, Control, Recorded};

fn needs_approval(c: &ChangeEvidence) -> bool {
    c.kind != "standard"
}

/// Proving changes and exceptions of one control, by number.
#[derive(Debug, Default)]
struct Split {
    evidence: Vec<String>,
    exceptions: Vec<String>,
}

impl Split {
    fn take(&mut self, c: &ChangeEvidence, ok: bool) {
        let to = if ok {
            &mut self.evidence
        } else {
            &mut self.exceptions
        };
        to.push(c.number.clone());
    }
}

/// The controls as the changes of a period pass. Pure.
#[derive(Debug, Default)]
pub struct Controls {
    authorized: Split,
    cab: Split,
    tested: Split,
    deployed: Vec<String>,
    implementer: Split,
    review: Split,
    acceptance: Split,
}

impl Controls {
    pub fn add(&mut self, c: &ChangeEvidence) {
        let approved = |api_too: bool| {
            c.approvals
                .iter()
                .any(|a| a.decision == "approve" && (api_too || a.channel != "api"))
        };
        if c.started_at.is_some() {
            self.authorized.take(
                c,
                !needs_approval(c)
                    || c.approvals
                        .iter()
                        .any(|a| a.decision == "approve" && Some(a.at) <= c.started_at)
                    || (c.kind == "emergency" && !c.retrospective_overdue && approved(true)),
            );
            self.tested.take(c, !c.test_evidence.trim().is_empty());
            if !c.deployments.is_empty() {
                self.deployed.push(c.number.clone());
            }
            self.implementer.take(c, c.implementer.is_some());
            if c.acceptance_required {
                self.acceptance.take(
                    c,
                    c.acceptance
                        .as_ref()
                        .is_some_and(|a| Some(a.at) <= c.started_at),
                );
            }
        }
        if c.kind == "normal" && c.submitted_at.is_some() {
            self.cab.take(
                c,
                c.approvals.iter().any(|a| a.decision == "approve")
                    || matches!(
                        c.state.as_str(),
                        "rejected" | "awaiting-approval" | "cancelled"
                    ),
            );
        }
        if c.finished_at.is_some() && c.kind != "standard" {
            self.review.take(c, c.review.is_some());
        }
    }

    /// Each control with its records; the unauthorized deployments are the
    /// exceptions of "no unsupervised production changes".
    pub fn finish(self, unauthorized: &[Recorded]) -> Vec<Control> {
        let control = |id: &str, title: &str, proven_by: &str, s: Split| Control {
            id: id.into(),
            title: title.into(),
            proven_by: proven_by.into(),
            evidence: s.evidence,
            exceptions: s.exceptions,
        };
        vec![
            control(
                "authorized-before-implementation",
                "Changes are authorized by the business owner and IT before they reach production",
                "each implemented change's approvals (approver, time, channel) dated before its start; standard changes by their pre-approved template; emergency changes by their retrospective approval",
                self.authorized,
            ),
            control(
                "cab-authorization",
                "The change advisory board authorizes changes before they are put into action",
                "the approvals of each normal change, recorded against the boards frozen at submission and the policy version",
                self.cab,
            ),
            control(
                "tested-before-deployment",
                "Changes are tested and the evidence kept before deployment",
                "each implemented change's test plan and test evidence",
                self.tested,
            ),
            control(
                "no-unsupervised-production-changes",
                "No change reaches production without an approved change covering it",
                "the gates' and agents' deployment records: those no approved change covered are listed as unauthorized",
                Split {
                    evidence: self.deployed,
                    exceptions: unauthorized
                        .iter()
                        .map(|u| format!("{} {}", u.at.format("%Y-%m-%d %H:%M UTC"), u.detail))
                        .collect(),
                },
            ),
            control(
                "implemented-by-approved-individual",
                "Changes are implemented by an approved individual",
                "the implementer recorded on each change; the server lets only holders of the implementer role start or complete a change",
                self.implementer,
            ),
            control(
                "periodic-review",
                "Changes are reviewed after implementation and the records examined",
                "each post-implementation review (outcome, notes, lessons) and this export of the period with the audit chain verified",
                self.review,
            ),
            control(
                "client-acceptance",
                "The client accepts tested changes before they are scheduled or started, where its policy asks for it",
                "each covered change's acceptance on the audit chain (the client user, channel, time and the fingerprint of the revision accepted) dated before its start",
                self.acceptance,
            ),
        ]
    }
}

/// The controls of `changes`. Pure.
pub fn controls(changes: &[ChangeEvidence], unauthorized: &[Recorded]) -> Vec<Control> {
    let mut all = Controls::default();
    for c in changes {
        all.add(c);
    }
    all.finish(unauthorized)
}
