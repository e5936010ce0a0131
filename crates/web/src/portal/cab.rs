//! The CAB's pages: a tenant's approval boards, and each board's agenda
//! (the changes awaiting it, with what each still needs), where a member
//! decides item by item.

use askama::Template;
use axum::extract::{Path, State};
use axum::response::Response;
use changegate_core::approval::PlanStatus;
use changegate_core::authz::Action;
use changegate_core::change::ChangeState;
use changegate_store::ChangeFilter;
use serde::Deserialize;
use std::collections::BTreeSet;

use super::pages::{Nav, in_tenant, nav, render, waits_for, when};
use super::{PageError, PageResult, Viewer};
use crate::AppState;
use crate::error::ApiError;
use crate::workflow::{self, Emails};

pub struct BoardRow {
    pub name: String,
    pub description: String,
    pub waiting: usize,
}

#[derive(Template)]
#[template(path = "boards.html")]
struct BoardsPage {
    viewer: Option<Nav>,
    tenant: String,
    boards: Vec<BoardRow>,
}

/// The changes of a tenant awaiting approval, newest first.
async fn awaiting(
    state: &AppState,
    tenant: changegate_core::TenantId,
) -> PageResult<Vec<changegate_store::Change>> {
    Ok(state
        .store
        .list_changes(&ChangeFilter {
            tenants: Some(BTreeSet::from([tenant])),
            state: Some(ChangeState::AwaitingApproval),
            limit: 500,
            ..ChangeFilter::default()
        })
        .await?)
}

pub async fn boards(
    State(state): State<AppState>,
    viewer: Viewer,
    Path(slug): Path<String>,
) -> PageResult<Response> {
    let t = in_tenant(&state, &viewer, &slug).await?;
    t.authorize(Action::Read)?;
    let open = awaiting(&state, t.tenant.id).await?;
    let boards = workflow::boards(state.store.as_ref(), t.tenant.id)
        .await?
        .into_iter()
        .map(|b| BoardRow {
            waiting: open
                .iter()
                .filter(|c| c.plan.boards.iter().any(|f| f.name == b.name))
                .count(),
            name: b.name,
            description: b.description,
        })
        .collect();
    let page = BoardsPage {
        viewer: Some(nav(&state, &viewer).await?),
        tenant: t.tenant.slug.to_string(),
        boards,
    };
    Ok(render(&page))
}

pub struct AgendaItem {
    pub number: String,
    pub title: String,
    pub kind: String,
    pub risk: String,
    pub requester: String,
    pub planned: String,
    pub revision: i64,
    pub waiting: String,
    pub can_decide: bool,
}

#[derive(Template)]
#[template(path = "agenda.html")]
struct AgendaPage {
    viewer: Option<Nav>,
    tenant: String,
    board: String,
    description: String,
    rule: String,
    csrf: String,
    items: Vec<AgendaItem>,
}

#[derive(Deserialize)]
pub struct BoardPath {
    tenant: String,
    board: String,
}

pub async fn agenda(
    State(state): State<AppState>,
    viewer: Viewer,
    Path(p): Path<BoardPath>,
) -> PageResult<Response> {
    let t = in_tenant(&state, &viewer, &p.tenant).await?;
    t.authorize(Action::Read)?;
    let store = state.store.as_ref();
    let spec = workflow::boards(store, t.tenant.id)
        .await?
        .into_iter()
        .find(|b| b.name == p.board)
        .ok_or_else(|| PageError(ApiError::not_found("board")))?;
    let me = viewer.principal.user;
    let may_decide = t.authorize(Action::Decide).is_ok();
    let mut items = Vec::new();
    for c in awaiting(&state, t.tenant.id).await? {
        let Some(frozen) = c.plan.boards.iter().find(|f| f.name == spec.name) else {
            continue;
        };
        let votes = workflow::votes(store, &c).await?;
        let emails =
            Emails::load(store, frozen.members.iter().copied().chain([c.requester])).await?;
        let waiting = match c.plan.status(&votes) {
            PlanStatus::Pending { boards } => boards
                .iter()
                .find(|b| b.board == spec.name)
                .map(|b| {
                    let who: Vec<String> = b.awaiting.iter().map(|u| emails.of(*u)).collect();
                    format!(
                        "Needs {} more from this board ({})",
                        b.needed,
                        who.join(", ")
                    )
                })
                .unwrap_or_else(|| "This board has decided; other boards have not.".into()),
            _ => String::new(),
        };
        let seated = frozen.members.contains(&me) || frozen.chair == Some(me);
        items.push(AgendaItem {
            number: c.number.to_string(),
            title: c.content.title.clone(),
            kind: c.kind.as_str().to_string(),
            risk: c
                .risk_level
                .map_or("not assessed".into(), |l| l.as_str().to_string()),
            requester: emails.of(c.requester),
            planned: match c.content.planned_start {
                Some(_) => when(c.content.planned_start),
                None => "not planned yet".into(),
            },
            revision: c.revision,
            waiting,
            can_decide: may_decide && seated && waits_for(store, &c, me, state.now()).await?,
        });
    }
    let page = AgendaPage {
        viewer: Some(nav(&state, &viewer).await?),
        tenant: t.tenant.slug.to_string(),
        board: spec.name,
        description: spec.description,
        rule: spec.rule.to_string(),
        csrf: viewer.csrf.clone(),
        items,
    };
    Ok(render(&page))
}
