//! The bodies of labrun's commands, each taking its parsed arguments and returning the
//! outcome: `lib.rs` only dispatches. They sit on top of the stages and change nothing in
//! them; output for the terminal goes to stdout here, files through `report::writer`.

pub(crate) mod catalog;
pub(crate) mod check;
pub(crate) mod grade;
pub(crate) mod reports;
pub(crate) mod scenarios;
