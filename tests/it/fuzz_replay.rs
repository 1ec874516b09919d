//! Replays the fuzz corpus (tests/fuzz/corpus) on stable, through the same checks
//! the fuzz targets assert: every input found once stays a test forever.

#[path = "../fuzz/checks.rs"]
mod checks;

#[test]
fn the_fuzz_corpus_replays_through_parsers_and_engines() {
    let corpus = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fuzz/corpus");
    let mut replayed = 0;
    for target in [
        "http_head",
        "http_engine",
        "tftp_request",
        "tftp_transfer",
        "dhcp_packet",
        "dhcp_engine",
        "dnsmasq_conf",
        "lease_journal",
        "dhcp6_packet",
        "dhcp6_engine",
    ] {
        let dir = std::path::Path::new(corpus).join(target);
        for entry in std::fs::read_dir(&dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display())) {
            let data = std::fs::read(entry.unwrap().path()).unwrap();
            // Every check takes any bytes; each input exercises all of them.
            checks::head(&data);
            checks::engine(&data);
            checks::boot_query(&data);
            checks::tftp_request(&data);
            checks::tftp_transfer(&data);
            checks::dhcp_packet(&data);
            checks::dhcp_engine(&data);
            checks::dnsmasq_conf(&data);
            checks::lease_journal(&data);
            checks::dhcp6_packet(&data);
            checks::dhcp6_engine(&data);
            replayed += 1;
        }
    }
    assert!(
        replayed >= 14,
        "the corpus lost its seeds: {replayed} inputs"
    );
}
