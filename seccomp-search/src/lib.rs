//! A binary search over system call numbers in front of a seccomp program, so that the
//! kernel decides most calls in a dozen instructions, and a classic BPF interpreter to
//! check that a program decides what another does.
//!
//! seccompiler compiles a filter to an architecture check followed by one comparison per
//! call it names, in a row. The kernel pays for a long row twice: once when the filter is
//! installed, when it runs the filter on every call number to learn which ones it always
//! allows (its action cache, Linux 5.11), and again at every call that misses that cache.
//! A call the row does not name walks all of it to the default action. [`in_front`] puts
//! a search before the row that gives such a call its action at once, and hands the
//! calls the row names (and every other architecture) to the row unchanged.
//!
//! Both sandboxes use it: the container's deny-list (a call it does not name is allowed)
//! and the monitor's allow-list (a call it does not name raises `SIGSYS`). [`chain`] joins
//! several programs into one, so that a process installs one filter, not several.

use seccompiler::sock_filter;

/// `AUDIT_ARCH_*` of the native system call ABI, as seccomp reports it.
#[cfg(target_arch = "x86_64")]
pub const AUDIT_ARCH_NATIVE: u32 = 0xc000_003e;
/// `AUDIT_ARCH_*` of the native system call ABI, as seccomp reports it.
#[cfg(target_arch = "aarch64")]
pub const AUDIT_ARCH_NATIVE: u32 = 0xc000_00b7;

/// Classic BPF as seccomp runs it (linux/filter.h): the instructions the search uses.
const LD_W_ABS: u16 = 0x20;
const JEQ_K: u16 = 0x05 | 0x10;
const JGE_K: u16 = 0x05 | 0x30;
const JA: u16 = 0x05;
const RET_K: u16 = 0x06;
/// Where `seccomp_data` holds the call's number, then its architecture.
const DATA_NR: u32 = 0;
const DATA_ARCH: u32 = 4;

/// Where the search sends a native call whose number it finds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Found {
    /// To the program behind the search, which decides it (by its arguments, say).
    Program,
    /// Nowhere: the search returns this `SECCOMP_RET_*` action itself.
    Return(u32),
}

/// `program` behind a binary search that returns `elsewhere` at once for every native
/// call outside `numbers`, and hands the rest (and every call of another architecture)
/// to `program` unchanged.
///
/// It decides what `program` decides, provided `program` returns `elsewhere` for every
/// native call outside `numbers`, as a seccompiler filter does with its default action
/// (`SECCOMP_RET_ALLOW` for a deny-list, `SECCOMP_RET_TRAP` or a kill for an allow-list).
/// Classic BPF jumps at most 255 instructions ahead, so a search too long for that (over
/// a hundred numbers) is left out and `program` is returned alone, as it would decide
/// anyway.
pub fn in_front(numbers: &[u32], elsewhere: u32, program: Vec<sock_filter>) -> Vec<sock_filter> {
    let found: Vec<(u32, Found)> = numbers.iter().map(|&n| (n, Found::Program)).collect();
    in_front_deciding(&found, elsewhere, program).unwrap_or_else(|program| program)
}

/// Like [`in_front`], with the search deciding some calls itself: a native call whose
/// number is in `found` goes where it says (to `program`, or straight to an action), any
/// other native call gets `elsewhere`, and every call of another architecture goes to
/// `program`. A call the search decides need not be in `program` at all, which is what
/// makes the whole shorter: the kernel checks, translates and compiles every instruction
/// of a filter when a thread installs it.
///
/// `program` must decide every native call `found` sends to it, and every call of another
/// architecture. `Err(program)` when the search is too long for classic BPF's jumps.
pub fn in_front_deciding(
    found: &[(u32, Found)],
    elsewhere: u32,
    program: Vec<sock_filter>,
) -> Result<Vec<sock_filter>, Vec<sock_filter>> {
    let mut sorted = found.to_vec();
    sorted.sort_unstable_by_key(|&(n, _)| n);
    sorted.dedup_by_key(|&mut (n, _)| n);
    let insn = |code, jt, jf, k| sock_filter { code, jt, jf, k };
    // The search, laid out with every jump forward to a node's end, where its callers
    // continue: the jumps to `program` are patched once the length is known.
    let mut search: Vec<sock_filter> = Vec::new();
    let mut to_program: Vec<usize> = Vec::new();
    emit_search(&sorted, elsewhere, &mut search, &mut to_program);
    let mut out = vec![
        insn(LD_W_ABS, 0, 0, DATA_ARCH),
        // Another architecture: straight to `program`, past the search.
        insn(JEQ_K, 1, 0, AUDIT_ARCH_NATIVE),
        insn(JA, 0, 0, 0),
        insn(LD_W_ABS, 0, 0, DATA_NR),
    ];
    let base = out.len();
    let end = base + search.len();
    if end > usize::from(u8::MAX) {
        return Err(program);
    }
    out[2].k = u32::try_from(end - 3).unwrap_or(u32::MAX);
    for at in to_program {
        // A conditional's true branch, or an unconditional jump, to `end`.
        let from = base + at + 1;
        let distance = end - from;
        if search[at].code == JA {
            search[at].k = u32::try_from(distance).unwrap_or(u32::MAX);
        } else {
            search[at].jt = u8::try_from(distance).unwrap_or(u8::MAX);
        }
    }
    out.extend(search);
    out.extend(program);
    Ok(out)
}

/// `programs` joined into one program that runs them in turn: each one's "allow"
/// continues to the next, and the first other answer is the joined program's. A process
/// then installs one filter with seccomp(2), not one per program: each install has the
/// kernel check and translate the program and fill its action cache.
///
/// The kernel, given the programs installed one by one, runs them all and takes the
/// strictest answer. The two agree when no call is refused by two of the programs with
/// different actions (each call is named in one program only, and every program kills
/// another architecture alike, say); check that with [`run`]. `None` when the joined
/// program would be longer than the kernel takes (`BPF_MAXINSNS`, 4096 instructions).
pub fn chain(programs: &[Vec<sock_filter>]) -> Option<Vec<sock_filter>> {
    const MAX_INSNS: usize = 4096;
    let total: usize = programs.iter().map(Vec::len).sum();
    if total > MAX_INSNS {
        return None;
    }
    let mut out = Vec::with_capacity(total);
    for (i, program) in programs.iter().enumerate() {
        let last = i + 1 == programs.len();
        for (at, insn) in program.iter().enumerate() {
            let allows = insn.code == RET_K && insn.k == libc::SECCOMP_RET_ALLOW;
            if allows && !last {
                // On to the next program's first instruction, just past this one's last.
                let ahead = u32::try_from(program.len() - at - 1).ok()?;
                out.push(sock_filter {
                    code: JA,
                    jt: 0,
                    jf: 0,
                    k: ahead,
                });
            } else {
                out.push(insn.clone());
            }
        }
    }
    Some(out)
}

/// Emits a search over `sorted` numbers (the accumulator holds the call's number): a
/// number found for the program jumps to it (the instruction's index is noted in
/// `to_program`: a `JEQ`'s true branch), one found with an action returns it, and any
/// other number returns `elsewhere`.
fn emit_search(
    sorted: &[(u32, Found)],
    elsewhere: u32,
    out: &mut Vec<sock_filter>,
    to_program: &mut Vec<usize>,
) {
    let insn = |code, jt, jf, k| sock_filter { code, jt, jf, k };
    if sorted.len() <= 3 {
        // The comparisons, then `RET elsewhere`, then one `RET` per action found here.
        let mut actions: Vec<u32> = Vec::new();
        for (_, found) in sorted {
            if let Found::Return(action) = found {
                if !actions.contains(action) {
                    actions.push(*action);
                }
            }
        }
        let first = out.len();
        let returns = first + sorted.len() + 1;
        for (i, &(n, found)) in sorted.iter().enumerate() {
            let at = first + i;
            match found {
                Found::Program => {
                    to_program.push(at);
                    out.push(insn(JEQ_K, 0, 0, n));
                }
                Found::Return(action) => {
                    let slot = actions.iter().position(|a| *a == action).unwrap_or(0);
                    let jump = u8::try_from(returns + slot - at - 1).unwrap_or(u8::MAX);
                    out.push(insn(JEQ_K, jump, 0, n));
                }
            }
        }
        out.push(insn(RET_K, 0, 0, elsewhere));
        out.extend(actions.into_iter().map(|a| insn(RET_K, 0, 0, a)));
        return;
    }
    let (low, high) = sorted.split_at(sorted.len() / 2);
    // number >= high[0]: the high half, after the low half's code.
    let at = out.len();
    out.push(insn(JGE_K, 0, 0, high[0].0));
    emit_search(low, elsewhere, out, to_program);
    let skip = out.len() - at - 1;
    out[at].jt = u8::try_from(skip).unwrap_or(u8::MAX);
    emit_search(high, elsewhere, out, to_program);
}

/// What running `program` on one call gave: its return value, and how many instructions
/// it took to get there.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Ran {
    /// The `SECCOMP_RET_*` value the program returned.
    pub action: u32,
    /// Instructions executed, the return included.
    pub steps: usize,
}

/// Runs a classic BPF seccomp program on a call `(arch, nr, args)`, as the kernel would:
/// the subset seccompiler and [`in_front`] emit (absolute word loads, AND, the
/// conditional and plain jumps, RET). For tests; `None` for an instruction outside that
/// subset, a load outside `seccomp_data`, or a jump out of the program.
pub fn run(program: &[sock_filter], arch: u32, nr: u32, args: [u64; 6]) -> Option<Ran> {
    let word = |offset: u32| -> Option<u32> {
        match offset {
            0 => Some(nr),
            4 => Some(arch),
            // The instruction pointer.
            8..=15 => Some(0),
            16..=63 => {
                let arg = args[usize::try_from((offset - 16) / 8).ok()?];
                let half = if offset.is_multiple_of(8) {
                    arg & 0xffff_ffff
                } else {
                    arg >> 32
                };
                u32::try_from(half).ok()
            }
            _ => None,
        }
    };
    let (mut acc, mut pc, mut steps) = (0u32, 0usize, 0usize);
    loop {
        let i = program.get(pc)?;
        pc += 1;
        steps += 1;
        let op = i.code & 0xf0;
        match i.code & 0x07 {
            0x00 => acc = word(i.k)?,
            0x04 if op == 0x50 => acc &= i.k,
            0x05 => {
                let jump = |taken: bool| usize::from(if taken { i.jt } else { i.jf });
                pc += match op {
                    0x00 => usize::try_from(i.k).ok()?,
                    0x10 => jump(acc == i.k),
                    0x20 => jump(acc > i.k),
                    0x30 => jump(acc >= i.k),
                    0x40 => jump(acc & i.k != 0),
                    _ => return None,
                };
            }
            0x06 => return Some(Ran { action: i.k, steps }),
            _ => return None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use seccompiler::{BpfProgram, SeccompAction, SeccompFilter, SeccompRule, TargetArch};
    use std::collections::BTreeMap;

    fn row(numbers: &[u32], matched: SeccompAction, otherwise: SeccompAction) -> BpfProgram {
        let arch = TargetArch::try_from(std::env::consts::ARCH).unwrap();
        let rules = numbers
            .iter()
            .map(|n| (i64::from(*n), Vec::<SeccompRule>::new()))
            .collect::<BTreeMap<_, _>>();
        // seccompiler takes the action for a call it does not name first.
        BpfProgram::try_from(SeccompFilter::new(rules, otherwise, matched, arch).unwrap()).unwrap()
    }

    #[test]
    fn the_search_decides_what_the_program_behind_it_decides() {
        let lists = [
            vec![],
            vec![7],
            vec![1, 2, 3, 4],
            (0..60).map(|i| i * 7 + 1).collect::<Vec<u32>>(),
        ];
        let kinds = [
            // A deny-list: what it names fails, the rest is allowed.
            (SeccompAction::Errno(1), SeccompAction::Allow),
            // An allow-list: what it names is allowed, the rest traps.
            (SeccompAction::Allow, SeccompAction::Trap),
        ];
        for numbers in &lists {
            for (matched, otherwise) in kinds.clone() {
                let elsewhere = u32::from(otherwise.clone());
                let plain = row(numbers, matched, otherwise);
                let searched = in_front(numbers, elsewhere, plain.clone());
                assert!(searched.len() > plain.len() || numbers.is_empty());
                for arch in [AUDIT_ARCH_NATIVE, 0x4000_0003] {
                    for nr in 0..600 {
                        assert_eq!(
                            run(&searched, arch, nr, [0; 6]).map(|r| r.action),
                            run(&plain, arch, nr, [0; 6]).map(|r| r.action),
                            "arch {arch:#x}, call {nr}, named {numbers:?}"
                        );
                    }
                }
            }
        }
    }

    /// An allow-list whose calls in `conditional` are allowed only with argument 0 equal to
    /// 5 or 9, the others with any arguments; every other call traps.
    fn allow_list(numbers: &[u32], conditional: &[u32]) -> BpfProgram {
        use seccompiler::{SeccompCmpArgLen, SeccompCmpOp, SeccompCondition};
        let arch = TargetArch::try_from(std::env::consts::ARCH).unwrap();
        let rules = numbers
            .iter()
            .map(|&n| {
                let rules = if conditional.contains(&n) {
                    [5, 9]
                        .into_iter()
                        .map(|v| {
                            let c = SeccompCondition::new(
                                0,
                                SeccompCmpArgLen::Dword,
                                SeccompCmpOp::Eq,
                                v,
                            )
                            .unwrap();
                            SeccompRule::new(vec![c]).unwrap()
                        })
                        .collect()
                } else {
                    Vec::new()
                };
                (i64::from(n), rules)
            })
            .collect::<BTreeMap<_, _>>();
        BpfProgram::try_from(
            SeccompFilter::new(rules, SeccompAction::Trap, SeccompAction::Allow, arch).unwrap(),
        )
        .unwrap()
    }

    #[test]
    fn a_search_that_decides_calls_itself_decides_what_the_whole_row_decides() {
        let allow = u32::from(SeccompAction::Allow);
        let trap = u32::from(SeccompAction::Trap);
        for (numbers, conditional) in [
            (vec![16], vec![16]),
            (vec![1, 2, 3, 4], vec![]),
            (vec![1, 2, 3, 4, 72], vec![16, 72]),
            (
                (0..40).map(|i| i * 7 + 1).collect::<Vec<u32>>(),
                vec![8, 71, 190],
            ),
        ] {
            let numbers: Vec<u32> = numbers.into_iter().chain(conditional.clone()).collect();
            let whole = allow_list(&numbers, &conditional);
            // The row behind the search names only the calls with conditions.
            let behind = allow_list(&conditional, &conditional);
            let found: Vec<(u32, Found)> = numbers
                .iter()
                .map(|&n| match conditional.contains(&n) {
                    true => (n, Found::Program),
                    false => (n, Found::Return(allow)),
                })
                .collect();
            let searched = in_front_deciding(&found, trap, behind).unwrap();
            let plain_search = in_front(&numbers, trap, whole.clone()).len();
            if numbers.iter().any(|n| !conditional.contains(n)) {
                assert!(
                    searched.len() < plain_search,
                    "{} {plain_search}",
                    searched.len()
                );
            } else {
                assert!(searched.len() <= plain_search);
            }
            for arch in [AUDIT_ARCH_NATIVE, 0x4000_0003] {
                for nr in (0..600).chain([0x4000_0001, 0x4000_0010]) {
                    for arg in [0, 5, 9, 5 | 1 << 32, 10] {
                        let args = [arg, 0, 0, 0, 0, 0];
                        assert_eq!(
                            run(&searched, arch, nr, args).map(|r| r.action),
                            run(&whole, arch, nr, args).map(|r| r.action),
                            "arch {arch:#x}, call {nr}, argument {arg:#x}, named {numbers:?}"
                        );
                    }
                }
            }
        }
    }

    #[test]
    fn a_call_the_row_does_not_name_is_decided_in_a_dozen_instructions() {
        let numbers: Vec<u32> = (0..60).map(|i| i * 7 + 1).collect();
        let plain = row(&numbers, SeccompAction::Allow, SeccompAction::Trap);
        let searched = in_front(&numbers, u32::from(SeccompAction::Trap), plain.clone());
        let steps = |p: &[sock_filter]| run(p, AUDIT_ARCH_NATIVE, 500, [0; 6]).unwrap().steps;
        assert!(steps(&plain) > 60, "{}", steps(&plain));
        assert!(steps(&searched) <= 12, "{}", steps(&searched));
    }

    #[test]
    fn a_search_too_long_to_jump_over_is_left_out() {
        let numbers: Vec<u32> = (0..200).collect();
        let plain = row(&numbers, SeccompAction::Allow, SeccompAction::Trap);
        assert_eq!(
            in_front(&numbers, u32::from(SeccompAction::Trap), plain.clone()),
            plain
        );
    }

    #[test]
    fn a_chain_gives_the_first_refusal_and_allows_what_every_program_allows() {
        let refuse_odd = row(&[1, 3, 5], SeccompAction::Errno(1), SeccompAction::Allow);
        let refuse_even = in_front(
            &[2, 4],
            libc::SECCOMP_RET_ALLOW,
            row(&[2, 4], SeccompAction::Errno(2), SeccompAction::Allow),
        );
        let programs = [refuse_odd.clone(), refuse_even.clone()];
        let joined = chain(&programs).unwrap();
        assert_eq!(joined.len(), refuse_odd.len() + refuse_even.len());
        let errno = |e: u32| libc::SECCOMP_RET_ERRNO | e;
        for nr in 0..8 {
            let expected = match nr {
                1 | 3 | 5 => errno(1),
                2 | 4 => errno(2),
                _ => libc::SECCOMP_RET_ALLOW,
            };
            let got = run(&joined, AUDIT_ARCH_NATIVE, nr, [0; 6]).unwrap().action;
            assert_eq!(got, expected, "call {nr}");
        }
        // Another architecture: the first program's answer (seccompiler kills it).
        let other = run(&joined, 0x4000_0003, 1, [0; 6]).unwrap().action;
        assert_eq!(
            other,
            run(&refuse_odd, 0x4000_0003, 1, [0; 6]).unwrap().action
        );
        assert_eq!(chain(std::slice::from_ref(&refuse_odd)), Some(refuse_odd));
        assert_eq!(chain(&[]), Some(Vec::new()));
        let long = vec![
            sock_filter {
                code: RET_K,
                jt: 0,
                jf: 0,
                k: 0
            };
            3000
        ];
        assert_eq!(chain(&[long.clone(), long]), None);
    }

    #[test]
    fn the_interpreter_refuses_what_it_does_not_know() {
        let insn = |code, k| sock_filter {
            code,
            jt: 0,
            jf: 0,
            k,
        };
        assert_eq!(run(&[insn(LD_W_ABS, 64)], 0, 0, [0; 6]), None);
        assert_eq!(run(&[insn(JA, 5)], 0, 0, [0; 6]), None);
        assert_eq!(
            run(&[insn(RET_K, 7)], 0, 0, [0; 6]),
            Some(Ran {
                action: 7,
                steps: 1
            })
        );
    }
}
