//! Built-in operators.

pub mod filter_project;
