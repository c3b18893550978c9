//! Route handlers: parse input into domain types, call the hub, map the
//! result. No handler decides access itself.

pub mod admin;
pub mod audit;
pub mod auth;
pub mod citydata;
pub mod geography;
pub mod nodes;
pub mod system;
