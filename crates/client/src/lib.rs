//! What the `civic` command's API clients share, the platform's and the
//! applications': the hub's address and the caller's saved session
//! (`client`: `HubArgs`, `Client`, sign-in), and how answers are shown
//! (`output`: tables, JSON, CSV). An application's commands are written
//! against this crate and the `civic` binary registers them in one line.

pub mod client;
pub mod output;
