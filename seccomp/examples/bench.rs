//! `cargo run -p moor-seccomp --release --example bench`
//!
//! Compile time of the Docker-style default profile (tests/data/docker-default.json) and the
//! number of BPF instructions the filter executes per allowed syscall (via the interpreter).

use std::time::{Duration, Instant};

use moor_seccomp::arch::Arch;
use moor_seccomp::interp::{self, SeccompData};

fn percentile(sorted: &[usize], p: usize) -> usize {
    sorted[(sorted.len() - 1) * p / 100]
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let text = include_str!("../tests/data/docker-default.json");
    let profile: oci_spec::runtime::LinuxSeccomp = serde_json::from_str(text)?;

    let t = Instant::now();
    let first = moor_seccomp::compile(&profile)?;
    let first_time = t.elapsed();

    let runs = 1000;
    let mut times: Vec<Duration> = Vec::with_capacity(runs);
    for _ in 0..runs {
        let t = Instant::now();
        let c = moor_seccomp::compile(&profile)?;
        times.push(t.elapsed());
        std::hint::black_box(c);
    }
    times.sort();

    let allowed: Vec<String> = profile
        .syscalls()
        .as_ref()
        .map_or_else(Vec::new, |s| s[0].names().clone());
    let mut counts = Vec::new();
    for arch in [Arch::X86_64, Arch::X86, Arch::X32] {
        let mut per_arch = Vec::new();
        for name in &allowed {
            let Some(nr) = arch.syscall_nr(name) else {
                continue;
            };
            let d = SeccompData {
                nr,
                arch: arch.audit_arch(),
                ip: 0,
                args: [0; 6],
            };
            let out = interp::run(first.instructions(), &d)?;
            per_arch.push(out.executed);
        }
        per_arch.sort_unstable();
        println!(
            "{:>7}: {} allowed syscalls, BPF instructions executed min/median/max = {}/{}/{}",
            arch.name(),
            per_arch.len(),
            per_arch[0],
            percentile(&per_arch, 50),
            per_arch[per_arch.len() - 1]
        );
        counts.extend(per_arch);
    }
    counts.sort_unstable();

    println!(
        "profile: {} syscall names, program {} instructions, {} warnings",
        allowed.len(),
        first.instructions().len(),
        first.warnings().len()
    );
    println!(
        "compile: first {:?} (builds the syscall tables), then over {runs} runs min {:?} median {:?} p99 {:?} max {:?}",
        first_time,
        times[0],
        times[runs / 2],
        times[runs * 99 / 100],
        times[runs - 1]
    );
    println!(
        "all ABIs: {} allowed (ABI, syscall) pairs, instructions executed min/median/max = {}/{}/{}",
        counts.len(),
        counts[0],
        percentile(&counts, 50),
        counts[counts.len() - 1]
    );
    Ok(())
}
