//! For tests against the real kernel (this crate's and vpnd's): a fresh network namespace per
//! test, so the host's XFRM state is never touched. Not part of the API.

/// Runs `f` on a new thread inside a new network namespace, with its own tokio runtime.
/// Processes started from that thread are in the namespace too. Needs root
/// (CAP_SYS_ADMIN for unshare); without it the test fails saying so, never passes vacuously.
pub fn in_netns<F, Fut>(f: F)
where
    F: FnOnce() -> Fut + Send + 'static,
    Fut: std::future::Future<Output = ()>,
{
    std::thread::spawn(move || {
        // SAFETY: unshare(2) only changes this thread's namespace membership.
        let rc = unsafe { libc::unshare(libc::CLONE_NEWNET) };
        assert_eq!(
            rc,
            0,
            "unshare(CLONE_NEWNET) failed: {} (these tests need root)",
            std::io::Error::last_os_error()
        );
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        rt.block_on(f());
    })
    .join()
    .expect("test thread panicked");
}
