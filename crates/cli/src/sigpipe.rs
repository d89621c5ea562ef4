//! Restores the default SIGPIPE action, so `slipway images | head` ends
//! quietly when the reader goes away, like other Unix tools, instead of
//! panicking inside `println!`.

/// Opts in to `unsafe`: reason: `signal(2)` has no safe wrapper in our
/// dependencies; setting SIG_DFL for SIGPIPE at startup, before any thread
/// exists, has no memory-safety preconditions.
#[allow(unsafe_code)]
pub fn reset() {
    // SAFETY: called once from main before other threads start; SIG_DFL is a
    // valid disposition for SIGPIPE.
    unsafe {
        libc::signal(libc::SIGPIPE, libc::SIG_DFL);
    }
}

/// Ignores SIGPIPE again, for the long-running commands (`serve`, `agent`):
/// a closed standard output (a supervisor or test that read the start line
/// and went away) must not kill a server; the write fails instead.
#[allow(unsafe_code)]
pub fn ignore() {
    // SAFETY: called from main before the command starts any thread;
    // SIG_IGN is a valid disposition for SIGPIPE.
    unsafe {
        libc::signal(libc::SIGPIPE, libc::SIG_IGN);
    }
}
