//! The steps shared by change handlers: the tenant's current policy,
//! resolving board members to people, freezing approvers at submission,
//! and showing user ids as e-mail addresses.

use changegate_core::approval::Vote;
use changegate_core::board::{BoardSpec, Member};
use changegate_core::catalogue::{ConfigurationItem, Template};
use changegate_core::policy::PolicySpec;
use changegate_core::window::{CompiledWindow, WindowSpec};
use changegate_core::{Role, TenantId, UserId};
use changegate_store::{Change, ObjectKind, Store, StoreError};
use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use crate::error::ApiError;

/// The tenant's current policy and its version. A tenant whose change
/// manager has not written one yet works under the built-in default,
/// recorded as version 0; reading never writes.
pub async fn policy(store: &dyn Store, tenant: TenantId) -> Result<(i64, PolicySpec), ApiError> {
    match store.policy(tenant).await {
        Ok((version, text)) => {
            let spec = serde_json::from_str(&text).map_err(|e| {
                tracing::error!(error = %e, "stored policy does not parse");
                ApiError::internal()
            })?;
            Ok((version, spec))
        }
        Err(StoreError::NotFound { .. }) => Ok((0, PolicySpec::default())),
        Err(e) => Err(e.into()),
    }
}

/// The tenant's maintenance windows and blackouts, compiled.
pub async fn windows(
    store: &dyn Store,
    tenant: TenantId,
) -> Result<Vec<Arc<CompiledWindow>>, ApiError> {
    Ok(windows_as_written(store, tenant)
        .await?
        .into_iter()
        .map(|(_, _, compiled)| compiled)
        .collect())
}

/// The tenant's windows, each prepared over `[from, to)`: questions inside
/// it are binary searches (a calendar or a slot search asks thousands).
pub async fn windows_prepared(
    store: &dyn Store,
    tenant: TenantId,
    from: chrono::DateTime<chrono::Utc>,
    to: chrono::DateTime<chrono::Utc>,
) -> Result<Vec<Arc<CompiledWindow>>, ApiError> {
    Ok(windows_as_written(store, tenant)
        .await?
        .into_iter()
        .map(|(_, _, compiled)| Arc::new((*compiled).clone().prepared(from, to)))
        .collect())
}

/// The tenant's windows: name, spec as written, and compiled.
pub async fn windows_as_written(
    store: &dyn Store,
    tenant: TenantId,
) -> Result<Vec<(String, WindowSpec, Arc<CompiledWindow>)>, ApiError> {
    let mut windows = Vec::new();
    for o in store.objects(tenant, ObjectKind::Window).await? {
        let spec: WindowSpec = serde_json::from_str(&o.spec).map_err(|e| {
            tracing::error!(window = %o.name, error = %e, "stored window does not parse");
            ApiError::internal()
        })?;
        let window = CompiledWindow::compile(&o.name, &spec).map_err(|e| {
            tracing::error!(window = %o.name, error = %e, "stored window does not compile");
            ApiError::internal()
        })?;
        windows.push((o.name, spec, Arc::new(window)));
    }
    Ok(windows)
}

/// The votes recorded on `c`'s current revision: what its plan counts.
pub async fn votes(store: &dyn Store, c: &Change) -> Result<Vec<Vote>, ApiError> {
    Ok(changegate_store::votes(store, c).await?)
}

/// The tenant's configuration items by name.
pub async fn configuration_items(
    store: &dyn Store,
    tenant: TenantId,
) -> Result<Vec<(String, ConfigurationItem)>, ApiError> {
    store
        .objects(tenant, ObjectKind::ConfigurationItem)
        .await?
        .into_iter()
        .map(|o| {
            let item = serde_json::from_str(&o.spec).map_err(|e| {
                tracing::error!(item = %o.name, error = %e, "stored configuration item does not parse");
                ApiError::internal()
            })?;
            Ok((o.name, item))
        })
        .collect()
}

pub async fn boards(store: &dyn Store, tenant: TenantId) -> Result<Vec<BoardSpec>, ApiError> {
    store
        .objects(tenant, ObjectKind::Board)
        .await?
        .into_iter()
        .map(|o| {
            serde_json::from_str(&o.spec).map_err(|e| {
                tracing::error!(board = %o.name, error = %e, "stored board does not parse");
                ApiError::internal()
            })
        })
        .collect()
}

/// The tenant's people: e-mail → id, and role → holders.
pub struct People {
    by_email: BTreeMap<String, UserId>,
    by_role: BTreeMap<Role, Vec<UserId>>,
    emails: BTreeMap<UserId, String>,
}

impl People {
    pub async fn load(store: &dyn Store, tenant: TenantId) -> Result<Self, ApiError> {
        let mut p = People {
            by_email: BTreeMap::new(),
            by_role: BTreeMap::new(),
            emails: BTreeMap::new(),
        };
        for (user, roles) in store.users_in_tenant(tenant).await? {
            p.by_email.insert(user.email.to_string(), user.id);
            p.emails.insert(user.id, user.email.to_string());
            for r in roles {
                p.by_role.entry(r).or_default().push(user.id);
            }
        }
        Ok(p)
    }

    /// The people behind a board member. Only people bound to the tenant
    /// count: a board cannot name someone outside it.
    pub fn resolve(&self, m: &Member) -> Vec<UserId> {
        match m {
            Member::Person(e) => self.by_email.get(e.as_str()).copied().into_iter().collect(),
            Member::Role(r) => self.by_role.get(r).cloned().unwrap_or_default(),
        }
    }

    pub fn id_of(&self, email: &str) -> Option<UserId> {
        self.by_email.get(email).copied()
    }
}

/// Maps ids to e-mails, asking the store for people it has not seen.
#[derive(Debug, Default)]
pub struct Emails(BTreeMap<UserId, String>);

impl Emails {
    /// Also the addresses of `ids` not known yet.
    pub async fn load_more(
        &mut self,
        store: &dyn Store,
        ids: impl IntoIterator<Item = UserId>,
    ) -> Result<(), ApiError> {
        let unknown: Vec<UserId> = ids
            .into_iter()
            .filter(|id| !self.0.contains_key(id))
            .collect();
        if !unknown.is_empty() {
            let more = Emails::load(store, unknown).await?;
            self.0.extend(more.0);
        }
        Ok(())
    }

    pub async fn load(
        store: &dyn Store,
        ids: impl IntoIterator<Item = UserId>,
    ) -> Result<Self, ApiError> {
        let mut map = BTreeMap::new();
        let wanted: BTreeSet<UserId> = ids.into_iter().collect();
        for id in wanted {
            match store.user(id).await {
                Ok(u) => {
                    map.insert(id, u.email.to_string());
                }
                Err(StoreError::NotFound { .. }) => {}
                Err(e) => return Err(e.into()),
            }
        }
        Ok(Emails(map))
    }

    pub fn of(&self, id: UserId) -> String {
        self.0
            .get(&id)
            .cloned()
            .unwrap_or_else(|| format!("user-{id}"))
    }
}

pub fn ids_in(c: &Change) -> Vec<UserId> {
    let mut ids = vec![c.requester];
    ids.extend(c.implementer);
    ids.extend(c.plan.seats());
    ids
}

/// The tenant's template `name`, if it has one.
pub async fn template(
    store: &dyn Store,
    tenant: TenantId,
    name: &str,
) -> Result<Option<Template>, ApiError> {
    let Some(stored) = store
        .objects(tenant, ObjectKind::Template)
        .await?
        .into_iter()
        .find(|o| o.name == name)
    else {
        return Ok(None);
    };
    serde_json::from_str(&stored.spec).map(Some).map_err(|e| {
        tracing::error!(template = %name, error = %e, "stored template does not parse");
        ApiError::internal()
    })
}
