//! The `faultline` command. Thin: parsing, dispatch and exit codes live in `faultline::cli`.

fn main() -> std::process::ExitCode {
    return_freed_memory_promptly();
    faultline::cli::main()
}

/// `mi_option_purge_delay` in mimalloc's `mimalloc.h` (v2 and v3): the delay, in milliseconds,
/// before freed memory goes back to the operating system (default 10). libmimalloc-sys does not
/// name it.
const MI_OPTION_PURGE_DELAY: libmimalloc_sys::mi_option_t = 15;

/// Tells mimalloc to give freed memory back at once. A run's phases (simulate, check, write the
/// report) each build large structures and free them; with the default delay the process kept
/// them all resident, so its peak was the sum of the phases, not the largest (a 600-second Raft
/// run: 629 MiB with the delay, 549 MiB without, same wall time; see docs/performance.md).
fn return_freed_memory_promptly() {
    // SAFETY: sets one of mimalloc's global options to a documented value; mimalloc reads its
    // options atomically and allows setting them at any time.
    unsafe { libmimalloc_sys::mi_option_set(MI_OPTION_PURGE_DELAY, 0) };
}

/// mimalloc: the simulator allocates many small, short-lived objects (messages, effects, trace
/// chunks); it is markedly faster than the system allocator for that.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;
