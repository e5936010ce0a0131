//! Approval policy: which approvals a change needs and which it has received.
