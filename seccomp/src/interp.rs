//! A small classic-BPF interpreter for seccomp programs, for tests, benchmarks and debugging
//! (`what would this filter return for that syscall?`). It accepts the instruction subset the
//! kernel allows in seccomp filters, checks programs like the kernel's loader does, and counts
//! executed instructions.

use crate::bpf::{
    BPF_ABS, BPF_ALU, BPF_AND, BPF_JA, BPF_JEQ, BPF_JGE, BPF_JGT, BPF_JMP, BPF_K, BPF_LD, BPF_RET, BPF_W,
};

const BPF_JSET: u16 = 0x40;
const BPF_OR: u16 = 0x40;
const BPF_RSH: u16 = 0x70;
const BPF_LSH: u16 = 0x60;
const BPF_IMM: u16 = 0x00;
const SECCOMP_DATA_LEN: u32 = 64;

/// Input of a filter run: what the kernel passes as `struct seccomp_data`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct SeccompData {
    /// Syscall number (x32 calls carry `0x40000000`).
    pub nr: u32,
    /// `AUDIT_ARCH_*`.
    pub arch: u32,
    /// Instruction pointer.
    pub ip: u64,
    /// The six arguments.
    pub args: [u64; 6],
}

impl SeccompData {
    /// Native-endian bytes, laid out like `struct seccomp_data`.
    pub fn to_bytes(&self) -> [u8; 64] {
        let mut b = [0u8; 64];
        b[0..4].copy_from_slice(&self.nr.to_ne_bytes());
        b[4..8].copy_from_slice(&self.arch.to_ne_bytes());
        b[8..16].copy_from_slice(&self.ip.to_ne_bytes());
        for (i, a) in self.args.iter().enumerate() {
            b[16 + 8 * i..24 + 8 * i].copy_from_slice(&a.to_ne_bytes());
        }
        b
    }
}

/// Result of a run.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Outcome {
    /// The filter's return value (`SECCOMP_RET_*`).
    pub ret: u32,
    /// Instructions executed, including the final `ret`.
    pub executed: usize,
}

/// Checks a program as the kernel's classic-BPF/seccomp loader would: length 1..=4096, known
/// opcodes only, aligned in-bounds loads from `seccomp_data`, jumps inside the program, last
/// instruction a `ret`.
pub fn validate(prog: &[libc::sock_filter]) -> Result<(), String> {
    if prog.is_empty() || prog.len() > 4096 {
        return Err(format!("program length {} not in 1..=4096", prog.len()));
    }
    for (pc, i) in prog.iter().enumerate() {
        let rest = prog.len() - pc - 1;
        match i.code {
            c if c == BPF_LD | BPF_W | BPF_ABS => {
                if i.k % 4 != 0 || i.k >= SECCOMP_DATA_LEN {
                    return Err(format!("pc {pc}: bad load offset {}", i.k));
                }
            }
            c if c == BPF_LD | BPF_IMM => {}
            c if c == BPF_ALU | BPF_AND | BPF_K
                || c == BPF_ALU | BPF_OR | BPF_K
                || c == BPF_ALU | BPF_RSH | BPF_K
                || c == BPF_ALU | BPF_LSH | BPF_K => {}
            c if c == BPF_JMP | BPF_JA => {
                if i.k as usize >= rest {
                    return Err(format!("pc {pc}: ja {} out of program", i.k));
                }
            }
            c if c == BPF_JMP | BPF_JEQ | BPF_K
                || c == BPF_JMP | BPF_JGT | BPF_K
                || c == BPF_JMP | BPF_JGE | BPF_K
                || c == BPF_JMP | BPF_JSET | BPF_K =>
            {
                if usize::from(i.jt) >= rest || usize::from(i.jf) >= rest {
                    return Err(format!("pc {pc}: jump ({}, {}) out of program", i.jt, i.jf));
                }
            }
            c if c == BPF_RET | BPF_K => {}
            c => return Err(format!("pc {pc}: unsupported opcode {c:#06x}")),
        }
    }
    match prog.last() {
        Some(l) if l.code == BPF_RET | BPF_K => Ok(()),
        _ => Err("last instruction is not ret".to_string()),
    }
}

/// Runs `prog` on `data`. Call [`validate`] first for kernel-like checks; this only guards
/// against running off the program.
pub fn run(prog: &[libc::sock_filter], data: &SeccompData) -> Result<Outcome, String> {
    let bytes = data.to_bytes();
    let mut a: u32 = 0;
    let mut pc = 0usize;
    let mut executed = 0usize;
    loop {
        let i = prog.get(pc).ok_or_else(|| format!("pc {pc} out of program"))?;
        executed += 1;
        pc += 1;
        let cond = |taken: bool| usize::from(if taken { i.jt } else { i.jf });
        match i.code {
            c if c == BPF_LD | BPF_W | BPF_ABS => {
                let k = i.k as usize;
                let w = bytes
                    .get(k..k + 4)
                    .ok_or_else(|| format!("pc {}: load offset {k}", pc - 1))?;
                a = u32::from_ne_bytes([w[0], w[1], w[2], w[3]]);
            }
            c if c == BPF_LD | BPF_IMM => a = i.k,
            c if c == BPF_ALU | BPF_AND | BPF_K => a &= i.k,
            c if c == BPF_ALU | BPF_OR | BPF_K => a |= i.k,
            c if c == BPF_ALU | BPF_RSH | BPF_K => a = a.checked_shr(i.k).unwrap_or(0),
            c if c == BPF_ALU | BPF_LSH | BPF_K => a = a.checked_shl(i.k).unwrap_or(0),
            c if c == BPF_JMP | BPF_JA => pc += i.k as usize,
            c if c == BPF_JMP | BPF_JEQ | BPF_K => pc += cond(a == i.k),
            c if c == BPF_JMP | BPF_JGT | BPF_K => pc += cond(a > i.k),
            c if c == BPF_JMP | BPF_JGE | BPF_K => pc += cond(a >= i.k),
            c if c == BPF_JMP | BPF_JSET | BPF_K => pc += cond(a & i.k != 0),
            c if c == BPF_RET | BPF_K => return Ok(Outcome { ret: i.k, executed }),
            c => return Err(format!("pc {}: unsupported opcode {c:#06x}", pc - 1)),
        }
    }
}
