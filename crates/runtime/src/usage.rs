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
    fn cpu_time_grows_with_work_and_rss_with_memory_touched() {
        if cfg!(target_os = "linux") {
            let (user0, system0) = cpu_seconds().expect("/proc/self/stat");
            // Work until the clock tick (10 ms) shows it: CPU time must move.
            let mut x = 0u64;
            while cpu_seconds().map_or(0.0, |(u, s)| u + s) <= user0 + system0 {
                for i in 0..1_000_000u64 {
                    x = x.wrapping_mul(6364136223846793005).wrapping_add(i);
                }
            }
            std::hint::black_box(x);
            // The peak after touching 256 MiB is at least what was resident
            // before plus most of it, whatever peak other tests left.
            let resident = |status: &str| -> f64 {
                let line = status.lines().find(|l| l.starts_with("VmRSS:"));
                let kib = line.and_then(|l| l.split_whitespace().nth(1)?.parse::<f64>().ok());
                kib.expect("VmRSS") / 1024.0
            };
            let before = resident(&std::fs::read_to_string("/proc/self/status").expect("status"));
            let touched = vec![1u8; 256 << 20];
            std::hint::black_box(&touched);
            let peak = max_rss_mib().expect("/proc/self/status");
            assert!(
                peak >= before + 200.0,
                "{before} MiB resident -> peak {peak} MiB"
            );
        }
    }
}
