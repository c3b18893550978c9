//! `civic admin`: the local operator's commands (institutions, users,
//! tokens, nodes), run against the database and keys directly.

use crate::output::{self, Format};
use anyhow::{anyhow, Result};
use civic_client::client::read_password;
use civic_core::identity::{ApiTokenId, InstitutionId, UserId};
use civic_hub::admin::UserRequest;
use civic_hub::{Ctx, Hub};
use clap::Subcommand;

#[derive(Subcommand)]
pub(crate) enum AdminCommand {
    Institution {
        #[command(subcommand)]
        command: InstitutionCommand,
    },
    User {
        #[command(subcommand)]
        command: UserCommand,
    },
    Token {
        #[command(subcommand)]
        command: TokenCommand,
    },
    Node {
        #[command(subcommand)]
        command: AdminNodeCommand,
    },
    /// City data's tenants: who owns each, open or closed, who else reads
    /// and writes it.
    CityTenant {
        #[command(subcommand)]
        command: CityTenantCommand,
    },
}

#[derive(Subcommand)]
pub(crate) enum CityTenantCommand {
    /// Set up a tenant, or replace its settings.
    Set {
        /// As `NGSILD-Tenant` gives it; "" for the default tenant.
        #[arg(long)]
        name: String,
        /// The institution it belongs to.
        #[arg(long)]
        institution: i64,
        /// open (anyone reads it without a token) or closed.
        #[arg(long)]
        access: String,
        /// Open tenants: anyone may write entities, without a token.
        #[arg(long)]
        public_writes: bool,
        /// Open tenants: anyone may register context sources.
        #[arg(long)]
        public_registrations: bool,
        /// Another institution whose city data operators and analysts read it.
        #[arg(long = "reader")]
        readers: Vec<i64>,
        /// Another institution whose city data operators write it.
        #[arg(long = "writer")]
        writers: Vec<i64>,
    },
    List,
}

#[derive(Subcommand)]
pub(crate) enum AdminNodeCommand {
    /// Issue a one-time enrolment token for a node of an institution.
    Token {
        #[arg(long)]
        institution: i64,
        #[arg(long)]
        name: String,
        /// Hours the token is valid (1-168).
        #[arg(long, default_value_t = 24)]
        valid_hours: i64,
    },
    /// Record where an enrolled node answers the hub, what it holds and
    /// its holder code in case registers.
    Route {
        #[arg(long)]
        name: String,
        /// e.g. https://10.0.0.5:9443
        #[arg(long)]
        url: String,
        /// pings, transactions or taps.
        #[arg(long)]
        kind: String,
        /// The holder's code in case registers, e.g. skt or shinhan.
        #[arg(long)]
        code: String,
    },
}

#[derive(Subcommand)]
pub(crate) enum InstitutionCommand {
    /// Register an institution.
    Create {
        #[arg(long)]
        name: String,
        /// hub_operator, health_authority, police, telco, card_company,
        /// transit_operator, ministry, local_government, public_institution, using_agency
        #[arg(long)]
        kind: String,
    },
    List,
}

#[derive(Subcommand)]
pub(crate) enum UserCommand {
    /// Create a user; a person's password is read from standard input.
    Create {
        #[arg(long)]
        institution: i64,
        #[arg(long)]
        username: String,
        #[arg(long)]
        display_name: String,
        /// Repeatable: investigator:REGION, approver, police_location_officer,
        /// security_auditor, mydata_operator, support_agent, analyst, administrator
        #[arg(long = "duty")]
        duties: Vec<String>,
        /// A machine client (a node, an agency's system): no password, it
        /// signs in with API tokens only.
        #[arg(long)]
        machine_client: bool,
    },
    List {
        #[arg(long)]
        institution: i64,
    },
    /// Replace a user's duties.
    Duties {
        #[arg(long)]
        user: i64,
        #[arg(long = "duty")]
        duties: Vec<String>,
    },
    /// Remove a user's second factor; she enrols a new one at next sign-in.
    ResetTotp {
        #[arg(long)]
        user: i64,
    },
    /// Lift a lock-out after repeated failed sign-ins.
    Unlock {
        #[arg(long)]
        user: i64,
    },
    /// Set a new password, read from standard input.
    SetPassword {
        #[arg(long)]
        user: i64,
    },
}

#[derive(Subcommand)]
pub(crate) enum TokenCommand {
    /// Issue an API token for a machine-client user; the secret is printed once.
    Issue {
        #[arg(long)]
        user: i64,
        #[arg(long)]
        name: String,
        #[arg(long)]
        valid_days: Option<i64>,
    },
    List {
        #[arg(long)]
        institution: i64,
    },
    Revoke {
        #[arg(long)]
        id: i64,
    },
}

pub(crate) async fn run(hub: &Hub, format: Format, command: AdminCommand) -> Result<()> {
    let ctx = Ctx::local_operator();
    match command {
        AdminCommand::Institution { command } => match command {
            InstitutionCommand::Create { name, kind } => {
                let i = hub.create_institution(&ctx, &name, &kind).await?;
                println!("created institution {} ({}, {})", i.id, i.name, i.kind);
            }
            InstitutionCommand::List => {
                let list = hub.list_institutions(&ctx).await?;
                let rows = list
                    .iter()
                    .map(|i| vec![i.id.to_string(), i.name.clone(), i.kind.to_string()])
                    .collect::<Vec<_>>();
                output::print(
                    format,
                    &["id", "name", "kind"],
                    &rows,
                    serde_json::to_value(&list)?,
                );
            }
        },
        AdminCommand::User { command } => match command {
            UserCommand::Create {
                institution,
                username,
                display_name,
                duties,
                machine_client,
            } => {
                let password = if machine_client {
                    None
                } else {
                    Some(read_password()?)
                };
                let u = hub
                    .create_user(
                        &ctx,
                        InstitutionId(institution),
                        UserRequest {
                            username,
                            display_name,
                            password,
                            duties,
                            machine_client,
                        },
                    )
                    .await?;
                println!("created user {} ({})", u.id, u.username);
            }
            UserCommand::List { institution } => {
                let users = hub.list_users(&ctx, InstitutionId(institution)).await?;
                let rows = users
                    .iter()
                    .map(|u| {
                        vec![
                            u.id.to_string(),
                            u.username.clone(),
                            u.display_name.clone(),
                            u.duties
                                .iter()
                                .map(|d| d.to_string())
                                .collect::<Vec<_>>()
                                .join(" "),
                            u.totp_enabled.to_string(),
                        ]
                    })
                    .collect::<Vec<_>>();
                let json = serde_json::Value::Array(
                    users
                        .iter()
                        .map(|u| {
                            serde_json::json!({"id": u.id, "username": u.username, "display_name": u.display_name,
                                "duties": u.duties, "second_factor_enrolled": u.totp_enabled})
                        })
                        .collect(),
                );
                output::print(
                    format,
                    &["id", "username", "display name", "duties", "TOTP"],
                    &rows,
                    json,
                );
            }
            UserCommand::Duties { user, duties } => {
                let u = hub.set_duties(&ctx, UserId(user), &duties).await?;
                println!(
                    "user {} now holds: {}",
                    u.username,
                    u.duties
                        .iter()
                        .map(|d| d.to_string())
                        .collect::<Vec<_>>()
                        .join(", ")
                );
            }
            UserCommand::ResetTotp { user } => {
                hub.reset_second_factor(&ctx, UserId(user)).await?;
                println!("second factor of user {user} removed; their sessions are ended");
            }
            UserCommand::Unlock { user } => {
                hub.unlock_user(&ctx, UserId(user)).await?;
                println!("user {user} unlocked");
            }
            UserCommand::SetPassword { user } => {
                let password = read_password()?;
                hub.set_password(&ctx, UserId(user), &password).await?;
                println!("password of user {user} changed");
            }
        },
        AdminCommand::Node {
            command:
                AdminNodeCommand::Token {
                    institution,
                    name,
                    valid_hours,
                },
        } => {
            let (token, expires_at) = hub
                .issue_enrolment_token(&ctx, InstitutionId(institution), &name, Some(valid_hours))
                .await?;
            println!("{token}");
            eprintln!("enrolment token for node {name}, valid until {expires_at}; it works once");
        }
        AdminCommand::Node {
            command:
                AdminNodeCommand::Route {
                    name,
                    url,
                    kind,
                    code,
                },
        } => {
            hub.register_node(&ctx, &name, &url, &kind, &code).await?;
            println!("node {name} answers at {url} ({kind}, code {code})");
        }
        AdminCommand::Token { command } => match command {
            TokenCommand::Issue {
                user,
                name,
                valid_days,
            } => {
                let owner = civic_store::UserStore::user(&hub.store, UserId(user))
                    .await?
                    .ok_or_else(|| anyhow!("user {user} was not found"))?;
                let issued = hub
                    .issue_api_token(&ctx, owner.institution, UserId(user), &name, valid_days)
                    .await?;
                println!("{}", issued.secret);
                eprintln!(
                    "API token {} issued; the secret above is shown only once",
                    issued.token.id
                );
            }
            TokenCommand::List { institution } => {
                let tokens = hub
                    .list_api_tokens(&ctx, InstitutionId(institution))
                    .await?;
                let rows = tokens
                    .iter()
                    .map(|t| {
                        vec![
                            t.id.to_string(),
                            t.user.to_string(),
                            t.name.clone(),
                            t.revoked.to_string(),
                        ]
                    })
                    .collect::<Vec<_>>();
                output::print(
                    format,
                    &["id", "user", "name", "revoked"],
                    &rows,
                    serde_json::to_value(&tokens)?,
                );
            }
            TokenCommand::Revoke { id } => {
                hub.revoke_api_token(&ctx, ApiTokenId(id)).await?;
                println!("API token {id} revoked");
            }
        },
        AdminCommand::CityTenant { command } => city_tenant(hub, format, &ctx, command).await?,
    }
    Ok(())
}

async fn city_tenant(
    hub: &Hub,
    format: Format,
    ctx: &Ctx,
    command: CityTenantCommand,
) -> Result<()> {
    use civic_citydata::tenancy::{Access, TenantSettings};
    let city = civic_citydata::CityData::new(hub.clone());
    match command {
        CityTenantCommand::Set {
            name,
            institution,
            access,
            public_writes,
            public_registrations,
            readers,
            writers,
        } => {
            let access = match access.as_str() {
                "open" => Access::Open,
                "closed" => Access::Closed,
                other => return Err(anyhow!("--access is open or closed, not {other:?}")),
            };
            let settings = TenantSettings {
                name,
                institution: InstitutionId(institution),
                access,
                public_writes,
                public_registrations,
                readers: readers.into_iter().map(InstitutionId).collect(),
                writers: writers.into_iter().map(InstitutionId).collect(),
            };
            let (set, created) = city.set_tenant(ctx, settings).await?;
            let verb = if created { "set up" } else { "changed" };
            println!(
                "city data tenant {:?} {verb}: {} (institution {}); a running hub applies it within 5 s",
                set.name,
                if set.access == Access::Open { "open" } else { "closed" },
                set.institution.0
            );
        }
        CityTenantCommand::List => {
            let list = city.tenants(ctx).await?;
            let ids = |v: &[InstitutionId]| {
                v.iter()
                    .map(|i| i.0.to_string())
                    .collect::<Vec<_>>()
                    .join(" ")
            };
            let rows = list
                .iter()
                .map(|t| {
                    vec![
                        format!("{:?}", t.name),
                        t.institution.0.to_string(),
                        serde_json::to_value(t.access)
                            .ok()
                            .and_then(|v| v.as_str().map(str::to_owned))
                            .unwrap_or_default(),
                        t.public_writes.to_string(),
                        t.public_registrations.to_string(),
                        ids(&t.readers),
                        ids(&t.writers),
                    ]
                })
                .collect::<Vec<_>>();
            output::print(
                format,
                &[
                    "name",
                    "institution",
                    "access",
                    "public writes",
                    "public registrations",
                    "readers",
                    "writers",
                ],
                &rows,
                serde_json::to_value(&list)?,
            );
        }
    }
    Ok(())
}
