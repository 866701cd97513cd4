//! Cairn's fuzz targets (`fuzz_targets/`), as functions of the raw input. Each module is also
//! compiled into the owning crate's `fuzz_regressions` test, which replays the inputs saved under
//! `fuzz/regressions/<target>/` through the same function.

pub mod attrs;
pub mod normalise;
pub mod otlp;
#[cfg(feature = "sql")]
pub mod sql;

/// Run once before fuzzing: lets libFuzzer report a stack overflow as a crash, with the input.
///
/// Without a sanitizer nothing gives the main thread an alternate signal stack, so the SIGSEGV
/// of a stack overflow could not run any handler and the process would die without saving the
/// input. This gives it one, and marks the default SIGSEGV and SIGBUS actions `SA_ONSTACK`,
/// which libFuzzer keeps when it installs its own handlers after this.
pub fn init() {
    const SIZE: usize = 1 << 20;
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
        for signal in [libc::SIGSEGV, libc::SIGBUS] {
            let mut action: libc::sigaction = std::mem::zeroed();
            action.sa_sigaction = libc::SIG_DFL;
            action.sa_flags = libc::SA_ONSTACK;
            assert_eq!(libc::sigaction(signal, &action, std::ptr::null_mut()), 0);
        }
    }
}
