//! changegate's Kubernetes operator (DESIGN §7): it long-polls the server
//! for its cluster's bundle (`bundle`), and its admission webhook decides
//! governed workloads from it in memory (`enforce`, over the core's gate
//! decision) and stamps who wrote each ChangeRequest (`webhook::stamp`).
//! `reconcile` keeps ChangeRequests and the server's record in step
//! (spec → record, record → status). `follow` judges again every spec
//! change it watches and follows covered rollouts; `report` tells the
//! server. Kubernetes I/O lives only at the edges (`webhook`,
//! `reconcile`, `follow::run`, `operator`).

pub mod bundle;
pub mod enforce;
pub mod follow;
pub mod lease;
pub mod operator;
pub mod reconcile;
pub mod report;
pub mod webhook;
