//! Public MyData's support centre: institutions open tickets (a new
//! dataset, a linkage problem, an error) and follow them; the support
//! agents answer and close them, run training sessions with their
//! attendees and materials, and read each institution's consulting
//! history (its tickets and the trainings it attended).
//!
//! Tickets are about institutions' work, not about citizens: writes are
//! audited in their transaction; reads are not.

use crate::store::{SupportStore, Ticket, Training};
use crate::MyData;
use civic_core::error::parse_text;
use civic_core::identity::InstitutionId;
use civic_core::mydata::{TicketKind, TicketStatus};
use civic_core::policy::Action;
use civic_hub::{invalid, Ctx, HubError, Result};
use civic_store::InstitutionStore;
use serde::{Deserialize, Serialize};
use std::collections::HashMap;

/// Tickets a list gives unless asked for another number.
pub const TICKETS_PAGE: i64 = 100;

/// Tickets an institution's consulting history gives: its newest.
pub const HISTORY_TICKETS: i64 = 200;

#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct NewTicketRequest {
    /// `new_dataset`, `linkage_problem`, `error` or `other`.
    #[cfg_attr(feature = "openapi", schema(schema_with = ticket_kind))]
    pub kind: String,
    #[cfg_attr(feature = "openapi", schema(schema_with = civic_core::schemas::text_200))]
    pub subject: String,
    #[cfg_attr(feature = "openapi", schema(schema_with = civic_core::schemas::reason))]
    pub text: String,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct TicketUpdate {
    /// A reply (optional when closing).
    #[cfg_attr(feature = "openapi", schema(schema_with = civic_core::schemas::reason_or_null))]
    pub text: Option<String>,
    /// `close` to close it; otherwise the reply answers it (an agent's) or
    /// reopens it (the institution's).
    #[serde(default)]
    pub close: bool,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct MessageView {
    pub user: i64,
    pub text: String,
    pub at: String,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct TicketView {
    pub id: civic_core::mydata::TicketId,
    pub institution: crate::catalogue::InstitutionRef,
    pub opened_by: i64,
    pub kind: TicketKind,
    pub subject: String,
    pub status: TicketStatus,
    pub opened_at: String,
    pub updated_at: String,
    pub messages: Vec<MessageView>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Material {
    #[cfg_attr(feature = "openapi", schema(schema_with = civic_core::schemas::text_200))]
    pub title: String,
    /// Where it is kept (https, or a path on the hub).
    #[cfg_attr(feature = "openapi", schema(schema_with = civic_core::schemas::material_url))]
    pub url: String,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct NewTrainingRequest {
    #[cfg_attr(feature = "openapi", schema(schema_with = civic_core::schemas::text_200))]
    pub title: String,
    /// YYYY-MM-DD.
    #[cfg_attr(feature = "openapi", schema(schema_with = civic_core::schemas::date))]
    pub held_on: String,
    #[cfg_attr(feature = "openapi", schema(schema_with = civic_core::schemas::text_200))]
    pub place: String,
    #[serde(default)]
    #[cfg_attr(feature = "openapi", schema(max_items = 50))]
    pub materials: Vec<Material>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct AttendeeRequest {
    pub institution_id: i64,
    #[cfg_attr(feature = "openapi", schema(schema_with = civic_core::schemas::text_100))]
    pub name: String,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct AttendeeView {
    pub institution: crate::catalogue::InstitutionRef,
    pub name: String,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct TrainingView {
    pub id: civic_core::mydata::TrainingId,
    pub title: String,
    pub held_on: String,
    pub place: String,
    pub materials: Vec<Material>,
    pub attendees: Vec<AttendeeView>,
}

/// An institution's consulting history.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ConsultingHistory {
    pub institution: crate::catalogue::InstitutionRef,
    pub tickets: Vec<TicketView>,
    pub trainings: Vec<TrainingView>,
}

impl MyData {
    async fn ticket_view(&self, t: &Ticket) -> Result<TicketView> {
        let mut views = self.ticket_views(vec![t.clone()]).await?;
        views
            .pop()
            .ok_or_else(|| HubError::NotFound(format!("support-ticket:{}", t.id)))
    }

    /// The views of a page of tickets: their messages in one query, each
    /// institution's name looked up once.
    async fn ticket_views(&self, tickets: Vec<Ticket>) -> Result<Vec<TicketView>> {
        let ids: Vec<civic_core::mydata::TicketId> = tickets.iter().map(|t| t.id).collect();
        let mut messages: HashMap<civic_core::mydata::TicketId, Vec<MessageView>> = HashMap::new();
        for m in self.store.messages_of_tickets(&ids).await? {
            messages.entry(m.ticket).or_default().push(MessageView {
                user: m.user.0,
                text: m.text,
                at: m.created_at.to_rfc3339(),
            });
        }
        let mut names: HashMap<InstitutionId, crate::catalogue::InstitutionRef> = HashMap::new();
        let mut out = Vec::with_capacity(tickets.len());
        for t in tickets {
            let institution = match names.get(&t.institution) {
                Some(known) => known.clone(),
                None => {
                    let found = self.institution_ref(t.institution).await?;
                    names.insert(t.institution, found.clone());
                    found
                }
            };
            out.push(TicketView {
                id: t.id,
                institution,
                opened_by: t.opened_by.0,
                kind: t.kind,
                subject: t.subject,
                status: t.status,
                opened_at: t.created_at.to_rfc3339(),
                updated_at: t.updated_at.to_rfc3339(),
                messages: messages.remove(&t.id).unwrap_or_default(),
            });
        }
        Ok(out)
    }

    async fn training_view(&self, t: Training) -> Result<TrainingView> {
        let mut attendees = Vec::with_capacity(t.attendees.len());
        for (institution, name) in t.attendees {
            attendees.push(AttendeeView {
                institution: self.institution_ref(institution).await?,
                name,
            });
        }
        Ok(TrainingView {
            id: t.id,
            title: t.title,
            held_on: t.held_on,
            place: t.place,
            materials: serde_json::from_str(&t.materials).unwrap_or_default(),
            attendees,
        })
    }

    /// Opens a ticket for the caller's institution.
    pub async fn open_ticket(&self, ctx: &Ctx, req: NewTicketRequest) -> Result<TicketView> {
        let entry = self
            .authorize(
                ctx,
                Action::OpenSupportTicket,
                "support.ticket.open",
                "support-ticket",
            )
            .await?;
        let me = ctx.principal().ok_or_else(|| {
            HubError::BadRequest("a ticket is opened by an institution's staff".into())
        })?;
        let kind = TicketKind::from_name(&req.kind).ok_or_else(|| {
            invalid(
                "kind",
                format!("must be one of {}", TicketKind::names().join(", ")),
            )
        })?;
        let subject = parse_text("subject", &req.subject, 200)?;
        let text = civic_core::investigation::parse_reason(&req.text)
            .map_err(|e| invalid("text", e.message))?;
        let ticket = self
            .store
            .open_ticket(me.institution, me.user, kind, &subject, &text, entry)
            .await?;
        self.ticket_view(&ticket).await
    }

    /// The tickets the caller follows (all for support agents, her
    /// institution's for others), newest first: at most `limit` (1–500,
    /// default [`TICKETS_PAGE`]), older than the ticket `before` if given.
    pub async fn list_tickets(
        &self,
        ctx: &Ctx,
        before: Option<civic_core::mydata::TicketId>,
        limit: Option<i64>,
    ) -> Result<Vec<TicketView>> {
        let limit = limit.unwrap_or(TICKETS_PAGE);
        if !(1..=500).contains(&limit) {
            return Err(invalid("limit", "must be from 1 to 500"));
        }
        if before.is_some_and(|b| b.0 < 1) {
            return Err(invalid("before", "must be a ticket id (1 or more)"));
        }
        let agent = self.may_handle_support(ctx);
        if !agent {
            self.authorize(
                ctx,
                Action::OpenSupportTicket,
                "support.ticket.list",
                "support-ticket",
            )
            .await?;
        }
        let mine = if agent {
            None
        } else {
            match ctx.principal() {
                Some(p) => Some(p.institution),
                None => return Ok(Vec::new()),
            }
        };
        let tickets = self.store.tickets(mine, before, limit).await?;
        self.ticket_views(tickets).await
    }

    fn may_handle_support(&self, ctx: &Ctx) -> bool {
        ctx.principal()
            .is_some_and(|p| civic_core::policy::decide(p, Action::HandleSupport).is_ok())
    }

    /// One ticket, for its institution's staff and the agents.
    pub async fn get_ticket(
        &self,
        ctx: &Ctx,
        id: civic_core::mydata::TicketId,
    ) -> Result<TicketView> {
        let ticket = self.ticket_for(ctx, id, "support.ticket.read").await?.0;
        self.ticket_view(&ticket).await
    }

    async fn ticket_for(
        &self,
        ctx: &Ctx,
        id: civic_core::mydata::TicketId,
        audit_action: &str,
    ) -> Result<(Ticket, bool, civic_core::audit::AuditEntry)> {
        let resource = format!("support-ticket:{id}");
        let agent = self.may_handle_support(ctx);
        let entry = if agent {
            self.authorize(ctx, Action::HandleSupport, audit_action, &resource)
                .await?
        } else {
            self.authorize(ctx, Action::OpenSupportTicket, audit_action, &resource)
                .await?
        };
        let ticket = self
            .store
            .ticket(id)
            .await?
            .ok_or_else(|| HubError::NotFound(format!("ticket {id}")))?;
        if !agent && ctx.principal().map(|p| p.institution) != Some(ticket.institution) {
            return Err(HubError::NotFound(format!("ticket {id}")));
        }
        Ok((ticket, agent, entry))
    }

    /// A reply, and the ticket's new status: an agent's reply answers it,
    /// the institution's reopens it; either may close it.
    pub async fn update_ticket(
        &self,
        ctx: &Ctx,
        id: civic_core::mydata::TicketId,
        req: TicketUpdate,
    ) -> Result<TicketView> {
        let (ticket, agent, entry) = self.ticket_for(ctx, id, "support.ticket.update").await?;
        let me = ctx
            .principal()
            .ok_or_else(|| HubError::BadRequest("a ticket is updated by a person".into()))?;
        // Checked again in the store's transaction; here so that a reply
        // to a closed ticket is refused before its text is parsed.
        if let Err(why) = ticket.status.after(req.close, agent) {
            return Err(HubError::Conflict(format!("ticket {id} is {why}")));
        }
        let text = req
            .text
            .as_deref()
            .map(civic_core::investigation::parse_reason)
            .transpose()
            .map_err(|e| invalid("text", e.message))?;
        if text.is_none() && !req.close {
            return Err(invalid("text", "a reply needs a text"));
        }
        let ticket = self
            .store
            .update_ticket(id, me.user, text.as_deref(), req.close, agent, entry)
            .await?;
        self.ticket_view(&ticket).await
    }

    /// Schedules a training session (agents).
    pub async fn create_training(
        &self,
        ctx: &Ctx,
        req: NewTrainingRequest,
    ) -> Result<TrainingView> {
        let entry = self
            .authorize(
                ctx,
                Action::HandleSupport,
                "support.training.create",
                "training",
            )
            .await?;
        let me = ctx
            .principal()
            .ok_or_else(|| HubError::BadRequest("a training is scheduled by an agent".into()))?;
        let title = parse_text("title", &req.title, 200)?;
        let place = parse_text("place", &req.place, 200)?;
        let day = time::Date::parse(
            &req.held_on,
            &time::macros::format_description!("[year]-[month]-[day]"),
        )
        .map_err(|_| invalid("held_on", "must be a date, YYYY-MM-DD"))?;
        if req.materials.len() > 50 {
            return Err(invalid("materials", "at most 50"));
        }
        let mut materials = Vec::with_capacity(req.materials.len());
        for m in req.materials {
            let url = parse_text("materials.url", &m.url, 500)?;
            if !(url.starts_with("https://") || url.starts_with('/')) {
                return Err(invalid(
                    "materials.url",
                    "must be an https URL or a path on the hub",
                ));
            }
            materials.push(Material {
                title: parse_text("materials.title", &m.title, 200)?,
                url,
            });
        }
        let training = self
            .store
            .create_training(
                &title,
                &day.to_string(),
                &place,
                &serde_json::to_string(&materials).expect("materials serialise"),
                me.user,
                entry,
            )
            .await?;
        self.training_view(training).await
    }

    /// Records an institution's attendee of a session (agents).
    pub async fn add_attendee(
        &self,
        ctx: &Ctx,
        session: civic_core::mydata::TrainingId,
        req: AttendeeRequest,
    ) -> Result<TrainingView> {
        let entry = self
            .authorize(
                ctx,
                Action::HandleSupport,
                "support.training.attendee",
                &format!("training:{session}"),
            )
            .await?;
        let name = parse_text("name", &req.name, 100)?;
        let institution = InstitutionId(req.institution_id);
        if self.store.institution(institution).await?.is_none() {
            return Err(HubError::NotFound(format!(
                "institution {}",
                req.institution_id
            )));
        }
        if self.store.training(session).await?.is_none() {
            return Err(HubError::NotFound(format!("training {session}")));
        }
        let training = self
            .store
            .add_attendee(session, institution, &name, entry)
            .await?;
        self.training_view(training).await
    }

    /// The training sessions (any user with a duty).
    pub async fn list_trainings(&self, ctx: &Ctx) -> Result<Vec<TrainingView>> {
        self.authorize(
            ctx,
            Action::ListTrainings,
            "support.training.list",
            "training",
        )
        .await?;
        let mut out = Vec::new();
        for t in self.store.trainings().await? {
            out.push(self.training_view(t).await?);
        }
        Ok(out)
    }

    /// An institution's consulting history (agents).
    pub async fn consulting_history(
        &self,
        ctx: &Ctx,
        institution: InstitutionId,
    ) -> Result<ConsultingHistory> {
        self.authorize(
            ctx,
            Action::HandleSupport,
            "support.history.read",
            &format!("institution:{institution}"),
        )
        .await?;
        let found = self
            .store
            .institution(institution)
            .await?
            .ok_or_else(|| HubError::NotFound(format!("institution {institution}")))?;
        let tickets = self
            .store
            .tickets(Some(institution), None, HISTORY_TICKETS)
            .await?;
        let tickets = self.ticket_views(tickets).await?;
        let mut trainings = Vec::new();
        for t in self.store.trainings().await? {
            if t.attendees.iter().any(|(i, _)| *i == institution) {
                trainings.push(self.training_view(t).await?);
            }
        }
        Ok(ConsultingHistory {
            institution: crate::catalogue::InstitutionRef {
                id: institution,
                name: found.name,
            },
            tickets,
            trainings,
        })
    }
}

#[cfg(feature = "openapi")]
fn ticket_kind() -> utoipa::openapi::Object {
    civic_core::schemas::one_of(&TicketKind::names())
}
