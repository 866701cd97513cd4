//! `cairn token create|list|revoke`: manages the token file the servers read
//! (`--auth-tokens`). A created token is printed once, on stdout; the file keeps only its
//! argon2id hash. A revoked token stays in the file, marked with when it was revoked; running
//! servers notice the change within seconds (they also re-read the file on SIGHUP).

use std::path::PathBuf;
use std::time::Duration;

use cairn_auth::file::{Entry, TokenFile};
use cairn_auth::{Role, Token};
use cairn_schema::tenant::Tenant;
use chrono::{DateTime, Utc};
use clap::{Args, Subcommand};

#[derive(Debug, Args, Clone)]
pub struct TokenArgs {
    #[command(subcommand)]
    pub action: TokenAction,
}

#[derive(Debug, Subcommand, Clone)]
pub enum TokenAction {
    /// Create a token and print it (once: only its hash is kept).
    Create(CreateArgs),
    /// List the tokens: id, tenant, role, name, created, expires, revoked.
    List(FileArgs),
    /// Revoke a token: it stays listed, marked revoked, and stops working.
    Revoke(RevokeArgs),
}

#[derive(Debug, Args, Clone)]
pub struct FileArgs {
    /// The token file (created by the first `cairn token create`).
    #[arg(long, env = "CAIRN_AUTH_TOKENS")]
    pub auth_tokens: PathBuf,
}

#[derive(Debug, Args, Clone)]
pub struct CreateArgs {
    #[command(flatten)]
    pub file: FileArgs,
    /// The tenant the token reads or writes (an admin token's default tenant; `default` when
    /// not given).
    #[arg(long, value_parser = parse_tenant)]
    pub tenant: Option<Tenant>,
    /// What the token may do.
    #[arg(long, value_enum)]
    pub role: Role,
    /// How long the token is valid, e.g. `30d` (forever when not given).
    #[arg(long, value_parser = cairn_config::parse::span)]
    pub expires: Option<Duration>,
    /// A label to tell tokens apart in `cairn token list`.
    #[arg(long)]
    pub name: Option<String>,
}

#[derive(Debug, Args, Clone)]
pub struct RevokeArgs {
    #[command(flatten)]
    pub file: FileArgs,
    /// The id of the token (the 16 hex digits after `cairn_`, as `cairn token list` shows).
    pub id: String,
}

fn parse_tenant(text: &str) -> Result<Tenant, String> {
    Tenant::new(text).map_err(|e| e.to_string())
}

/// Runs one `cairn token` action, printing to stdout.
pub fn run(args: TokenArgs) -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
    match args.action {
        TokenAction::Create(args) => create(args),
        TokenAction::List(args) => {
            print!("{}", list(&TokenFile::load(&args.auth_tokens)?));
            Ok(())
        }
        TokenAction::Revoke(args) => revoke(args),
    }
}

fn create(args: CreateArgs) -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
    let tenant = match (args.tenant, args.role) {
        (Some(tenant), _) => tenant,
        (None, Role::Admin) => Tenant::new(cairn_schema::tenant::DEFAULT_TENANT)?,
        (None, role) => return Err(format!("a {role} token needs --tenant").into()),
    };
    let path = &args.file.auth_tokens;
    let token = Token::generate();
    let created = Utc::now();
    let expires = args
        .expires
        .map(|d| chrono::Duration::from_std(d).map(|d| created + d))
        .transpose()
        .map_err(|e| format!("--expires: {e}"))?;
    let entry = Entry {
        id: token.id().to_owned(),
        tenant: tenant.clone(),
        role: args.role,
        name: args.name,
        created,
        expires,
        revoked: None,
        hash: token.hash()?,
    };
    // Read, changed and written under the lock, so that edits at the same time all count.
    let _lock = TokenFile::lock(path)?;
    let mut file = TokenFile::load_or_empty(path)?;
    file.tokens.push(entry);
    file.save(path)?;
    eprintln!(
        "created token {} ({} of tenant {tenant}{}) in {}; it is shown once:",
        token.id(),
        args.role,
        expires.map_or(String::new(), |at| format!(", expires {}", time(at))),
        path.display()
    );
    println!("{}", token.reveal());
    Ok(())
}

fn revoke(args: RevokeArgs) -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
    let path = &args.file.auth_tokens;
    let _lock = TokenFile::lock(path)?;
    let mut file = TokenFile::load(path)?;
    let entry = file
        .tokens
        .iter_mut()
        .find(|e| e.id == args.id)
        .ok_or_else(|| format!("no token {:?} in {}", args.id, path.display()))?;
    if let Some(at) = entry.revoked {
        println!("token {} was already revoked at {}", args.id, time(at));
        return Ok(());
    }
    let now = Utc::now();
    entry.revoked = Some(now);
    file.save(path)?;
    println!("revoked token {} at {}", args.id, time(now));
    Ok(())
}

fn time(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
}

/// The tokens as a table (never their hashes).
fn list(file: &TokenFile) -> String {
    let rows: Vec<[String; 7]> = file
        .tokens
        .iter()
        .map(|e| {
            [
                e.id.clone(),
                e.tenant.to_string(),
                e.role.to_string(),
                e.name.clone().unwrap_or_default(),
                time(e.created),
                e.expires.map(time).unwrap_or_default(),
                e.revoked.map(time).unwrap_or_default(),
            ]
        })
        .collect();
    let head = [
        "id", "tenant", "role", "name", "created", "expires", "revoked",
    ];
    let mut widths = head.map(str::len);
    for row in &rows {
        for (w, cell) in widths.iter_mut().zip(row) {
            *w = (*w).max(cell.chars().count());
        }
    }
    let line = |cells: Vec<&str>| {
        let text: Vec<String> = cells
            .iter()
            .zip(widths)
            .map(|(c, w)| format!("{c:<w$}"))
            .collect();
        format!("{}\n", text.join("  ").trim_end())
    };
    let mut out = line(head.to_vec());
    for row in &rows {
        out.push_str(&line(row.iter().map(String::as_str).collect()));
    }
    out
}
