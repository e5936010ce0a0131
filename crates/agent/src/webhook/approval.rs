//! Approval by kubectl (DESIGN §7): a person patches their own entry in a
//! ChangeRequest's `status.approvals`. This webhook (registered for
//! `changerequests/status`, `failurePolicy: Fail`, `sideEffects:
//! NoneOnDryRun`, the operator's own writes excluded by a match
//! condition) admits the patch only when it changes nothing but the
//! caller's own entry (new, or replacing their entry for an older
//! revision), the caller holds the verb `approve` on that ChangeRequest
//! (a SubjectAccessReview with their user, groups, uid and extra), and
//! the server recorded the decision. A release manager authorizes a
//! Release's phase the same way: their own new entry in
//! `status.authorizations.<user>.<phase>`, verb `authorize`. Unlike the
//! other webhooks it calls out (the API server and the changegate
//! server): an approval is rare, and is only admitted once it is on the
//! record.

use changegate_resources::change_request::{KubectlApproval, KubectlDecision};
use changegate_resources::release::Authorization;
use changegate_resources::wire::{
    ApprovalByKubectl, ApprovalRecorded, AuthorizationByKubectl, AuthorizationRecorded,
};
use k8s_openapi::api::authorization::v1::{
    ResourceAttributes, SubjectAccessReview, SubjectAccessReviewSpec,
};
use kube::api::PostParams;
use kube::core::admission::AdmissionRequest;
use reqwest::header::AUTHORIZATION;
use serde_json::Value;
use std::collections::BTreeMap;

/// What the approval webhook needs to ask the API server and the
/// changegate server.
pub struct Approvals {
    pub client: kube::Client,
    pub http: reqwest::Client,
    /// The server's base URL.
    pub server: String,
    pub token: String,
}

/// The one entry a patch writes: whose, and what it says.
#[derive(Debug, Clone, PartialEq)]
pub struct Entry {
    pub user: String,
    pub decision: KubectlDecision,
    pub revision: i64,
    pub comment: String,
}

/// The caller's entry the patch from `old` to `new` writes, or why the
/// patch is not one a person may make. Pure: no I/O.
pub fn judge_patch(old: &Value, new: &Value, user: &str) -> Result<Entry, String> {
    let rest = |v: &Value| {
        let mut status = v["status"].clone();
        if let Some(s) = status.as_object_mut() {
            s.remove("approvals");
        }
        (v["spec"].clone(), status)
    };
    if rest(old) != rest(new) {
        return Err(
            "an approval patch writes only your own entry in status.approvals; the rest of status is the operator's"
                .into(),
        );
    }
    let entries = |v: &Value| -> Result<BTreeMap<String, KubectlApproval>, String> {
        match v["status"].get("approvals") {
            None | Some(Value::Null) => Ok(BTreeMap::new()),
            Some(a) => serde_json::from_value(a.clone())
                .map_err(|e| format!("status.approvals does not read: {e}")),
        }
    };
    let (before, after) = (entries(old)?, entries(new)?);
    if let Some(gone) = before.keys().find(|k| !after.contains_key(*k)) {
        return Err(format!(
            "the patch removes {gone}'s entry from status.approvals; entries are never removed"
        ));
    }
    let changed: Vec<&String> = after
        .iter()
        .filter(|(k, v)| before.get(*k) != Some(v))
        .map(|(k, _)| k)
        .collect();
    let key = match changed.as_slice() {
        [] => {
            return Err(format!(
                "your entry already says this; nothing to record (to decide a newer revision, set status.approvals.{user}.revision)"
            ));
        }
        [one] => *one,
        _ => {
            return Err(
                "the patch writes several entries in status.approvals; write only your own".into(),
            );
        }
    };
    if key != user {
        return Err(format!(
            "you are {user}; you may write only your own entry, status.approvals.{user}, not {key}'s"
        ));
    }
    let current = old["status"]["revision"].as_i64();
    let entry = &after[key];
    let revision = entry.revision.or(current).ok_or_else(|| {
        "the ChangeRequest has no revision yet; wait until its status shows a number and a revision"
            .to_string()
    })?;
    // An earlier entry that named no revision was for the one in status
    // then, which is not known now: the server judges that one.
    if let Some(earlier) = before.get(key)
        && earlier.revision.is_some_and(|r| r >= revision)
    {
        return Err(format!(
            "you already decided revision {revision}; a decision is not changed: a new revision of the change is decided anew"
        ));
    }
    Ok(Entry {
        user: user.to_string(),
        decision: entry.decision,
        revision,
        comment: entry.comment.clone(),
    })
}

/// Whether `req`'s caller holds `verb` on the resource (`resource`, its
/// plural) the request is about.
async fn may(
    client: &kube::Client,
    req: &AdmissionRequest<kube::core::DynamicObject>,
    resource: &str,
    verb: &str,
) -> Result<bool, String> {
    let u = &req.user_info;
    let review = SubjectAccessReview {
        spec: SubjectAccessReviewSpec {
            user: u.username.clone(),
            groups: u.groups.clone(),
            uid: u.uid.clone(),
            extra: u.extra.clone(),
            resource_attributes: Some(ResourceAttributes {
                group: Some(changegate_resources::GROUP.into()),
                resource: Some(resource.into()),
                verb: Some(verb.into()),
                namespace: req.namespace.clone(),
                name: Some(req.name.clone()),
                ..Default::default()
            }),
            ..Default::default()
        },
        ..Default::default()
    };
    let api: kube::Api<SubjectAccessReview> = kube::Api::all(client.clone());
    let answered = api
        .create(&PostParams::default(), &review)
        .await
        .map_err(|e| format!("cannot ask the API server whether you may {verb}: {e}"))?;
    Ok(answered.status.is_some_and(|s| s.allowed))
}

/// Judges the approval (ChangeRequest) or phase authorization (Release)
/// patched in `req` for a namespace of `tenant`: `Ok` with the line a
/// person reads of what the server recorded, or the refusal.
pub async fn judge(
    approvals: &Approvals,
    req: &AdmissionRequest<kube::core::DynamicObject>,
    tenant: &str,
) -> Result<String, String> {
    let (Some(old), Some(new)) = (req.old_object.as_ref(), req.object.as_ref()) else {
        return Err("an approval is a patch of an existing resource's status".into());
    };
    let user = req.user_info.username.clone().unwrap_or_default();
    if user.starts_with("system:") {
        return Err(format!(
            "{user} is a Kubernetes system identity or a service account; only people approve, each under their own name"
        ));
    }
    let old_value = serde_json::to_value(old).map_err(|e| e.to_string())?;
    let new_value = serde_json::to_value(new).map_err(|e| e.to_string())?;
    let uid = old.metadata.uid.clone().unwrap_or_default();
    let dry = |recorded: bool| {
        if recorded {
            "recorded"
        } else {
            "would be recorded (dry run)"
        }
    };
    if req.kind.kind == "Release" {
        let (phase, note) = judge_authorization_patch(&old_value, &new_value, &user)?;
        if !may(&approvals.client, req, "releases", "authorize").await? {
            return Err(refused_verb(
                req,
                &user,
                "authorize",
                "releases",
                "changegate-release-manager",
            ));
        }
        let body = AuthorizationByKubectl {
            tenant: tenant.to_string(),
            uid,
            user,
            phase,
            note,
            dry_run: req.dry_run,
        };
        let done: AuthorizationRecorded =
            ask(approvals, req, "releases", "authorizations", &body).await?;
        return Ok(format!(
            "{}: phase {} {} for {}; the release is {}",
            done.release,
            done.authorized,
            dry(done.recorded),
            done.by,
            done.phase
        ));
    }
    let entry = judge_patch(&old_value, &new_value, &user)?;
    if !may(&approvals.client, req, "changerequests", "approve").await? {
        return Err(refused_verb(
            req,
            &user,
            "approve",
            "changerequests",
            "changegate-approver",
        ));
    }
    let body = ApprovalByKubectl {
        tenant: tenant.to_string(),
        uid,
        user,
        decision: entry.decision,
        revision: entry.revision,
        comment: entry.comment,
        dry_run: req.dry_run,
    };
    let done: ApprovalRecorded = ask(approvals, req, "changerequests", "approvals", &body).await?;
    Ok(format!(
        "{} revision {}: {} {} for {}; the change is {}",
        done.change,
        done.revision,
        done.decision,
        dry(done.recorded),
        done.approver,
        done.phase
    ))
}

fn refused_verb(
    req: &AdmissionRequest<kube::core::DynamicObject>,
    user: &str,
    verb: &str,
    resource: &str,
    role: &str,
) -> String {
    format!(
        "{user} does not hold the verb {verb} on {resource}/{} in namespace {}; a RoleBinding to the ClusterRole {role} grants it",
        req.name,
        req.namespace.as_deref().unwrap_or_default()
    )
}

/// `POST` of `body` to the server's `{plural}/{ns}/{name}/{what}`: what
/// it recorded, or its refusal in its words.
async fn ask<T: serde::de::DeserializeOwned>(
    approvals: &Approvals,
    req: &AdmissionRequest<kube::core::DynamicObject>,
    plural: &str,
    what: &str,
    body: &impl serde::Serialize,
) -> Result<T, String> {
    let url = format!(
        "{}/api/v1/agent/{plural}/{}/{}/{what}",
        approvals.server.trim_end_matches('/'),
        req.namespace.as_deref().unwrap_or_default(),
        req.name
    );
    let response = approvals
        .http
        .post(&url)
        .header(AUTHORIZATION, format!("Bearer {}", approvals.token))
        .timeout(std::time::Duration::from_secs(10))
        .json(body)
        .send()
        .await
        .map_err(|e| {
            format!(
                "the changegate server cannot be reached ({e}); nothing was recorded: approve in the portal or try again"
            )
        })?;
    let status = response.status();
    let text = response.text().await.unwrap_or_default();
    if status.is_success() {
        return serde_json::from_str(&text)
            .map_err(|e| format!("the changegate server's answer does not read ({e}); try again"));
    }
    let why = crate::reconcile::server_error(&text)
        .unwrap_or_else(|| format!("the changegate server answered {status}"));
    Err(if status.is_server_error() {
        format!("{why}; nothing was recorded: approve in the portal or try again")
    } else {
        why
    })
}

/// The phase and note of the one new authorization a patch of a
/// Release's status from `old` to `new` writes for `user`, or why it is
/// not one a person may make. Pure: no I/O.
pub fn judge_authorization_patch(
    old: &Value,
    new: &Value,
    user: &str,
) -> Result<(String, String), String> {
    let rest = |v: &Value| {
        let mut status = v["status"].clone();
        if let Some(s) = status.as_object_mut() {
            s.remove("authorizations");
        }
        (v["spec"].clone(), status)
    };
    if rest(old) != rest(new) {
        return Err(
            "an authorization patch writes only your own entry in status.authorizations; the rest of status is the operator's"
                .into(),
        );
    }
    type Entries = BTreeMap<String, BTreeMap<String, Authorization>>;
    let entries = |v: &Value| -> Result<Entries, String> {
        match v["status"].get("authorizations") {
            None | Some(Value::Null) => Ok(BTreeMap::new()),
            Some(a) => serde_json::from_value(a.clone())
                .map_err(|e| format!("status.authorizations does not read: {e}")),
        }
    };
    let (before, after) = (entries(old)?, entries(new)?);
    for (who, phases) in &before {
        for (phase, a) in phases {
            if after.get(who).and_then(|p| p.get(phase)) != Some(a) {
                return Err(format!(
                    "the patch changes or removes {who}'s authorization of {phase}; authorizations are never changed"
                ));
            }
        }
    }
    if let Some(other) = after
        .keys()
        .find(|k| *k != user && after.get(*k) != before.get(*k))
    {
        return Err(format!(
            "you are {user}; you may write only your own entry, status.authorizations.{user}, not {other}'s"
        ));
    }
    let mine = after.get(user).cloned().unwrap_or_default();
    let had = before.get(user).cloned().unwrap_or_default();
    let new_phases: Vec<(&String, &Authorization)> =
        mine.iter().filter(|(p, _)| !had.contains_key(*p)).collect();
    match new_phases.as_slice() {
        [] => Err("your entry already says this; nothing to record".into()),
        [(phase, a)] => Ok(((*phase).clone(), a.note.clone())),
        _ => Err("authorize one phase at a time".into()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn chg(approvals: Value) -> Value {
        json!({"spec": {"title": "Ship"}, "status": {"number": "CHG-2", "revision": 2, "approvals": approvals}})
    }

    #[test]
    fn a_person_writes_their_own_new_entry_for_the_current_revision() {
        let e = judge_patch(
            &chg(json!({})),
            &chg(json!({"carol": {"decision": "Approved", "comment": "ok"}})),
            "carol",
        )
        .expect("admitted");
        assert_eq!(e.revision, 2, "the revision in status when patched");
        assert_eq!(e.decision, KubectlDecision::Approved);
        assert_eq!(e.comment, "ok");
    }

    #[test]
    fn only_ones_own_entry_and_nothing_else_is_written() {
        let refused = |old: Value, new: Value, user: &str| {
            judge_patch(&old, &new, user).expect_err("refused")
        };
        let mine = json!({"carol": {"decision": "Approved"}});
        assert!(refused(chg(json!({})), chg(mine.clone()), "dan").contains("only your own entry"));
        let mut touched = chg(mine.clone());
        touched["status"]["phase"] = json!("approved");
        assert!(refused(chg(json!({})), touched, "carol").contains("the rest of status"));
        assert!(
            refused(
                chg(json!({})),
                chg(json!({"carol": {"decision": "Approved"}, "dan": {"decision": "Approved"}})),
                "carol"
            )
            .contains("several entries")
        );
        assert!(
            refused(
                chg(json!({"dan": {"decision": "Approved", "revision": 1}})),
                chg(json!({})),
                "carol"
            )
            .contains("removes dan's entry")
        );
        // The same decision again changes nothing: not a second decision.
        assert!(refused(chg(mine.clone()), chg(mine), "carol").contains("already says this"));
    }

    #[test]
    fn an_entry_without_a_revision_is_replaced_for_the_revision_now_in_status() {
        // Written for revision 1 (then in status); the change is at 2 now.
        let old = chg(json!({"carol": {"decision": "Approved"}}));
        let newer =
            chg(json!({"carol": {"decision": "Approved", "revision": 2, "comment": "again"}}));
        assert_eq!(
            judge_patch(&old, &newer, "carol").map(|e| e.revision),
            Ok(2)
        );
    }

    #[test]
    fn an_entry_is_replaced_only_for_a_newer_revision() {
        let old = chg(json!({"carol": {"decision": "Approved", "revision": 1}}));
        let newer = chg(json!({"carol": {"decision": "Rejected", "revision": 2}}));
        assert_eq!(
            judge_patch(&old, &newer, "carol").map(|e| e.revision),
            Ok(2)
        );
        let same = chg(json!({"carol": {"decision": "Rejected", "revision": 1}}));
        assert!(
            judge_patch(&old, &same, "carol")
                .expect_err("refused")
                .contains("already decided revision 1")
        );
    }

    fn rel(authorizations: Value) -> Value {
        json!({"spec": {"changes": ["web"]}, "status": {"number": "REL-1", "phase": "planning", "authorizations": authorizations}})
    }

    #[test]
    fn a_release_manager_authorizes_one_new_phase_of_their_own() {
        assert_eq!(
            judge_authorization_patch(
                &rel(json!({})),
                &rel(json!({"rita": {"plan": {"note": "slot agreed"}}})),
                "rita"
            ),
            Ok(("plan".into(), "slot agreed".into()))
        );
        let refused = |old: Value, new: Value, user: &str| {
            judge_authorization_patch(&old, &new, user).expect_err("refused")
        };
        let planned = json!({"rita": {"plan": {}}});
        assert!(
            refused(rel(json!({})), rel(planned.clone()), "tom").contains("only your own entry")
        );
        assert!(
            refused(rel(planned.clone()), rel(planned.clone()), "rita")
                .contains("already says this")
        );
        assert!(
            refused(
                rel(planned.clone()),
                rel(json!({"rita": {"plan": {"note": "changed"}}})),
                "rita"
            )
            .contains("never changed")
        );
        assert!(
            refused(
                rel(json!({})),
                rel(json!({"rita": {"plan": {}, "deploy": {}}})),
                "rita"
            )
            .contains("one phase at a time")
        );
    }
}
