//! `cairn-config`: how every setting of Cairn is read, whatever crate it belongs to.
//!
//! Each crate declares its settings once, as a typed block deriving clap's `Args`: the field is
//! the setting (its name is the config file key, `--flag` and `CAIRN_FLAG` follow from it), the
//! `default_value` is its only default, and a value parser of [`parse`] reads it. The binary
//! flattens the blocks into its commands. Data flow at start-up:
//!
//! 1. [`FileLayer::load`] reads the optional TOML file named by `--config` / `CAIRN_CONFIG`
//!    ([`config_path`]) and refuses keys no setting has;
//! 2. [`FileLayer::apply`] checks each file value with the setting's own value parser and makes
//!    it that setting's default, so clap then takes a flag first, else the environment variable,
//!    else the file, else the built-in default;
//! 3. [`effective`] lists the value and origin of every setting (`cairn config`).
//!
//! [`defaults`] builds a block from its built-in defaults alone (no environment, no file): a
//! crate's `Default` is that, so there is no second copy of a default to drift.

mod effective;
mod error;
mod file;
pub mod parse;
pub mod tenant_limits;

pub use effective::{effective, Origin, Setting};
pub use error::ConfigError;
pub use file::{config_path, FileLayer};

use clap::{Args, Command, FromArgMatches};

/// `T` with every setting at its built-in default, ignoring the environment.
///
/// Panics only if a built-in default does not parse, which every block's tests rule out.
pub fn defaults<T: Args + FromArgMatches>() -> T {
    let command = T::augment_args(Command::new("defaults")).mut_args(|arg| arg.env(None));
    let matches = command
        .try_get_matches_from(["defaults"])
        .expect("built-in defaults parse");
    T::from_arg_matches(&matches).expect("built-in defaults parse")
}
