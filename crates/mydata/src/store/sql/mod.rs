//! MyData's SQL, written once and compiled once per backend (see
//! `civic_store::kit`): the catalogue and agreements, the transfers and
//! their events, the support centre.

use super::{Db, Engine};
use crate::store::*;
use civic_core::audit::AuditEntry;
use civic_core::identity::{InstitutionId, UserId};
use civic_core::time::Timestamp;
use civic_store::kit::{corrupt, from_json_text, json_text, map_unique, only, ts, Backend, Value};
use sqlx::Row;
use std::collections::HashMap;

type Tx = sqlx::Transaction<'static, Db>;
type DbRow = <Db as sqlx::Database>::Row;

mod catalogue;
mod support;
mod transfers;
