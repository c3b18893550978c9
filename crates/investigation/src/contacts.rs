//! Contacts: the people the holders found where a case was, followed up
//! (to notify, notified, in quarantine, tested, negative, positive — a
//! positive contact becomes a case linked to its source); notices go to
//! the outbox, which the notification sender (an SMS gateway) reads.

use super::cases::{case_context, CaseSecret};
use super::PURPOSE;
use crate::store::{CaseStore, ContactRecord, ContactStore, NewCase, NewOutboxMessage};
use crate::Investigation;
use civic_core::identity::Region;
use civic_core::investigation::{CaseId, ContactId, ContactStatus, ResponseId};
use civic_core::policy::{decide, Action};
use civic_core::ValidationError;
use civic_eiss::contacts::Contact;
use civic_eiss::formats::Subject;
use civic_hub::{Ctx, HubError, Result};
use serde::{Deserialize, Serialize};
use std::collections::HashMap;

pub(crate) fn contact_context(case: CaseId, tag: &str) -> String {
    format!("contact:{case}:{tag}")
}

pub(crate) fn outbox_context(response: ResponseId) -> String {
    format!("outbox:{response}")
}

/// A message for someone: who, and what it says.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Notice {
    pub recipient: String,
    pub text: String,
}

/// A contact as shown to the investigators of its case.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ContactView {
    #[cfg_attr(feature = "openapi", schema(value_type = i64))]
    pub id: ContactId,
    #[cfg_attr(feature = "openapi", schema(value_type = i64))]
    pub case: CaseId,
    pub case_number: String,
    /// The telco or card company that knows the person, and its id for
    /// him (a subscriber or card).
    pub holder: String,
    pub identifier: u64,
    /// The case's stay where they met.
    pub place: Option<String>,
    pub lat: f64,
    pub lon: f64,
    /// When the holder saw him there (RFC 3339).
    pub first_seen: String,
    pub last_seen: String,
    pub overlap_minutes: i64,
    #[cfg_attr(feature = "openapi", schema(value_type = String))]
    pub status: ContactStatus,
    /// The case he became, if he tested positive.
    #[cfg_attr(feature = "openapi", schema(value_type = Option<i64>))]
    pub linked_case: Option<CaseId>,
}

/// A notice as kept in the outbox.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct OutboxView {
    pub id: i64,
    #[cfg_attr(feature = "openapi", schema(value_type = Option<i64>))]
    pub case: Option<CaseId>,
    /// `patient_notice` or `contact_notice`.
    pub kind: String,
    pub recipient: String,
    pub text: String,
    pub created_at: String,
    pub sent_at: Option<String>,
}

/// A change of a contact's follow-up, as asked through the API.
#[derive(Debug, Clone, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ContactUpdate {
    /// `to_notify`, `notified`, `in_quarantine`, `tested`, `negative`,
    /// `positive`.
    #[cfg_attr(feature = "openapi", schema(schema_with = contact_status))]
    pub status: String,
    /// For `positive`: the new case's number and dates (YYYY-MM-DD);
    /// its region is the source case's unless given.
    #[cfg_attr(feature = "openapi", schema(schema_with = civic_core::schemas::case_number_or_null))]
    pub case_number: Option<String>,
    #[cfg_attr(feature = "openapi", schema(schema_with = civic_core::schemas::date_or_null))]
    pub onset_date: Option<String>,
    #[cfg_attr(feature = "openapi", schema(schema_with = civic_core::schemas::date_or_null))]
    pub confirmed_date: Option<String>,
    #[cfg_attr(feature = "openapi", schema(schema_with = civic_core::schemas::region_or_null))]
    pub region: Option<String>,
}

fn ts(unix: i64) -> String {
    civic_core::time::Timestamp::from_micros(unix.saturating_mul(1_000_000)).to_rfc3339()
}

impl Investigation {
    fn contact_view(
        &self,
        key: &super::DataKey,
        r: &ContactRecord,
        number: &str,
    ) -> Result<ContactView> {
        let c: Contact = key.open_json(&contact_context(r.case, &r.tag), &r.sealed)?;
        Ok(ContactView {
            id: r.id,
            case: r.case,
            case_number: number.to_owned(),
            holder: c.holder,
            identifier: c.id,
            place: c.place,
            lat: c.lat,
            lon: c.lon,
            first_seen: ts(c.first_seen),
            last_seen: ts(c.last_seen),
            overlap_minutes: r.overlap_minutes,
            status: r.status,
            linked_case: r.linked_case,
        })
    }

    /// A case's contacts.
    pub async fn case_contacts(&self, ctx: &Ctx, case: CaseId) -> Result<Vec<ContactView>> {
        let (meta, entry) = self.case_for(ctx, case, true, "eiss.contacts.read").await?;
        let key = self.data_key(meta.response).await?;
        let records = self
            .store
            .read_contacts(meta.response, Some(case), entry)
            .await?;
        records
            .iter()
            .map(|r| self.contact_view(&key, r, &meta.number))
            .collect()
    }

    /// The contacts of every case of a response the caller works on.
    pub async fn response_contacts(
        &self,
        ctx: &Ctx,
        response: ResponseId,
    ) -> Result<Vec<ContactView>> {
        let entry = self
            .authorize(
                ctx,
                Action::Investigate,
                "eiss.contacts.read",
                &format!("response:{response}"),
            )
            .await?;
        let metas = self.store.case_metas(response).await?;
        let mine: HashMap<CaseId, String> = metas
            .iter()
            .filter(|m| {
                ctx.principal().is_none_or(|p| {
                    decide(
                        p,
                        Action::WorkCase {
                            region: &m.region,
                            assigned_to: &m.assigned,
                        },
                    )
                    .is_ok()
                })
            })
            .map(|m| (m.id, m.number.clone()))
            .collect();
        if mine.is_empty() {
            return Ok(Vec::new());
        }
        let key = self.data_key(response).await?;
        let records = self.store.read_contacts(response, None, entry).await?;
        records
            .iter()
            .filter_map(|r| mine.get(&r.case).map(|n| (r, n)))
            .map(|(r, n)| self.contact_view(&key, r, n))
            .collect()
    }

    /// Follows a contact up; a positive one becomes a case of its own,
    /// linked to its source.
    pub async fn update_contact(
        &self,
        ctx: &Ctx,
        id: ContactId,
        update: ContactUpdate,
    ) -> Result<ContactView> {
        self.authorize(
            ctx,
            Action::Investigate,
            "eiss.contact.update",
            &format!("contact:{id}"),
        )
        .await?;
        let status = ContactStatus::parse(&update.status)?;
        let meta = self
            .store
            .contact_meta(id)
            .await?
            .ok_or_else(|| HubError::NotFound(format!("contact {id}")))?;
        let (case, entry) = self
            .case_for(ctx, meta.case, true, "eiss.contact.update")
            .await?;
        let key = self.data_key(case.response).await?;
        let full = self
            .store
            .read_contact(
                id,
                self.system_entry("eiss.contact.read", format!("contact:{id}"))
                    .subject(format!("case:{}", case.id)),
            )
            .await?
            .ok_or_else(|| HubError::NotFound(format!("contact {id}")))?;
        let contact: Contact =
            key.open_json(&contact_context(full.case, &full.tag), &full.sealed)?;
        let mut new_case = None;
        if status == ContactStatus::Positive && meta.linked_case.is_none() {
            let number = update.case_number.as_deref().ok_or_else(|| {
                ValidationError::new(
                    "case_number",
                    "a positive contact becomes a case: give its number",
                )
            })?;
            let number = civic_eiss::formats::case_number(0, number.trim())
                .map_err(|e| ValidationError::new("case_number", e.message))?;
            let date = |raw: Option<&str>, field: &'static str| {
                super::date_field(field, raw.unwrap_or_default())
            };
            let onset = date(update.onset_date.as_deref(), "onset_date")?;
            let confirmed = date(update.confirmed_date.as_deref(), "confirmed_date")?;
            civic_eiss::formats::check_case_dates(onset, confirmed)
                .map_err(|e| ValidationError::new("confirmed_date", e))?;
            let region = match &update.region {
                Some(r) => Region::parse(r)?,
                None => case.region.clone(),
            };
            self.authorize(
                ctx,
                Action::RegisterCase { region: &region },
                "eiss.case.register",
                &format!("response:{}", case.response),
            )
            .await?;
            // Who he is, as far as the holder that found him knows.
            let code = self.holder_code(&contact.holder).await?;
            let mut subject = Subject::default();
            match code {
                Some((code, kind)) if kind == "pings" => subject.phones.push((code, contact.id)),
                Some((code, _)) => subject.cards.push((code, contact.id)),
                None => {}
            }
            let secret = CaseSecret {
                subject,
                onset,
                confirmed,
                onset_estimated: false,
            };
            new_case = Some(NewCase {
                response: case.response,
                sealed: key.seal_json(&case_context(case.response, &number), &secret),
                number,
                region,
                source_case: Some(case.id),
                assigned: case.assigned.clone(),
            });
        }
        let mut entry = entry;
        entry.reason = Some(match &new_case {
            Some(c) => format!(
                "contact {id}: {status}; registered as case {} of source case {}",
                c.number, case.id
            ),
            None => format!("contact {id}: {status}"),
        });
        let outbox = if status == ContactStatus::Notified && meta.status == ContactStatus::ToNotify
        {
            vec![
                self.contact_notice(&key, case.response, case.id, &contact)
                    .await?,
            ]
        } else {
            Vec::new()
        };
        let created = self
            .store
            .set_contact_status(id, meta.status, status, new_case, outbox, entry)
            .await?;
        let record = ContactRecord {
            status,
            linked_case: created.map(|c| c.id).or(meta.linked_case),
            ..full
        };
        self.contact_view(&key, &record, &case.number)
    }

    /// Notifies many contacts at once. Every id must be a contact of a
    /// case the caller works on: all are checked before any is notified,
    /// so a bad list changes nothing.
    pub async fn notify_contacts(&self, ctx: &Ctx, ids: &[ContactId]) -> Result<usize> {
        self.authorize(ctx, Action::Investigate, "eiss.contacts.notify", "contacts")
            .await?;
        if ids.is_empty() || ids.len() > 10_000 {
            return Err(ValidationError::new("contacts", "give 1-10000 contact ids").into());
        }
        let mut unique = ids.to_vec();
        unique.sort_unstable();
        unique.dedup();
        let mut due = Vec::new();
        let mut cases_checked = std::collections::HashSet::new();
        let mut responses_checked = std::collections::HashSet::new();
        for &id in &unique {
            let meta = self
                .store
                .contact_meta(id)
                .await?
                .ok_or_else(|| HubError::NotFound(format!("contact {id}")))?;
            if cases_checked.insert(meta.case) {
                let (case, _) = self
                    .case_for(ctx, meta.case, true, "eiss.contacts.notify")
                    .await?;
                if responses_checked.insert(case.response) {
                    self.open_response_record(case.response).await?;
                }
            }
            if meta.status == ContactStatus::ToNotify {
                due.push(id);
            }
        }
        for &id in &due {
            self.update_contact(
                ctx,
                id,
                ContactUpdate {
                    status: ContactStatus::Notified.as_str().into(),
                    case_number: None,
                    onset_date: None,
                    confirmed_date: None,
                    region: None,
                },
            )
            .await?;
        }
        Ok(due.len())
    }

    async fn contact_notice(
        &self,
        key: &super::DataKey,
        response: ResponseId,
        case: CaseId,
        c: &Contact,
    ) -> Result<NewOutboxMessage> {
        let (record, rules) = self.open_response_record(response).await?;
        let when = format!(
            "{} {}-{}",
            rules.local_date(c.first_seen),
            rules.local_hhmm(c.first_seen),
            rules.local_hhmm(c.last_seen)
        );
        let place = c
            .place
            .clone()
            .unwrap_or_else(|| format!("near {:.4}, {:.4}", c.lat, c.lon));
        let text = format!(
            "You may have been exposed to a confirmed case at {place} on {when}. Please stay home and \
             contact your public health centre for a test. ({}, {PURPOSE})",
            record.legal_basis
        );
        Ok(NewOutboxMessage {
            response,
            case: Some(case),
            kind: "contact_notice".into(),
            sealed: key.seal_json(
                &outbox_context(response),
                &Notice {
                    recipient: format!("{} {}", c.holder, c.id),
                    text,
                },
            ),
        })
    }

    /// The code and kind of the node of a holding institution.
    async fn holder_code(&self, holder: &str) -> Result<Option<(String, String)>> {
        use civic_store::{InstitutionStore, NodeStore};
        let institutions = self.store.institutions().await?;
        let Some(inst) = institutions.iter().find(|i| i.name == holder) else {
            return Ok(None);
        };
        Ok(self
            .store
            .nodes()
            .await?
            .into_iter()
            .filter(|n| n.institution == inst.id)
            .find_map(|n| n.route.map(|r| (r.code, r.kind))))
    }

    /// The notices sent about a case (the patient's, its contacts').
    pub async fn case_notices(&self, ctx: &Ctx, case: CaseId) -> Result<Vec<OutboxView>> {
        let (meta, entry) = self.case_for(ctx, case, true, "eiss.outbox.read").await?;
        let key = self.data_key(meta.response).await?;
        let messages = self
            .store
            .read_outbox(meta.response, Some(case), entry)
            .await?;
        messages
            .iter()
            .map(|m| {
                let n: Notice = key.open_json(&outbox_context(m.response), &m.sealed)?;
                Ok(OutboxView {
                    id: m.id,
                    case: m.case,
                    kind: m.kind.clone(),
                    recipient: n.recipient,
                    text: n.text,
                    created_at: m.created_at.to_rfc3339(),
                    sent_at: m.sent_at.map(|t| t.to_rfc3339()),
                })
            })
            .collect()
    }
}

#[cfg(feature = "openapi")]
fn contact_status() -> utoipa::openapi::Object {
    civic_core::schemas::one_of(&[
        "to_notify",
        "notified",
        "in_quarantine",
        "tested",
        "negative",
        "positive",
    ])
}
