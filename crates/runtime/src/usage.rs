//! CPU time and peak memory of this process, from /proc (Linux).

/// Clock ticks per second of /proc's time fields (USER_HZ; 100 on Linux).
const TICKS_PER_SECOND: f64 = 100.0;

/// User and system CPU seconds used so far, if /proc can tell.
pub fn cpu_seconds() -> Option<(f64, f64)> {
    let stat = std::fs::read_to_string("/proc/self/stat").ok()?;
    // The command name (field 2) may contain spaces; fields resume after ')'.
    let rest = stat.rsplit_once(')')?.1;
    let fields: Vec<&str> = rest.split_whitespace().collect();
    // After ')': state is field 3, so utime (14) and stime (15) are at 11 and 12.
    let user: f64 = fields.get(11)?.parse().ok()?;
    let system: f64 = fields.get(12)?.parse().ok()?;
    Some((user / TICKS_PER_SECOND, system / TICKS_PER_SECOND))
}

/// Peak resident memory in MiB, if /proc can tell.
pub fn max_rss_mib() -> Option<f64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    let kib: f64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib / 1024.0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_own_usage_on_linux() {
        if cfg!(target_os = "linux") {
            let (user, system) = cpu_seconds().expect("/proc/self/stat");
            assert!(user >= 0.0 && system >= 0.0);
            assert!(max_rss_mib().expect("/proc/self/status") > 0.0);
        }
    }
}
