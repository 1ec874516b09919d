//! Cutting a TFTP window for SENDMSG_ZC: the kernel refuses (EMSGSIZE) a
//! zero-copy message whose page fragments pass `net.core.max_skb_frags`, so
//! a window leaves as as many messages as its blocks' fragments need.

/// The kernel's fragment limit per skb when /proc does not say (Linux's default).
const MAX_SKB_FRAGS: usize = 17;

/// `net.core.max_skb_frags`: how many page fragments one SENDMSG_ZC may carry.
pub(super) fn max_skb_frags() -> usize {
    std::fs::read_to_string("/proc/sys/net/core/max_skb_frags")
        .ok()
        .and_then(|s| s.trim().parse().ok())
        .unwrap_or(MAX_SKB_FRAGS)
}

/// Fragments a zero-copy send of `part` takes: one for its header, one for
/// each page its payload touches (the kernel pins base pages, whatever the
/// mapping's page size).
fn frags(part: &(&[u8], &[u8]), page: usize) -> usize {
    let (head, body) = part;
    let spans = |b: &[u8]| {
        if b.is_empty() {
            0
        } else {
            let at = b.as_ptr() as usize;
            (at + b.len() - 1) / page - at / page + 1
        }
    };
    spans(head) + spans(body)
}

/// Cuts a window's parts into runs of at most `per_run` parts whose fragments
/// fit `limit` each: (from, to, fits). A part that alone exceeds the limit is
/// a run of its own that does not fit (sent copying).
pub(super) fn window_runs(
    parts: &[(&[u8], &[u8])],
    limit: usize,
    per_run: usize,
    page: usize,
) -> Vec<(usize, usize, bool)> {
    let mut runs = Vec::new();
    let (mut start, mut used) = (0, 0);
    for (i, part) in parts.iter().enumerate() {
        let n = frags(part, page);
        if i > start && (used + n > limit || i - start >= per_run) {
            runs.push((start, i, used <= limit));
            (start, used) = (i, 0);
        }
        used += n;
    }
    if start < parts.len() {
        runs.push((start, parts.len(), used <= limit));
    }
    runs
}

#[cfg(test)]
mod tests {
    use super::{frags, window_runs};

    /// The runs of a window of `heads.len()` blocks of `blksize` from the
    /// start of a page-aligned mapping, each checked against the limit.
    fn window(mapping: &[u8], heads: &[[u8; 4]], blksize: usize) -> Vec<(usize, usize)> {
        let parts: Vec<(&[u8], &[u8])> = heads
            .iter()
            .enumerate()
            .map(|(i, h)| (&h[..], &mapping[i * blksize..(i + 1) * blksize]))
            .collect();
        window_runs(&parts, 17, 128, 4096)
            .into_iter()
            .map(|(from, to, zc)| {
                assert!(zc, "every run of small blocks is zero-copy");
                let used: usize = parts[from..to].iter().map(|p| frags(p, 4096)).sum();
                assert!(used <= 17, "run {from}..{to} takes {used} fragments");
                (from, to)
            })
            .collect()
    }

    #[test]
    fn a_window_is_cut_where_the_kernel_fragment_limit_falls() {
        let map = memmap2::MmapMut::map_anon(1 << 20).unwrap();
        let heads = [[0u8; 4]; 16];
        // 7 blocks of 1,468 from a page start touch 9 pages + 7 headers = 16
        // fragments; an 8th makes 18, which the kernel refuses with EMSGSIZE
        // (measured on Linux 6.18).
        assert_eq!(
            window(&map, &heads, 1468),
            [(0, 7), (7, 14), (14, 16)],
            "runs of 1468-byte blocks"
        );
        // 512-byte blocks: each is a fragment of its own even where it shares
        // a page with the last (its header lies between), so 8 per run; a 9th
        // is refused (measured).
        assert_eq!(window(&map, &heads, 512), [(0, 8), (8, 16)]);
    }

    #[test]
    fn a_run_never_passes_the_gso_count_and_an_oversized_block_is_copied() {
        let map = memmap2::MmapMut::map_anon(1 << 20).unwrap();
        let head = [0u8; 4];
        let parts: Vec<(&[u8], &[u8])> = (0..4)
            .map(|i| (&head[..], &map[i * 100..(i + 1) * 100]))
            .collect();
        // Without GSO each block is its own message.
        let one: Vec<_> = window_runs(&parts, 17, 1, 4096);
        assert_eq!(
            one,
            [(0, 1, true), (1, 2, true), (2, 3, true), (3, 4, true)]
        );
        // A 65,464-byte block from a page start touches 16 pages, 17 fragments
        // with its header; 100 bytes further it touches 17, is over the limit
        // alone and goes out copying (the kernel refuses it, measured).
        let big = [(&head[..], &map[..65_464])];
        assert_eq!(window_runs(&big, 17, 128, 4096), [(0, 1, true)]);
        let big = [(&head[..], &map[100..100 + 65_464])];
        assert_eq!(window_runs(&big, 17, 128, 4096), [(0, 1, false)]);
        assert_eq!(window_runs(&[], 17, 128, 4096), []);
    }
}
