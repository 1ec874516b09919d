//! `rackboot db migrate|check`: the shared PostgreSQL lease store's schema,
//! and reaching the store for `check` and `leases`.

use clap::Subcommand;

use super::Common;
use rackboot::config::Config;

#[derive(Debug, clap::Args)]
pub(crate) struct Args {
    #[command(subcommand)]
    pub(crate) action: Action,
}

#[derive(Debug, Subcommand)]
pub(crate) enum Action {
    /// Create the schema, or bring it to this rackboot's version (one
    /// transaction; safe to run on every server).
    Migrate(Common),
    /// Reach the database and check its schema version.
    Check(Common),
}

impl Args {
    pub(super) fn common(&self) -> &Common {
        match &self.action {
            Action::Migrate(c) | Action::Check(c) => c,
        }
    }
}

/// The configured PostgreSQL lease store, connected; where it is, for
/// messages (no password).
pub(super) fn lease_store(
    config: &Config,
) -> Result<(postgres::Client, String, String), Box<dyn std::error::Error>> {
    let Some(st) = config.shared_store() else {
        return Err("no PostgreSQL lease store is configured: set [store] backend = \"postgres\" and store.url (and pass --config)".into());
    };
    let c = rackboot::lease::pg::connect(&st.url, st.password_file.as_deref())?;
    Ok((c, store_place(&st.url), st.name.clone()))
}

/// `host:port/dbname` of a connection URL, without its password.
pub(super) fn store_place(url: &str) -> String {
    let Ok(c) = url.parse::<postgres::Config>() else {
        return "?".into();
    };
    let host = match c.get_hosts().first() {
        Some(postgres::config::Host::Tcp(h)) => h.clone(),
        Some(postgres::config::Host::Unix(p)) => p.display().to_string(),
        None => "localhost".into(),
    };
    let port = c.get_ports().first().copied().unwrap_or(5432);
    format!("{host}:{port}/{}", c.get_dbname().unwrap_or("-"))
}

pub(super) fn run(config: &Config, action: &Action) -> Result<(), Box<dyn std::error::Error>> {
    use rackboot::lease::pg;
    let (mut c, place, name) = lease_store(config)?;
    match action {
        Action::Migrate(_) => {
            let from = pg::migrate(&mut c)?;
            if from == pg::SCHEMA_VERSION {
                println!("store {place}: schema version {from}, current; nothing to do");
            } else {
                println!(
                    "store {place}: schema version {from} -> {}",
                    pg::SCHEMA_VERSION
                );
            }
        }
        Action::Check(_) => {
            pg::check_version(&mut c)?;
            let row = c.query_one(
                "SELECT count(*) FILTER (WHERE state = 'bound' AND expires > extract(epoch FROM now())), \
                 count(*) FILTER (WHERE state = 'declined'), count(DISTINCT server) FROM rackboot_lease4",
                &[],
            )?;
            let (active, declined, servers): (i64, i64, i64) = (row.get(0), row.get(1), row.get(2));
            let machines = rackboot::machines::shared::count(&mut c)?;
            println!(
                "store {place}: schema version {}, {active} active leases, {declined} declined addresses, written by {servers} servers, {machines} machine records; this one is {name:?}",
                pg::SCHEMA_VERSION
            );
        }
    }
    Ok(())
}
