//! A created container's init waits at the exec fifo for as long as nobody starts it, holding
//! every page of moor's code it touched while building the container (1.5-3 MB of a 4 MB
//! binary, counted in its RSS). Those pages are clean, file-backed and read-only: dropping
//! them costs nothing but a refault of what runs afterwards. What runs between the drop and
//! the blocking open is kept to raw system calls in one small function, since each fault maps
//! a whole folio (or a fault-around window) of the binary back.

use std::ffi::{c_void, CStr};
use std::io;
use std::os::fd::RawFd;

const MAX_RANGES: usize = 8;

/// The read-only (code and constant data) segments of the main executable, page-aligned.
#[derive(Clone, Copy, Default)]
pub struct CodeRanges {
    ranges: [(usize, usize); MAX_RANGES],
    n: usize,
}

impl CodeRanges {
    /// Found through the loader's program headers; empty when there are none to find.
    pub fn of_main_executable() -> CodeRanges {
        let mut out = CodeRanges::default();
        // SAFETY: the callback only reads the program headers the loader hands it, for the
        // duration of the call, and writes to `out`, which outlives the call.
        unsafe { libc::dl_iterate_phdr(Some(main_object), std::ptr::from_mut(&mut out).cast()) };
        out
    }

    /// Drops this process's mappings of the ranges. Best effort: a failure leaves the pages
    /// mapped, which is only memory. madvise may be denied by a seccomp filter: never call this
    /// after one is loaded.
    #[inline(always)]
    pub fn release(&self) {
        for &(start, len) in &self.ranges[..self.n] {
            // SAFETY: [start, start+len) lies inside a read-only, unmodified private file mapping
            // of this process: MADV_DONTNEED only unmaps it, and the next access reads the same
            // bytes back from the file.
            unsafe { raw_syscall(libc::SYS_madvise, start, len, libc::MADV_DONTNEED as usize, 0) };
        }
    }
}

/// `openat(dirfd, path, flags)`, retried on EINTR, after dropping `release`'s pages when given:
/// init's blocking open of the exec fifo. Between the two only this function's own code runs.
#[inline(never)]
// The registers take the arguments' raw bits (AT_FDCWD sign-extended, as the C wrapper does).
#[allow(clippy::cast_sign_loss)]
pub fn open_released(release: Option<&CodeRanges>, dirfd: RawFd, path: &CStr, flags: libc::c_int) -> io::Result<RawFd> {
    if let Some(r) = release {
        r.release();
    }
    loop {
        // SAFETY: openat with a NUL-terminated path; the kernel returns an fd or -errno.
        let ret = unsafe {
            raw_syscall(
                libc::SYS_openat,
                dirfd as usize,
                path.as_ptr() as usize,
                flags as usize,
                0,
            )
        };
        match ret {
            r if r >= 0 => return RawFd::try_from(r).map_err(|_| io::Error::from_raw_os_error(libc::EBADF)),
            r if r == -(libc::EINTR as isize) => {}
            r => return Err(io::Error::from_raw_os_error(i32::try_from(-r).unwrap_or(libc::EIO))),
        }
    }
}

/// A system call without the C library's wrapper (whose code would be faulted back in):
/// returns the result or -errno. The number is a register's worth on every Linux target.
#[cfg(target_arch = "x86_64")]
#[inline(always)]
#[allow(clippy::cast_possible_truncation)]
unsafe fn raw_syscall(n: libc::c_long, a: usize, b: usize, c: usize, d: usize) -> isize {
    let ret: isize;
    // SAFETY: the x86_64 system call convention; the caller answers for the arguments.
    unsafe {
        std::arch::asm!("syscall", inlateout("rax") n as isize => ret, in("rdi") a, in("rsi") b, in("rdx") c,
            in("r10") d, lateout("rcx") _, lateout("r11") _, options(nostack));
    }
    ret
}

#[cfg(target_arch = "aarch64")]
#[inline(always)]
#[allow(clippy::cast_possible_wrap)]
unsafe fn raw_syscall(n: libc::c_long, a: usize, b: usize, c: usize, d: usize) -> isize {
    let ret: isize;
    // SAFETY: the aarch64 system call convention; the caller answers for the arguments.
    unsafe {
        std::arch::asm!("svc 0", in("x8") n, inlateout("x0") a as isize => ret, in("x1") b, in("x2") c,
            in("x3") d, options(nostack));
    }
    ret
}

#[cfg(not(any(target_arch = "x86_64", target_arch = "aarch64")))]
#[allow(clippy::cast_possible_truncation, clippy::cast_possible_wrap)]
unsafe fn raw_syscall(n: libc::c_long, a: usize, b: usize, c: usize, d: usize) -> isize {
    // SAFETY: the caller answers for the arguments.
    let r = unsafe { libc::syscall(n, a, b, c, d) };
    if r < 0 {
        -(io::Error::last_os_error().raw_os_error().unwrap_or(libc::EIO) as isize)
    } else {
        r as isize
    }
}

/// Called for each loaded object; the first is the main executable (for a static binary, the
/// only one). Returning 1 stops the iteration after it.
unsafe extern "C" fn main_object(info: *mut libc::dl_phdr_info, _size: libc::size_t, data: *mut c_void) -> libc::c_int {
    // SAFETY: the loader passes a valid dl_phdr_info for the duration of the callback, and
    // `data` is the CodeRanges given to dl_iterate_phdr.
    let (Some(info), Some(out)) = (unsafe { info.as_ref() }, unsafe { data.cast::<CodeRanges>().as_mut() }) else {
        return 1;
    };
    if info.dlpi_phdr.is_null() {
        return 1;
    }
    // SAFETY: dlpi_phdr points to dlpi_phnum program headers of the object.
    let headers = unsafe { std::slice::from_raw_parts(info.dlpi_phdr, usize::from(info.dlpi_phnum)) };
    // SAFETY: sysconf has no memory effects.
    let page = usize::try_from(unsafe { libc::sysconf(libc::_SC_PAGESIZE) }).unwrap_or(4096);
    for h in headers {
        // A writable segment holds data (and the RELRO part of it): its private copies must stay.
        if h.p_type != libc::PT_LOAD || h.p_flags & libc::PF_W != 0 || out.n == MAX_RANGES {
            continue;
        }
        let (Ok(start), Ok(len)) = (
            usize::try_from(info.dlpi_addr.wrapping_add(h.p_vaddr)),
            usize::try_from(h.p_memsz),
        ) else {
            continue;
        };
        // Whole pages inside the segment only: a page it shares with a writable neighbour keeps
        // that neighbour's data.
        let first = start.div_ceil(page) * page;
        let end = (start.saturating_add(len) / page) * page;
        if end > first {
            out.ranges[out.n] = (first, end - first);
            out.n += 1;
        }
    }
    1
}
