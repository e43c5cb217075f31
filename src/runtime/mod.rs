//! Where and how the process runs: device and dtype choice, memory checks, allocator and
//! huge-page policy.

pub mod allocator;
pub mod device;
pub mod huge_pages;

/// Human-readable byte count: `548.1 MB`.
pub fn human_bytes(bytes: u64) -> String {
    let b = bytes as f64;
    if b >= 1e9 {
        format!("{:.2} GB", b / 1e9)
    } else if b >= 1e6 {
        format!("{:.1} MB", b / 1e6)
    } else if b >= 1e3 {
        format!("{:.1} kB", b / 1e3)
    } else {
        format!("{bytes} B")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn human_bytes_reads_well() {
        assert_eq!(human_bytes(512), "512 B");
        assert_eq!(human_bytes(548_105_171), "548.1 MB");
        assert_eq!(human_bytes(6_431_878_936), "6.43 GB");
    }
}
