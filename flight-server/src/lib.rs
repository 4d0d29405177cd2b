//! Runnel's Flight SQL service and job manager (not built yet).
//!
//! This crate will host the Flight SQL server, sessions, authentication and
//! the job manager behind the `runnel` binary. Today the binary only points
//! users at the engine demo.
