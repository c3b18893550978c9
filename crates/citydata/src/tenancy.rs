//! Tenants in the platform: each belongs to an institution and is open or
//! closed, as its administrators set it; the policy (`civic_core::policy`,
//! `Action::CityData`) decides who reads, writes and registers in what is
//! not left to anyone.
//!
//! - An **open** tenant is public city data: anyone reads its entities,
//!   without a token, as with the peers. Writing, subscribing (a
//!   subscription holds its owner's endpoint and the headers sent there)
//!   and registering context sources are for the callers the policy lets
//!   in, unless its settings open them too (the tenant a conformance run
//!   uses).
//! - A **closed** tenant answers only the platform's API tokens and
//!   sessions that the policy lets in.
//! - A tenant no administrator set up exists only if the configuration
//!   lets tenants be made on first use (`city_implicit_tenants`, on in the
//!   demo: the spec's behaviour, and the ETSI suite's); it is then open to
//!   everything, registrations included. Off, as in a deployment, it does
//!   not exist until an administrator sets it up.
//!
//! Who called is kept for the request (`CALLER`), so that what the broker
//! audits names the caller.

use crate::CityData;
use civic_core::audit::{AuditEntry, Outcome};
use civic_core::identity::InstitutionId;
use civic_core::policy::{Action, CityOp};
use civic_hub::{Ctx, HubError};
use civic_store::InstitutionStore;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::sync::Arc;

/// Whether anyone may read a tenant without a token.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "lowercase")]
pub enum Access {
    Open,
    Closed,
}

/// A tenant's settings.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct TenantSettings {
    /// The tenant's name, as `NGSILD-Tenant` gives it; `""` is the tenant
    /// of requests without the header.
    #[cfg_attr(
        feature = "openapi",
        schema(pattern = r"^[A-Za-z0-9_.\-]{0,64}$", max_length = 64)
    )]
    pub name: String,
    /// The institution it belongs to.
    #[cfg_attr(feature = "openapi", schema(value_type = i64))]
    pub institution: InstitutionId,
    pub access: Access,
    /// Open tenants only (a closed one's is cleared): whether anyone may
    /// write entities and subscribe, without a token (a sandbox, or a
    /// conformance run).
    #[serde(default)]
    pub public_writes: bool,
    /// Open tenants only (a closed one's is cleared): whether anyone may
    /// register context sources, which then receive the requests on the
    /// entities they name.
    #[serde(default)]
    pub public_registrations: bool,
    /// Other institutions whose city data operators and analysts may read
    /// it (a closed tenant; an open one anyone reads).
    #[serde(default)]
    #[cfg_attr(feature = "openapi", schema(value_type = Vec<i64>, max_items = 1000))]
    pub readers: Vec<InstitutionId>,
    /// Other institutions whose city data operators may write it.
    #[serde(default)]
    #[cfg_attr(feature = "openapi", schema(value_type = Vec<i64>, max_items = 1000))]
    pub writers: Vec<InstitutionId>,
}

/// What a request on a tenant needs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Rule {
    /// Nothing: anyone may.
    Anyone,
    /// A caller the policy lets do it.
    Policy(TenantSettings),
    /// The tenant does not exist and may not be made on first use.
    NoTenant,
}

impl TenantSettings {
    /// What `op` needs here.
    pub fn rule(&self, op: CityOp) -> Rule {
        let anyone = self.access == Access::Open
            && match op {
                CityOp::Read => true,
                CityOp::Write | CityOp::Subscribe => self.public_writes,
                CityOp::Register => self.public_registrations,
            };
        if anyone {
            Rule::Anyone
        } else {
            Rule::Policy(self.clone())
        }
    }

    /// The policy's action for `op` on this tenant.
    pub fn action(&self, op: CityOp) -> Action<'_> {
        Action::CityData {
            owner: self.institution,
            readers: &self.readers,
            writers: &self.writers,
            op,
        }
    }

    /// Checks the settings, and clears what a closed tenant ignores (its
    /// public writes and registrations), so that what is kept and shown
    /// is what applies.
    fn check(&mut self) -> Result<(), HubError> {
        if !crate::broker::valid_tenant_name(&self.name) {
            return Err(HubError::BadRequest(
                "a tenant name has at most 64 letters, digits, '_', '-' or '.' (\"\" is the default tenant)".into(),
            ));
        }
        if self.readers.len() > MAX_LET_IN || self.writers.len() > MAX_LET_IN {
            return Err(HubError::BadRequest(format!(
                "a tenant lets in at most {MAX_LET_IN} readers and {MAX_LET_IN} writers"
            )));
        }
        if self.access == Access::Closed {
            self.public_writes = false;
            self.public_registrations = false;
        }
        self.readers.sort();
        self.readers.dedup();
        self.writers.sort();
        self.writers.dedup();
        Ok(())
    }
}

/// Institutions a tenant lets in, of each kind.
const MAX_LET_IN: usize = 1000;

type Settings = BTreeMap<String, TenantSettings>;

/// How long the settings are trusted before they are read again: what
/// `civic admin city-tenant` or another broker process over the same
/// database changed applies here within it.
const RELOAD: std::time::Duration = std::time::Duration::from_secs(5);

/// The tenants' settings and when they were read from the store.
#[derive(Default)]
pub struct Tenancy {
    table: tokio::sync::RwLock<Option<(std::time::Instant, Arc<Settings>)>>,
}

tokio::task_local! {
    /// Who made the request being answered, when it came with a token.
    pub static CALLER: Option<Ctx>;
}

/// An audit entry for `action` on `resource`, naming the request's caller
/// (and its address and request id) when the request had one.
pub fn audit_entry(action: &str, resource: &str) -> AuditEntry {
    CALLER
        .try_with(|c| {
            c.as_ref()
                .map(|ctx| ctx.entry(action, resource, Outcome::Allowed))
        })
        .ok()
        .flatten()
        .unwrap_or_else(|| AuditEntry::new(action, resource, Outcome::Allowed))
}

impl CityData {
    /// Every tenant's settings, from the store.
    async fn load_tenants(&self) -> Result<Settings, HubError> {
        use crate::store::TenantStore;
        let mut all = BTreeMap::new();
        for (name, doc) in self.store.load_tenants().await? {
            match serde_json::from_str::<TenantSettings>(&doc) {
                Ok(s) => {
                    all.insert(name, s);
                }
                // Unreadable settings must not open a tenant: refuse
                // everything until they are set again.
                Err(_) => {
                    tracing::error!("city data: a tenant's stored settings do not read; the tenant is refused until they are set again");
                    return Err(HubError::Conflict(
                        "a city data tenant's settings do not read".into(),
                    ));
                }
            }
        }
        Ok(all)
    }

    /// The settings, read again when older than `RELOAD`.
    async fn tenant_settings(&self) -> Result<Arc<Settings>, HubError> {
        let fresh = |t: &Option<(std::time::Instant, Arc<Settings>)>| {
            t.as_ref()
                .filter(|(at, _)| at.elapsed() < RELOAD)
                .map(|(_, s)| s.clone())
        };
        if let Some(s) = fresh(&*self.tenancy.table.read().await) {
            return Ok(s);
        }
        let mut table = self.tenancy.table.write().await;
        if let Some(s) = fresh(&table) {
            return Ok(s);
        }
        let s = Arc::new(self.load_tenants().await?);
        *table = Some((std::time::Instant::now(), s.clone()));
        Ok(s)
    }

    /// What `op` on `tenant` needs. A tenant an administrator set up
    /// exists in the broker from then on, with or without entities.
    pub async fn rule(&self, tenant: &str, op: CityOp) -> crate::problem::Result<Rule> {
        let settings = self
            .tenant_settings()
            .await
            .map_err(|_| crate::problem::NgsiError::internal("the tenants' settings do not read"))?
            .get(tenant)
            .cloned();
        Ok(match settings {
            Some(settings) => {
                self.broker.tenant_for_write(tenant).await?;
                settings.rule(op)
            }
            None if self.config.city_implicit_tenants => Rule::Anyone,
            None => Rule::NoTenant,
        })
    }

    /// Every tenant's settings: administrators and city data operators.
    pub async fn tenants(&self, ctx: &Ctx) -> Result<Vec<TenantSettings>, HubError> {
        self.authorize(
            ctx,
            Action::ListCityTenants,
            "citydata.tenant.list",
            "ngsi-tenants",
        )
        .await?;
        Ok(self.tenant_settings().await?.values().cloned().collect())
    }

    /// Sets up a tenant or changes its settings, audited in the same
    /// transaction; true when it was new. Its institution's administrators
    /// (and, when it changes hands, the new one's) or the platform's.
    pub async fn set_tenant(
        &self,
        ctx: &Ctx,
        mut settings: TenantSettings,
    ) -> Result<(TenantSettings, bool), HubError> {
        // Under the write lock, from the store: nothing set meanwhile by
        // another process is overwritten unseen.
        let mut table = self.tenancy.table.write().await;
        let mut all = self.load_tenants().await?;
        let old = all.get(&settings.name).cloned();
        let verb = if old.is_some() { "update" } else { "create" };
        // (The name is checked below, once the caller may: a denial
        // records at most its first 64 characters.)
        let shown: String = settings.name.chars().take(64).collect();
        let resource = format!("ngsi-tenant:{shown}");
        let action = format!("citydata.tenant.{verb}");
        if let Some(old) = &old {
            if old.institution != settings.institution {
                let from = Action::ManageCityTenants {
                    institution: old.institution,
                };
                self.authorize(ctx, from, &action, &resource).await?;
            }
        }
        let to = Action::ManageCityTenants {
            institution: settings.institution,
        };
        let audit = self.authorize(ctx, to, &action, &resource).await?;
        // Checked once the caller may: who may not is told so, whatever
        // the settings.
        settings.check()?;
        for id in std::iter::once(&settings.institution)
            .chain(&settings.readers)
            .chain(&settings.writers)
        {
            if self.store.institution(*id).await?.is_none() {
                return Err(HubError::NotFound(format!("institution {}", id.0)));
            }
        }
        let doc = serde_json::to_string(&settings)
            .map_err(|_| HubError::BadRequest("the settings do not serialise".into()))?;
        use crate::store::TenantStore;
        self.store.put_tenant(&settings.name, &doc, audit).await?;
        all.insert(settings.name.clone(), settings.clone());
        *table = Some((std::time::Instant::now(), Arc::new(all)));
        Ok((settings, old.is_none()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn settings(access: Access) -> TenantSettings {
        TenantSettings {
            name: "city".into(),
            institution: InstitutionId(1),
            access,
            public_writes: false,
            public_registrations: false,
            readers: vec![],
            writers: vec![],
        }
    }

    #[test]
    fn an_open_tenant_is_read_by_anyone_and_written_as_its_settings_say() {
        let open = settings(Access::Open);
        assert_eq!(open.rule(CityOp::Read), Rule::Anyone);
        assert!(matches!(open.rule(CityOp::Write), Rule::Policy(_)));
        assert!(matches!(open.rule(CityOp::Subscribe), Rule::Policy(_)));
        assert!(matches!(open.rule(CityOp::Register), Rule::Policy(_)));
        let sandbox = TenantSettings {
            public_writes: true,
            public_registrations: true,
            ..open
        };
        assert_eq!(sandbox.rule(CityOp::Write), Rule::Anyone);
        assert_eq!(sandbox.rule(CityOp::Subscribe), Rule::Anyone);
        assert_eq!(sandbox.rule(CityOp::Register), Rule::Anyone);
        let closed = settings(Access::Closed);
        for op in [
            CityOp::Read,
            CityOp::Subscribe,
            CityOp::Write,
            CityOp::Register,
        ] {
            assert!(matches!(closed.rule(op), Rule::Policy(_)));
        }
        let mut odd = TenantSettings {
            public_writes: true,
            readers: vec![InstitutionId(3), InstitutionId(2), InstitutionId(3)],
            ..closed
        };
        odd.check().unwrap();
        assert!(!odd.public_writes, "a closed tenant has no public writes");
        assert_eq!(odd.readers, [InstitutionId(2), InstitutionId(3)]);
        assert!(TenantSettings {
            name: "no spaces".into(),
            ..settings(Access::Open)
        }
        .check()
        .is_err());
        assert!(TenantSettings {
            readers: vec![InstitutionId(1); MAX_LET_IN + 1],
            ..settings(Access::Open)
        }
        .check()
        .is_err());
    }

    #[test]
    fn settings_name_their_fields_and_refuse_others() {
        let s: TenantSettings =
            serde_json::from_str(r#"{"name":"","institution":3,"access":"closed"}"#).unwrap();
        assert_eq!(s.access, Access::Closed);
        assert!(s.readers.is_empty());
        assert!(serde_json::from_str::<TenantSettings>(
            r#"{"name":"","institution":3,"access":"closed","public":true}"#
        )
        .is_err());
    }
}
