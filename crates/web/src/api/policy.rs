//! A tenant's policy as code: the versioned policy document, approval
//! boards, windows and blackouts, standard-change templates, configuration
//! items, and delegations of an approver's seat.

use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use changegate_core::UserKind;
use changegate_core::authz::Action;
use changegate_core::board::BoardSpec;
use changegate_core::catalogue::{ConfigurationItem, Template};
use changegate_core::policy::PolicySpec;
use changegate_core::window::{WindowKind, WindowSpec};
use changegate_store::{Applied, NewDelegation, ObjectKind, StoreError};
use serde::Serialize;
use serde::de::DeserializeOwned;

use super::{Body, NamePath};
use crate::AppState;
use crate::dto::{AppliedView, DelegationBody, NamedSpec, PolicyView, email_field};
use crate::error::{ApiError, ApiResult};
use crate::tenant::InTenant;
use crate::workflow;

fn applied(a: Applied) -> Json<AppliedView> {
    Json(AppliedView::from(a))
}

/// Parse a spec body, naming the offending field.
fn parse<T: DeserializeOwned>(value: serde_json::Value) -> ApiResult<T> {
    serde_path_to_error::deserialize(value).map_err(|e| {
        let path = e.path().to_string();
        ApiError::invalid(
            if path == "." { String::new() } else { path },
            e.into_inner().to_string(),
        )
    })
}

/// The canonical text stored for a spec, so re-applying it is `unchanged`.
fn canonical<T: Serialize>(spec: &T) -> ApiResult<String> {
    serde_json::to_string(spec).map_err(|_| ApiError::internal())
}

fn check_name(name: &str) -> ApiResult<()> {
    let ok = !name.is_empty()
        && name.len() <= 100
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'));
    if ok {
        Ok(())
    } else {
        Err(ApiError::invalid(
            "name",
            format!("{name:?}: use letters, digits, '-', '_' and '.' (at most 100)"),
        ))
    }
}

async fn list(state: &AppState, t: &InTenant, kind: ObjectKind) -> ApiResult<Json<Vec<NamedSpec>>> {
    t.authorize(Action::Read)?;
    let objects = state.store.objects(t.tenant.id, kind).await?;
    Ok(Json(
        objects
            .into_iter()
            .map(|o| NamedSpec {
                spec: serde_json::from_str(&o.spec).unwrap_or(serde_json::Value::Null),
                name: o.name,
                updated_at: o.updated_at,
            })
            .collect(),
    ))
}

#[utoipa::path(get, path = "/api/v1/tenants/{tenant}/policy", tag = "policy",
    params(("tenant" = String, Path)), responses((status = 200, body = PolicyView)))]
pub async fn show(State(state): State<AppState>, t: InTenant) -> ApiResult<Json<PolicyView>> {
    t.authorize(Action::Read)?;
    let (version, spec) = workflow::policy(state.store.as_ref(), t.tenant.id).await?;
    Ok(Json(PolicyView {
        applied: None,
        version,
        spec: serde_json::to_value(spec).unwrap_or_default(),
    }))
}

/// Replace the policy; a new version is recorded when it differs.
#[utoipa::path(put, path = "/api/v1/tenants/{tenant}/policy", tag = "policy",
    params(("tenant" = String, Path)), request_body = Object, responses((status = 200, body = PolicyView)))]
pub async fn replace(
    State(state): State<AppState>,
    t: InTenant,
    Body(body): Body<serde_json::Value>,
) -> ApiResult<Json<PolicyView>> {
    t.authorize(Action::ManagePolicy)?;
    let spec: PolicySpec = parse(body)?;
    let boards = workflow::boards(state.store.as_ref(), t.tenant.id).await?;
    spec.validate(|name| boards.iter().any(|b| b.name == name))?;
    if let Some(e) = &spec.escalation {
        let roles = match state.store.user_by_email(&e.to).await {
            Ok(u) => state.store.roles_of(u.id).await?.remove(&t.tenant.id),
            Err(changegate_store::StoreError::NotFound { .. }) => None,
            Err(e) => return Err(e.into()),
        };
        let Some(roles) = roles else {
            return Err(ApiError::invalid(
                "escalation.to",
                format!("{} is not a user of this tenant; add them first", e.to),
            ));
        };
        if !Action::Decide
            .granted_by()
            .iter()
            .any(|r| roles.contains(r))
        {
            return Err(ApiError::invalid(
                "escalation.to",
                format!(
                    "{} cannot approve here: give them an approver role (technical-approver, business-approver or change-manager)",
                    e.to
                ),
            ));
        }
    }
    let (version, a) = state
        .store
        .put_policy(t.tenant.id, &canonical(&spec)?, &t.actor(), state.now())
        .await?;
    Ok(Json(PolicyView {
        applied: Some(AppliedView::from(a).applied),
        version,
        spec: serde_json::to_value(spec).unwrap_or_default(),
    }))
}

#[utoipa::path(get, path = "/api/v1/tenants/{tenant}/boards", tag = "policy",
    params(("tenant" = String, Path)), responses((status = 200, body = [NamedSpec])))]
pub async fn list_boards(
    State(state): State<AppState>,
    t: InTenant,
) -> ApiResult<Json<Vec<NamedSpec>>> {
    list(&state, &t, ObjectKind::Board).await
}

/// Create or replace a board. Pending changes keep the approvers frozen at their submission.
#[utoipa::path(put, path = "/api/v1/tenants/{tenant}/boards/{name}", tag = "policy",
    params(("tenant" = String, Path), ("name" = String, Path)), request_body = Object,
    responses((status = 200, body = AppliedView)))]
pub async fn put_board(
    State(state): State<AppState>,
    t: InTenant,
    Path(p): Path<NamePath>,
    Body(mut body): Body<serde_json::Value>,
) -> ApiResult<Json<AppliedView>> {
    let name = p.name;
    t.authorize(Action::ManagePolicy)?;
    check_name(&name)?;
    if let Some(obj) = body.as_object_mut() {
        obj.entry("name").or_insert_with(|| name.clone().into());
    }
    let spec: BoardSpec = parse(body)?;
    if spec.name != name {
        return Err(ApiError::invalid(
            "name",
            format!("the body names board {:?} but the URL {name:?}", spec.name),
        ));
    }
    spec.validate()?;
    let r = state
        .store
        .put_object(
            t.tenant.id,
            ObjectKind::Board,
            &name,
            &canonical(&spec)?,
            &t.actor(),
            state.now(),
        )
        .await?;
    Ok(applied(r))
}

#[utoipa::path(get, path = "/api/v1/tenants/{tenant}/windows", tag = "policy",
    params(("tenant" = String, Path)), responses((status = 200, body = [NamedSpec])))]
pub async fn list_windows(
    State(state): State<AppState>,
    t: InTenant,
) -> ApiResult<Json<Vec<NamedSpec>>> {
    list(&state, &t, ObjectKind::Window).await
}

/// Parse and compile a window with the engine admission uses.
pub use crate::app::window::window_spec;

/// Create or replace a maintenance window (change managers) or a blackout
/// (change managers and the client's tenant admins).
#[utoipa::path(put, path = "/api/v1/tenants/{tenant}/windows/{name}", tag = "policy",
    params(("tenant" = String, Path), ("name" = String, Path)), request_body = Object,
    responses((status = 200, body = AppliedView)))]
pub async fn put_window(
    State(state): State<AppState>,
    t: InTenant,
    Path(p): Path<NamePath>,
    Body(body): Body<serde_json::Value>,
) -> ApiResult<Json<AppliedView>> {
    let (r, _) = crate::app::window::put(&state, &t, &p.name, body).await?;
    Ok(applied(r))
}

#[utoipa::path(delete, path = "/api/v1/tenants/{tenant}/windows/{name}", tag = "policy",
    params(("tenant" = String, Path), ("name" = String, Path)), responses((status = 204)))]
pub async fn delete_window(
    State(state): State<AppState>,
    t: InTenant,
    Path(p): Path<NamePath>,
) -> ApiResult<StatusCode> {
    let name = p.name;
    t.authorize(Action::ManageBlackouts)?;
    let existing = state.store.objects(t.tenant.id, ObjectKind::Window).await?;
    let window = existing
        .iter()
        .find(|o| o.name == name)
        .ok_or_else(|| ApiError::not_found("window"))?;
    let spec: WindowSpec = serde_json::from_str(&window.spec).map_err(|_| ApiError::internal())?;
    if spec.kind != WindowKind::Blackout {
        t.authorize(Action::ManagePolicy)?;
    }
    state
        .store
        .delete_object(
            t.tenant.id,
            ObjectKind::Window,
            &name,
            &t.actor(),
            state.now(),
        )
        .await?;
    Ok(StatusCode::NO_CONTENT)
}

#[utoipa::path(get, path = "/api/v1/tenants/{tenant}/templates", tag = "policy",
    params(("tenant" = String, Path)), responses((status = 200, body = [NamedSpec])))]
pub async fn list_templates(
    State(state): State<AppState>,
    t: InTenant,
) -> ApiResult<Json<Vec<NamedSpec>>> {
    list(&state, &t, ObjectKind::Template).await
}

#[utoipa::path(put, path = "/api/v1/tenants/{tenant}/templates/{name}", tag = "policy",
    params(("tenant" = String, Path), ("name" = String, Path)), request_body = Object,
    responses((status = 200, body = AppliedView)))]
pub async fn put_template(
    State(state): State<AppState>,
    t: InTenant,
    Path(p): Path<NamePath>,
    Body(body): Body<serde_json::Value>,
) -> ApiResult<Json<AppliedView>> {
    let name = p.name;
    t.authorize(Action::ManagePolicy)?;
    check_name(&name)?;
    let spec: Template = parse(body)?;
    spec.validate()?;
    let r = state
        .store
        .put_object(
            t.tenant.id,
            ObjectKind::Template,
            &name,
            &canonical(&spec)?,
            &t.actor(),
            state.now(),
        )
        .await?;
    Ok(applied(r))
}

#[utoipa::path(get, path = "/api/v1/tenants/{tenant}/configuration-items", tag = "policy",
    params(("tenant" = String, Path)), responses((status = 200, body = [NamedSpec])))]
pub async fn list_cis(
    State(state): State<AppState>,
    t: InTenant,
) -> ApiResult<Json<Vec<NamedSpec>>> {
    list(&state, &t, ObjectKind::ConfigurationItem).await
}

#[utoipa::path(put, path = "/api/v1/tenants/{tenant}/configuration-items/{name}", tag = "policy",
    params(("tenant" = String, Path), ("name" = String, Path)), request_body = Object,
    responses((status = 200, body = AppliedView)))]
pub async fn put_ci(
    State(state): State<AppState>,
    t: InTenant,
    Path(p): Path<NamePath>,
    Body(body): Body<serde_json::Value>,
) -> ApiResult<Json<AppliedView>> {
    let name = p.name;
    t.authorize(Action::ManagePolicy)?;
    check_name(&name)?;
    let spec: ConfigurationItem = parse(body)?;
    spec.validate()?;
    let r = state
        .store
        .put_object(
            t.tenant.id,
            ObjectKind::ConfigurationItem,
            &name,
            &canonical(&spec)?,
            &t.actor(),
            state.now(),
        )
        .await?;
    // A binding can bring the tenant into a cluster's bundle it was not in.
    state.writes.note(None);
    Ok(applied(r))
}

/// Let someone decide in an approver's seat for a period (holidays). An
/// approver delegates their own seat; an administrator of the tenant may
/// delegate the seat of someone who cannot (on sick leave), saying why,
/// but never to themselves; MSP staff's seats only an installation admin
/// delegates for them. Nobody else delegates anyone's seat.
#[utoipa::path(post, path = "/api/v1/tenants/{tenant}/delegations", tag = "policy",
    params(("tenant" = String, Path)), request_body = DelegationBody, responses((status = 201)))]
pub async fn delegate(
    State(state): State<AppState>,
    t: InTenant,
    Body(body): Body<DelegationBody>,
) -> ApiResult<StatusCode> {
    let from = email_field("from", &body.from)?;
    let to = email_field("to", &body.to)?;
    let reason = if from == t.caller.email {
        t.authorize(Action::Decide)?;
        None
    } else {
        t.authorize(Action::AdministerTenant).map_err(|_| {
            ApiError::forbidden(
                "you delegate only your own seat; an administrator of the tenant delegates the seat of someone who cannot",
            )
        })?;
        if to == t.caller.email {
            return Err(ApiError::forbidden(
                "an administrator does not delegate someone else's seat to themselves; name another approver",
            )
            .with_field("to"));
        }
        match body.reason.as_deref().map(str::trim) {
            Some(r) if !r.is_empty() => Some(r.to_string()),
            _ => {
                return Err(ApiError::invalid(
                    "reason",
                    format!("say why you delegate {from}'s seat, e.g. they left the company"),
                ));
            }
        }
    };
    if body.ends_at <= body.starts_at {
        return Err(ApiError::invalid(
            "ends_at",
            "the delegation must end after it starts",
        ));
    }
    let people = workflow::People::load(state.store.as_ref(), t.tenant.id).await?;
    let from_id = people
        .id_of(from.as_str())
        .ok_or_else(|| ApiError::invalid("from", format!("{from} is not a user of this tenant")))?;
    let to_id = people
        .id_of(to.as_str())
        .ok_or_else(|| ApiError::invalid("to", format!("{to} is not a user of this tenant")))?;
    if from_id == to_id {
        return Err(ApiError::invalid("to", "delegate to someone else"));
    }
    // As with their roles: MSP staff's seats are the MSP's to hand over.
    if reason.is_some() && !t.caller.admin && state.store.user(from_id).await?.kind == UserKind::Msp
    {
        return Err(ApiError::forbidden(format!(
            "{from} is MSP staff; an installation admin delegates their seat, or they delegate it themselves"
        ))
        .with_field("from"));
    }
    state
        .store
        .create_delegation(
            NewDelegation {
                tenant: t.tenant.id,
                from: from_id,
                to: to_id,
                starts_at: body.starts_at,
                ends_at: body.ends_at,
                reason,
            },
            &t.actor(),
            state.now(),
        )
        .await
        .map_err(|e| match e {
            StoreError::Conflict { .. } => ApiError::conflict("that delegation exists"),
            other => other.into(),
        })?;
    Ok(StatusCode::CREATED)
}
