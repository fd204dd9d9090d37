//! Back end: emits classic BPF for a [`Plan`].
//!
//! Layout: load `arch`, one `jeq` per audit arch (native first), bad-arch `ret`; then per audit
//! arch a binary search over `nr`. The number space `[0, 2^32)` of an audit arch is cut into
//! maximal runs of numbers that behave alike (x86_64 and x32 share `AUDIT_ARCH_X86_64` and split
//! it at `0x40000000`), so a dense allowlist is a handful of `jge` deep. Syscalls with argument
//! rules get a block that compares 64-bit arguments as two 32-bit halves.
//!
//! The program is emitted back to front: every jump target already exists when a jump is
//! emitted, so offsets are known exactly. A conditional jump (8-bit offsets) whose target is too
//! far goes through a `ja` (32-bit offset) placed right after it; a `ja` to a `ret` is replaced by
//! a copy of that `ret`.

use std::collections::HashMap;

use crate::arch::{Arch, AUDIT_ARCH_X86_64};
use crate::compile::{Cond, CondRule, Decision, Op, Plan, RET_ENOSYS};

// Classic BPF opcodes (linux/filter.h, linux/bpf_common.h).
pub(crate) const BPF_LD: u16 = 0x00;
pub(crate) const BPF_ALU: u16 = 0x04;
pub(crate) const BPF_JMP: u16 = 0x05;
pub(crate) const BPF_RET: u16 = 0x06;
pub(crate) const BPF_W: u16 = 0x00;
pub(crate) const BPF_ABS: u16 = 0x20;
pub(crate) const BPF_AND: u16 = 0x50;
pub(crate) const BPF_JA: u16 = 0x00;
pub(crate) const BPF_JEQ: u16 = 0x10;
pub(crate) const BPF_JGT: u16 = 0x20;
pub(crate) const BPF_JGE: u16 = 0x30;
pub(crate) const BPF_K: u16 = 0x00;

/// `offsetof(struct seccomp_data, nr)`.
pub const OFF_NR: u32 = 0;
/// `offsetof(struct seccomp_data, arch)`.
pub const OFF_ARCH: u32 = 4;

/// Offsets of the low and high 32-bit halves of `args[i]` in `seccomp_data`.
pub fn arg_offsets(i: u8) -> (u32, u32) {
    let base = 16 + 8 * u32::from(i);
    if cfg!(target_endian = "little") {
        (base, base + 4)
    } else {
        (base + 4, base)
    }
}

const MAX_JUMP: usize = 255;
/// Reuse an existing `ret` only while it is this close, to keep conditional jumps short.
const RET_REUSE: usize = 200;

/// Position of an instruction counted from the end of the program (the last one is 0).
type Label = usize;

struct Emitter {
    /// Instructions in reverse order.
    rev: Vec<libc::sock_filter>,
    /// Latest `ret` emitted per return value.
    rets: HashMap<u32, Label>,
}

fn insn(code: u16, jt: u8, jf: u8, k: u32) -> libc::sock_filter {
    libc::sock_filter { code, jt, jf, k }
}

impl Emitter {
    fn new() -> Self {
        Emitter {
            rev: Vec::with_capacity(1024),
            rets: HashMap::new(),
        }
    }

    /// Offset from an instruction pushed now to `target`.
    fn dist(&self, target: Label) -> usize {
        self.rev.len() - 1 - target
    }

    fn push(&mut self, i: libc::sock_filter) -> Label {
        self.rev.push(i);
        self.rev.len() - 1
    }

    fn ret(&mut self, value: u32) -> Label {
        if let Some(&l) = self.rets.get(&value) {
            if self.rev.len() - l <= RET_REUSE {
                return l;
            }
        }
        let l = self.push(insn(BPF_RET | BPF_K, 0, 0, value));
        self.rets.insert(value, l);
        l
    }

    fn ja(&mut self, target: Label) -> Label {
        let t = self.rev[target];
        if t.code == BPF_RET | BPF_K {
            return self.push(t);
        }
        let k = self.rev.len() - 1 - target;
        // A program is at most a few thousand instructions, so k always fits.
        #[allow(clippy::cast_possible_truncation)]
        let k = k as u32;
        self.push(insn(BPF_JMP | BPF_JA, 0, 0, k))
    }

    fn load(&mut self, offset: u32) -> Label {
        self.push(insn(BPF_LD | BPF_W | BPF_ABS, 0, 0, offset))
    }

    fn and(&mut self, k: u32) -> Label {
        self.push(insn(BPF_ALU | BPF_AND | BPF_K, 0, 0, k))
    }

    /// `if A <op> k goto t else goto f`.
    fn jump(&mut self, op: u16, k: u32, mut t: Label, mut f: Label) -> Label {
        if self.dist(f) > MAX_JUMP {
            f = self.ja(f);
        }
        if self.dist(t) > MAX_JUMP {
            t = self.ja(t);
        }
        if self.dist(f) > MAX_JUMP {
            f = self.ja(f);
        }
        // Both distances are at most MAX_JUMP now.
        #[allow(clippy::cast_possible_truncation)]
        let (jt, jf) = (self.dist(t) as u8, self.dist(f) as u8);
        self.push(insn(BPF_JMP | op | BPF_K, jt, jf, k))
    }

    /// Code testing one 64-bit condition: jumps to `t` if it holds, else to `f`.
    fn cond(&mut self, c: &Cond, t: Label, f: Label) -> Label {
        let (lo_off, hi_off) = arg_offsets(c.index);
        let (v_hi, v_lo) = halves(c.value);
        match c.op {
            Op::Eq | Op::Ne => {
                let (yes, no) = if c.op == Op::Eq { (t, f) } else { (f, t) };
                let lo = self.jump(BPF_JEQ, v_lo, yes, no);
                let lo = self.load_before(lo_off, lo);
                let hi = self.jump(BPF_JEQ, v_hi, lo, no);
                self.load_before(hi_off, hi)
            }
            Op::Gt | Op::Ge | Op::Lt | Op::Le => {
                // hi > v_hi decides "greater", hi < v_hi decides "less", equal halves defer to lo.
                let (greater, less) = match c.op {
                    Op::Gt | Op::Ge => (t, f),
                    _ => (f, t),
                };
                let lo = match c.op {
                    Op::Gt => self.jump(BPF_JGT, v_lo, t, f),
                    Op::Ge => self.jump(BPF_JGE, v_lo, t, f),
                    Op::Lt => self.jump(BPF_JGE, v_lo, f, t),
                    _ => self.jump(BPF_JGT, v_lo, f, t),
                };
                let lo = self.load_before(lo_off, lo);
                let eq = self.jump(BPF_JEQ, v_hi, lo, less);
                let gt = self.jump(BPF_JGT, v_hi, greater, eq);
                self.load_before(hi_off, gt)
            }
            Op::MaskedEq => {
                let (m_hi, m_lo) = halves(c.value);
                let (w_hi, w_lo) = halves(c.value_two);
                // A zero mask half makes that half's test constant: decide it now.
                let lo = if m_lo == 0 {
                    if w_lo == 0 {
                        t
                    } else {
                        f
                    }
                } else {
                    self.jump(BPF_JEQ, w_lo, t, f);
                    self.and(m_lo);
                    self.load(lo_off)
                };
                if m_hi == 0 {
                    return if w_hi == 0 { lo } else { f };
                }
                self.jump(BPF_JEQ, w_hi, lo, f);
                self.and(m_hi);
                self.load(hi_off)
            }
        }
    }

    /// Emits a load that falls through into `next` (which must be the last emitted instruction).
    fn load_before(&mut self, offset: u32, next: Label) -> Label {
        debug_assert_eq!(next + 1, self.rev.len());
        self.load(offset)
    }

    /// First matching rule wins, else `default`.
    fn rules(&mut self, rules: &[CondRule], default: u32) -> Label {
        let mut next = self.ret(default);
        for rule in rules.iter().rev() {
            let mut succ = self.ret(rule.action);
            for c in rule.conds.iter().rev() {
                succ = self.cond(c, succ, next);
            }
            next = succ;
        }
        next
    }

    fn decision(&mut self, d: &Decision, default: u32) -> Label {
        match d {
            Decision::Action(a) => self.ret(*a),
            Decision::Rules(r) => self.rules(r, default),
        }
    }

    /// Binary search over `segs` (sorted by start, covering the number space); the accumulator
    /// holds `nr`. The right half is emitted first so the left half directly follows the `jge`.
    fn tree(&mut self, segs: &[(u64, Decision)], default: u32) -> Label {
        if segs.len() == 1 {
            return self.decision(&segs[0].1, default);
        }
        let mid = segs.len() / 2;
        let right = self.tree(&segs[mid..], default);
        let left = self.tree(&segs[..mid], default);
        // Starts other than the first are in 1..2^32, so they fit in u32.
        #[allow(clippy::cast_possible_truncation)]
        let start = segs[mid].0 as u32;
        self.jump(BPF_JGE, start, right, left)
    }
}

/// Cuts `[lo, hi)` into runs for one ABI, appended to `out`.
fn segments(plan: &Plan, arch: Option<Arch>, lo: u64, hi: u64, out: &mut Vec<(u64, Decision)>) {
    fn push(out: &mut Vec<(u64, Decision)>, start: u64, d: Decision) {
        if out.last().map(|(_, last)| *last == d) != Some(true) {
            out.push((start, d));
        }
    }
    let Some(ap) = arch.and_then(|a| plan.arches.iter().find(|p| p.arch == a)) else {
        push(out, lo, Decision::Action(plan.bad_arch));
        return;
    };
    // Numbers from `enosys_from` on return ENOSYS when they are not named.
    let enosys_from = ap.enosys_above.map_or(hi, |m| u64::from(m) + 1);
    let gap = |out: &mut Vec<(u64, Decision)>, from: u64, to: u64| {
        if from < to.min(enosys_from) {
            push(out, from, Decision::Action(plan.default));
        }
        let e = from.max(enosys_from);
        if e < to {
            push(out, e, Decision::Action(RET_ENOSYS));
        }
    };
    let mut cur = lo;
    // Ranges start below 2^32 (Arch::nr_range).
    #[allow(clippy::cast_possible_truncation)]
    let first = lo as u32;
    for (&nr, d) in ap.syscalls.range(first..) {
        let nr = u64::from(nr);
        if nr >= hi {
            break;
        }
        gap(out, cur, nr);
        push(out, nr, d.clone());
        cur = nr + 1;
    }
    gap(out, cur, hi);
}

/// Emits the whole program, in execution order.
pub fn generate(plan: &Plan) -> Vec<libc::sock_filter> {
    // Group ABIs by audit arch, in the plan's order (native first).
    let mut audits: Vec<u32> = Vec::new();
    for ap in &plan.arches {
        let a = ap.arch.audit_arch();
        if !audits.contains(&a) {
            audits.push(a);
        }
    }
    let mut e = Emitter::new();
    let mut entries: Vec<(u32, Label)> = Vec::with_capacity(audits.len());
    for &audit in audits.iter().rev() {
        let mut segs = Vec::new();
        if audit == AUDIT_ARCH_X86_64 {
            let has = |a: Arch| plan.arches.iter().any(|p| p.arch == a);
            let x32 = 1u64 << 30;
            segments(plan, has(Arch::X86_64).then_some(Arch::X86_64), 0, x32, &mut segs);
            segments(plan, has(Arch::X32).then_some(Arch::X32), x32, 1 << 32, &mut segs);
        } else {
            let arch = plan
                .arches
                .iter()
                .find(|p| p.arch.audit_arch() == audit)
                .map(|p| p.arch);
            segments(plan, arch, 0, 1 << 32, &mut segs);
        }
        let body = e.tree(&segs, plan.default);
        let body = if body + 1 == e.rev.len() {
            body
        } else {
            // The tree's entry is a shared `ret` (every number behaves alike).
            e.ja(body)
        };
        let entry = e.load_before(OFF_NR, body);
        entries.push((audit, entry));
    }
    let mut next = e.ret(plan.bad_arch);
    // `entries` is in reverse audit order, so the native arch is tested first.
    for (audit, entry) in entries {
        next = e.jump(BPF_JEQ, audit, entry, next);
    }
    e.load_before(OFF_ARCH, next);
    e.rev.reverse();
    e.rev
}

/// A 64-bit argument value as the (high, low) 32-bit words classic BPF compares one at a time.
fn halves(v: u64) -> (u32, u32) {
    let [a, b, c, d, e, f, g, h] = v.to_be_bytes();
    (u32::from_be_bytes([a, b, c, d]), u32::from_be_bytes([e, f, g, h]))
}
