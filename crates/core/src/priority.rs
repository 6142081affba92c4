//! Thread priority: work beside the frame path (the reasoning head, the
//! results server, video encoding) runs at a lower priority, so that on a
//! small machine the frame path wins the CPU when both want it.

/// Lowers the calling thread's scheduling priority to `nice` (Linux: a
/// per-thread nice value; threads it creates later inherit it). A no-op for
/// 0 and on other systems.
pub fn lower_this_thread(nice: i32) -> std::io::Result<()> {
    if nice == 0 {
        return Ok(());
    }
    #[cfg(target_os = "linux")]
    {
        // SAFETY: setpriority on this thread's own id; no memory is touched.
        let done = unsafe {
            libc::setpriority(libc::PRIO_PROCESS as _, libc::gettid() as libc::id_t, nice)
        };
        if done != 0 {
            return Err(std::io::Error::last_os_error());
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    #[test]
    fn a_thread_can_lower_its_own_priority() {
        let nice = std::thread::spawn(|| {
            super::lower_this_thread(3).expect("lowering is always allowed");
            // SAFETY: reads this thread's own priority.
            unsafe { libc::getpriority(libc::PRIO_PROCESS as _, libc::gettid() as libc::id_t) }
        })
        .join()
        .expect("thread");
        assert!(nice >= 3, "nice {nice}");
    }
}
