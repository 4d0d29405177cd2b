//! The `runnel` command line, and (not built yet) the Flight SQL service.
//!
//! The entry point today is [`cli::main`]: `runnel run FILE.sql` runs a SQL
//! script with the SQL front end and the built-in connectors, and
//! `runnel explain FILE.sql` prints plans. The Flight SQL server, sessions,
//! authentication and the job manager (`runnel serve`) are not built yet.

pub mod cli;
