//! Integration tests: the real `labrun` binary against real servers on 127.0.0.1.
//!
//! One test binary (modules below) so it links once. Every test bounds its own run time and
//! checks that no process it caused to exist outlives it.

mod architecture;
mod backlog;
mod broadcast;
mod chat;
mod check;
mod cli;
mod clients;
mod compare;
mod concurrency;
mod detection;
mod events;
mod examples;
mod formats;
mod grade;
mod hostile;
mod kubernetes;
mod load;
mod paths;
mod ports;
mod rogues;
mod runs;
mod sandbox;
mod schema;
mod shards;
mod targets;
mod teardown;
mod thresholds;
mod udp;
mod util;
