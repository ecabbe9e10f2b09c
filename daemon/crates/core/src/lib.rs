//! The bottom layer of wuye: what every other part of the daemon speaks, and nothing that needs
//! a database, a network or a plugin.
//!
//! - [`domain`]: the service desk's data as typed values (households, owners, bills in fen,
//!   tickets, surveys, events) and the rules about them that need no store.
//! - [`clock`]: the one injectable source of time.
//! - [`blocking`]: where blocking work (a plugin run, a commit) runs, and what a panic in it
//!   becomes.
//! - [`message`]: the words of an outbox message (category, channel, status) that the
//!   configuration, the store and delivery all speak.
//! - [`exit`]: sysexits codes carried by errors, so the CLI exits with the right one.
//! - [`privacy`]: masks for owner contacts in logs and output; private files and folders.
//!
//! It sits below the schedule, the store and everything built on them, so types shared by
//! several layers live here and dependencies point one way.

pub mod blocking;
pub mod clock;
pub mod domain;
pub mod exit;
pub mod message;
pub mod privacy;
