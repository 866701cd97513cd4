//! Cairn's fuzz targets (`fuzz_targets/`), as functions of the raw input. Each module is also
//! compiled into the owning crate's `fuzz_regressions` test, which replays the inputs saved under
//! `fuzz/regressions/<target>/` through the same function.

pub mod attrs;
pub mod normalise;
pub mod otlp;
#[cfg(feature = "sql")]
pub mod sql;

use std::sync::atomic::{AtomicPtr, AtomicUsize, Ordering};

/// The input being run, for the SIGSEGV handler.
static INPUT: AtomicPtr<u8> = AtomicPtr::new(std::ptr::null_mut());
static INPUT_LEN: AtomicUsize = AtomicUsize::new(0);
/// `<artifact_prefix>stack-overflow-`, prepared by [`init`] (the pid follows), or the
/// `-exact_artifact_path=` (nothing follows).
static ARTIFACT: AtomicPtr<u8> = AtomicPtr::new(std::ptr::null_mut());
static ARTIFACT_LEN: AtomicUsize = AtomicUsize::new(0);
static ARTIFACT_EXACT: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

/// Runs `target` on `data`, keeping `data` where the SIGSEGV handler finds it.
pub fn run(data: &[u8], target: impl FnOnce(&[u8])) {
    INPUT_LEN.store(data.len(), Ordering::Relaxed);
    INPUT.store(data.as_ptr() as *mut u8, Ordering::Relaxed);
    target(data);
    INPUT.store(std::ptr::null_mut(), Ordering::Relaxed);
}

/// Run once before fuzzing: lets a stack overflow end the run as a crash, with its input saved.
///
/// Without a sanitizer nothing gives the main thread an alternate signal stack, so the SIGSEGV
/// of a stack overflow could run no handler and the process would die without saving the input;
/// and libFuzzer's own crash handler is not async-signal-safe (it allocates, and deadlocks when
/// the overflow hit inside `malloc`). So this installs, on an alternate stack, a SIGSEGV handler
/// that only makes system calls: it writes the input to `<artifact_prefix>stack-overflow-<pid>` (the
/// directory of `-artifact_prefix=`, else the current one; or to `-exact_artifact_path=`, which
/// crash minimisation uses) and exits with status 1. libFuzzer
/// keeps it and calls it first from its own handler.
pub fn init() {
    const SIZE: usize = 1 << 20;
    let prefix = std::env::args()
        .find_map(|a| a.strip_prefix("-artifact_prefix=").map(str::to_owned))
        .unwrap_or_default();
    let exact =
        std::env::args().find_map(|a| a.strip_prefix("-exact_artifact_path=").map(str::to_owned));
    ARTIFACT_EXACT.store(exact.is_some(), Ordering::Relaxed);
    let path = exact
        .unwrap_or_else(|| format!("{prefix}stack-overflow-"))
        .into_bytes()
        .leak();
    ARTIFACT_LEN.store(path.len().min(4000), Ordering::Relaxed);
    ARTIFACT.store(path.as_mut_ptr(), Ordering::Relaxed);
    // SAFETY: plain libc calls with valid arguments; the mapping lives as long as the process.
    unsafe {
        let stack = libc::mmap(
            std::ptr::null_mut(),
            SIZE,
            libc::PROT_READ | libc::PROT_WRITE,
            libc::MAP_PRIVATE | libc::MAP_ANONYMOUS,
            -1,
            0,
        );
        assert_ne!(stack, libc::MAP_FAILED, "alternate signal stack");
        let ss = libc::stack_t {
            ss_sp: stack,
            ss_flags: 0,
            ss_size: SIZE,
        };
        assert_eq!(libc::sigaltstack(&ss, std::ptr::null_mut()), 0);
        let mut action: libc::sigaction = std::mem::zeroed();
        action.sa_sigaction = on_segv as *const () as usize;
        action.sa_flags = libc::SA_ONSTACK | libc::SA_SIGINFO;
        assert_eq!(
            libc::sigaction(libc::SIGSEGV, &action, std::ptr::null_mut()),
            0
        );
    }
}

fn say(text: &[u8]) {
    // SAFETY: write(2) of a valid buffer.
    unsafe { libc::write(2, text.as_ptr().cast(), text.len()) };
}

extern "C" fn on_segv(_: libc::c_int, _: *mut libc::siginfo_t, _: *mut libc::c_void) {
    say(b"\n==ERROR: libFuzzer: deadly signal: SIGSEGV (a stack overflow, or an invalid access)\n");
    let (data, len) = (
        INPUT.load(Ordering::Relaxed),
        INPUT_LEN.load(Ordering::Relaxed),
    );
    let prefix = ARTIFACT.load(Ordering::Relaxed);
    if !data.is_null() && !prefix.is_null() {
        // The file name, built without allocating: prefix, pid, NUL.
        let mut path = [0u8; 4096];
        let n = ARTIFACT_LEN.load(Ordering::Relaxed);
        // SAFETY: `prefix` is a leaked buffer of at least `n` bytes; `data` the input being run;
        // only async-signal-safe calls.
        unsafe {
            path[..n].copy_from_slice(std::slice::from_raw_parts(prefix, n));
            let mut digits = [0u8; 20];
            let (mut pid, mut d) = (libc::getpid() as u32, digits.len());
            loop {
                d -= 1;
                digits[d] = b'0' + (pid % 10) as u8;
                pid /= 10;
                if pid == 0 {
                    break;
                }
            }
            let end = if ARTIFACT_EXACT.load(Ordering::Relaxed) {
                n
            } else {
                path[n..n + digits.len() - d].copy_from_slice(&digits[d..]);
                n + digits.len() - d
            };
            let fd = libc::open(
                path.as_ptr().cast(),
                libc::O_CREAT | libc::O_WRONLY | libc::O_TRUNC,
                0o644,
            );
            if fd >= 0 {
                let _ = libc::write(fd, data.cast(), len);
                libc::close(fd);
                say(b"Test unit written to ");
                say(&path[..end]);
                say(b"\n");
            }
        }
    }
    say(b"SUMMARY: libFuzzer: deadly signal\n");
    // SAFETY: _exit is async-signal-safe.
    unsafe { libc::_exit(1) };
}
