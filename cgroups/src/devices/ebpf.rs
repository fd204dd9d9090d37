//! Generates the BPF_PROG_TYPE_CGROUP_DEVICE program for a list of device rules.
//!
//! The kernel calls the program with `struct bpf_cgroup_dev_ctx { u32 access_type; u32 major;
//! u32 minor; }` where `access_type = (access << 16) | type`; returning 1 allows, 0 denies.
//! OCI semantics: the last matching rule wins, no match denies. The program therefore checks the
//! rules from last to first and returns at the first match:
//!
//! ```text
//!   r2 = ctx->access_type & 0xffff      ; type  (1 block, 2 char)
//!   r3 = ctx->access_type >> 16         ; access (1 mknod, 2 read, 4 write)
//!   r4 = ctx->major ; r5 = ctx->minor
//!   for each rule, last first:
//!     if rule.type   && r2 != type          goto next
//!     if rule.access != rwm && (r3 & access) != r3 goto next
//!     if rule.major  && r4 != major         goto next
//!     if rule.minor  && r5 != minor         goto next
//!     r0 = allow ; exit
//!   next: ...
//!   r0 = 0 ; exit
//! ```

use super::{DevType, DeviceRule, ACC_ALL};

/// One eBPF instruction, laid out like the kernel's `struct bpf_insn`.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Insn {
    pub code: u8,
    /// dst_reg in the low nibble, src_reg in the high nibble.
    pub regs: u8,
    pub off: i16,
    pub imm: i32,
}

// Instruction classes and fields (linux/bpf_common.h, linux/bpf.h).
pub const BPF_LDX: u8 = 0x01;
pub const BPF_ALU: u8 = 0x04;
pub const BPF_JMP: u8 = 0x05;
pub const BPF_ALU64: u8 = 0x07;
pub const BPF_W: u8 = 0x00;
pub const BPF_MEM: u8 = 0x60;
pub const BPF_K: u8 = 0x00;
pub const BPF_X: u8 = 0x08;
pub const BPF_AND: u8 = 0x50;
pub const BPF_RSH: u8 = 0x70;
pub const BPF_MOV: u8 = 0xb0;
pub const BPF_JNE: u8 = 0x50;
pub const BPF_EXIT: u8 = 0x90;

pub const DEVCG_DEV_BLOCK: i32 = 1;
pub const DEVCG_DEV_CHAR: i32 = 2;

const R0: u8 = 0;
const R1: u8 = 1;
const R2: u8 = 2;
const R3: u8 = 3;
const R4: u8 = 4;
const R5: u8 = 5;

fn insn(code: u8, dst: u8, src: u8, off: i16, imm: i32) -> Insn {
    Insn {
        code,
        regs: (dst & 0x0f) | (src << 4),
        off,
        imm,
    }
}

fn ldx_w(dst: u8, src: u8, off: i16) -> Insn {
    insn(BPF_LDX | BPF_MEM | BPF_W, dst, src, off, 0)
}
fn alu32_k(op: u8, dst: u8, imm: i32) -> Insn {
    insn(BPF_ALU | op | BPF_K, dst, 0, 0, imm)
}
fn mov32_x(dst: u8, src: u8) -> Insn {
    insn(BPF_ALU | BPF_MOV | BPF_X, dst, src, 0, 0)
}
fn mov64_k(dst: u8, imm: i32) -> Insn {
    insn(BPF_ALU64 | BPF_MOV | BPF_K, dst, 0, 0, imm)
}
fn jne_k(dst: u8, imm: i32, off: i16) -> Insn {
    insn(BPF_JMP | BPF_JNE | BPF_K, dst, 0, off, imm)
}
fn jne_x(dst: u8, src: u8, off: i16) -> Insn {
    insn(BPF_JMP | BPF_JNE | BPF_X, dst, src, off, 0)
}
fn exit() -> Insn {
    insn(BPF_JMP | BPF_EXIT, 0, 0, 0, 0)
}

enum Cond {
    Type(i32),
    Access(i32),
    Major(i32),
    Minor(i32),
}

fn cond_len(c: &Cond) -> usize {
    match c {
        Cond::Access(_) => 3,
        _ => 1,
    }
}

/// Builds the program. The rules are used in the given order (last match wins); callers append
/// the default allow-list themselves.
pub fn device_program(rules: &[DeviceRule]) -> Vec<Insn> {
    let mut prog = vec![
        ldx_w(R2, R1, 0),
        alu32_k(BPF_AND, R2, 0xffff),
        ldx_w(R3, R1, 0),
        alu32_k(BPF_RSH, R3, 16),
        ldx_w(R4, R1, 4),
        ldx_w(R5, R1, 8),
    ];
    let mut terminated = false;
    for r in rules.iter().rev() {
        let mut conds = Vec::new();
        match r.typ {
            Some(DevType::Block) => conds.push(Cond::Type(DEVCG_DEV_BLOCK)),
            Some(DevType::Char) => conds.push(Cond::Type(DEVCG_DEV_CHAR)),
            None => {}
        }
        if r.access != ACC_ALL {
            conds.push(Cond::Access(i32::from(r.access)));
        }
        if let Some(m) = r.major {
            conds.push(Cond::Major(imm_bits(m)));
        }
        if let Some(m) = r.minor {
            conds.push(Cond::Minor(imm_bits(m)));
        }
        // Every conditional jump lands just after this block's exit.
        let block_len: usize = conds.iter().map(cond_len).sum::<usize>() + 2;
        let mut pos = 0usize;
        for c in &conds {
            pos += cond_len(c);
            // A block is at most 11 instructions.
            #[allow(clippy::cast_possible_truncation, clippy::cast_possible_wrap)]
            let off = (block_len - pos) as i16;
            match *c {
                Cond::Type(t) => prog.push(jne_k(R2, t, off)),
                Cond::Access(a) => {
                    prog.push(mov32_x(R1, R3));
                    prog.push(alu32_k(BPF_AND, R1, a));
                    prog.push(jne_x(R1, R3, off));
                }
                Cond::Major(m) => prog.push(jne_k(R4, m, off)),
                Cond::Minor(m) => prog.push(jne_k(R5, m, off)),
            }
        }
        prog.push(mov64_k(R0, i32::from(r.allow)));
        prog.push(exit());
        if conds.is_empty() {
            // This rule matches everything: earlier rules can never be reached (the verifier
            // rejects unreachable instructions), and no default is needed.
            terminated = true;
            break;
        }
    }
    if !terminated {
        prog.push(mov64_k(R0, 0));
        prog.push(exit());
    }
    prog
}

/// A u32 (a device number) as a 32-bit immediate: the same 32 bits, which is what the
/// program's 32-bit comparison sees.
fn imm_bits(v: u32) -> i32 {
    i32::from_ne_bytes(v.to_ne_bytes())
}

/// Runs a program produced by [`device_program`] on one access (for tests and diagnostics).
/// Returns None on an instruction this generator never emits.
// The truncating and sign-changing casts are the semantics of BPF's 32-bit ALU, its
// sign-extended immediates and signed jump offsets, which this emulates.
#[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss, clippy::cast_possible_wrap)]
pub fn simulate(prog: &[Insn], typ: i32, access: i32, major: u32, minor: u32) -> Option<u64> {
    let ctx = [((access as u32) << 16) | (typ as u32), major, minor];
    let mut reg = [0u64; 11];
    let mut pc = 0usize;
    for _ in 0..prog.len() + 1 {
        let i = prog.get(pc)?;
        let dst = (i.regs & 0x0f) as usize;
        let src = (i.regs >> 4) as usize;
        pc += 1;
        match i.code {
            c if c == BPF_LDX | BPF_MEM | BPF_W => {
                reg[dst] = u64::from(*ctx.get((i.off / 4) as usize)?);
            }
            c if c == BPF_ALU | BPF_AND | BPF_K => reg[dst] = u64::from(reg[dst] as u32 & i.imm as u32),
            c if c == BPF_ALU | BPF_RSH | BPF_K => reg[dst] = u64::from((reg[dst] as u32) >> i.imm),
            c if c == BPF_ALU | BPF_MOV | BPF_X => reg[dst] = u64::from(reg[src] as u32),
            c if c == BPF_ALU64 | BPF_MOV | BPF_K => reg[dst] = i64::from(i.imm) as u64,
            c if c == BPF_JMP | BPF_JNE | BPF_K => {
                if reg[dst] != i64::from(i.imm) as u64 {
                    pc = (pc as i64 + i64::from(i.off)) as usize;
                }
            }
            c if c == BPF_JMP | BPF_JNE | BPF_X => {
                if reg[dst] != reg[src] {
                    pc = (pc as i64 + i64::from(i.off)) as usize;
                }
            }
            c if c == BPF_JMP | BPF_EXIT => return Some(reg[0]),
            _ => return None,
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::super::{default_rules, ACC_MKNOD, ACC_READ, ACC_WRITE};
    use super::*;

    fn rule(allow: bool, typ: Option<DevType>, ma: Option<u32>, mi: Option<u32>, acc: u8) -> DeviceRule {
        DeviceRule {
            allow,
            typ,
            major: ma,
            minor: mi,
            access: acc,
        }
    }
    const C: i32 = DEVCG_DEV_CHAR;
    const B: i32 = DEVCG_DEV_BLOCK;
    const R: i32 = ACC_READ as i32;
    const W: i32 = ACC_WRITE as i32;
    const M: i32 = ACC_MKNOD as i32;

    #[test]
    fn empty_list_denies_everything() {
        let p = device_program(&[]);
        assert_eq!(p.len(), 8);
        assert_eq!(p[6], mov64_k(R0, 0));
        assert_eq!(simulate(&p, C, R, 1, 3), Some(0));
    }

    #[test]
    fn program_shape_for_one_rule() {
        let p = device_program(&[rule(true, Some(DevType::Char), Some(1), Some(3), ACC_READ)]);
        // prologue 6, type 1, access 3, major 1, minor 1, mov+exit 2, default 2
        assert_eq!(p.len(), 16);
        assert_eq!(p[6], jne_k(R2, C, 7));
        assert_eq!(p[7], mov32_x(R1, R3));
        assert_eq!(p[9], jne_x(R1, R3, 4));
        assert_eq!(p[10], jne_k(R4, 1, 3));
        assert_eq!(p[11], jne_k(R5, 3, 2));
        assert_eq!(p[12], mov64_k(R0, 1));
        assert_eq!(p[13].code, BPF_JMP | BPF_EXIT);
        assert_eq!(p[12].regs, 0);
        assert_eq!(p[6].regs, 2);
        assert_eq!(jne_x(R1, R3, 0).regs, 0x31);
    }

    #[test]
    fn last_match_wins_and_access_subsets() {
        let mut rules = vec![
            rule(false, None, None, None, ACC_ALL),
            rule(true, Some(DevType::Char), Some(1), Some(11), ACC_READ),
        ];
        rules.extend(default_rules());
        let p = device_program(&rules);
        // deny all first: never emitted as terminal since it is the last one checked
        assert_eq!(simulate(&p, C, R, 1, 3), Some(1)); // /dev/null
        assert_eq!(simulate(&p, C, W, 1, 3), Some(1));
        assert_eq!(simulate(&p, C, R, 1, 11), Some(1)); // kmsg read allowed
        assert_eq!(simulate(&p, C, W, 1, 11), Some(0)); // kmsg write denied
        assert_eq!(simulate(&p, C, M, 8, 0), Some(1)); // mknod anything
        assert_eq!(simulate(&p, B, R, 8, 0), Some(0)); // block read denied
        assert_eq!(simulate(&p, C, R, 136, 42), Some(1)); // pts wildcard minor
        assert_eq!(simulate(&p, C, R | W, 1, 11), Some(0));
    }

    #[test]
    fn catch_all_truncates() {
        let rules = vec![
            rule(true, Some(DevType::Char), Some(1), Some(3), ACC_ALL),
            rule(true, None, None, None, ACC_ALL),
            rule(false, Some(DevType::Block), Some(8), None, ACC_WRITE),
        ];
        let p = device_program(&rules);
        // prologue 6 + deny block (type, access 3, major, mov, exit = 7) + allow-all (2)
        assert_eq!(p.len(), 15);
        assert_eq!(simulate(&p, B, W, 8, 1), Some(0));
        assert_eq!(simulate(&p, B, R, 8, 1), Some(1));
        assert_eq!(simulate(&p, C, W, 4, 1), Some(1));
    }
}
