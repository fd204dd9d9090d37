//! `inspect`: the isolation report of a container (live) or a bundle (from config), and
//! `--require` to fail on Pod Security Standard violations.

use std::path::PathBuf;

use anyhow::Result;
use clap::{Args, ValueEnum};

use moor::inspect::pss::{self, Level};
use moor::Runtime;

#[derive(Clone, Copy, ValueEnum, PartialEq)]
pub enum Format {
    Text,
    Json,
}

#[derive(Clone, Copy, ValueEnum, PartialEq)]
pub enum Require {
    Baseline,
    Restricted,
}

#[derive(Args)]
pub struct InspectArgs {
    /// The container (created, running or paused).
    #[arg(required_unless_present = "bundle", conflicts_with = "bundle")]
    id: Option<String>,
    /// Report on a bundle's config.json instead, before create.
    #[arg(short, long)]
    bundle: Option<PathBuf>,
    #[arg(short, long, value_enum, default_value = "text")]
    format: Format,
    /// Every process of the container, not only its init.
    #[arg(short, long)]
    all: bool,
    /// Exit 1 naming each violation of this Kubernetes Pod Security Standard level.
    #[arg(long, value_enum)]
    require: Option<Require>,
}

/// Prints the report; returns the exit code (1 when `--require` finds a violation).
pub fn inspect(rt: &Runtime, args: &InspectArgs) -> Result<i32> {
    let report = match (&args.bundle, &args.id) {
        (Some(bundle), _) => moor::inspect::from_bundle(bundle)?,
        (None, Some(id)) => moor::inspect::from_container(rt, id, args.all)?,
        (None, None) => anyhow::bail!("inspect needs a container id or --bundle"),
    };
    let violations = args.require.map(|r| {
        pss::evaluate(
            &report,
            match r {
                Require::Baseline => Level::Baseline,
                Require::Restricted => Level::Restricted,
            },
        )
    });
    match args.format {
        Format::Json => {
            out!("{}", moor::inspect::json(&report, violations.as_deref())?);
        }
        Format::Text => {
            let text = moor::inspect::text(&report, violations.as_deref());
            out!("{}", text.trim_end());
        }
    }
    Ok(match violations {
        Some(v) if !v.is_empty() => 1,
        _ => 0,
    })
}
