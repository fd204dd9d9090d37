//! The bundle's config.json: loading and validating it (treated as hostile input), the default
//! spec `moor spec` writes, the features this build supports, and the parsers for values the
//! spec carries as strings (cpu lists, mount options).

pub mod config;
pub(crate) mod cpulist;
mod default;
mod features;
pub(crate) mod mount_options;

pub use default::default_spec;
pub use features::features;

#[cfg(test)]
mod tests;
