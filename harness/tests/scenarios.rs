//! The scenarios' short cases (`scenarios/*.yml`, `short: true`) on every push; the nightly
//! job runs every case with `cargo harness scenario NAME`.

#[test]
fn power_cut_short_cases_hold() {
    let outcomes =
        harness::scenario::run("power-cut", &harness::scenario::Select::Short, &mut |o| {
            eprintln!(
                "[scenario power-cut] {}: runs {} after {:.0} s (boots: {})",
                o.case,
                o.version,
                o.seconds,
                o.boots.join(", ")
            )
        })
        .unwrap();
    let short = harness::scenario::load("power-cut")
        .unwrap()
        .cases
        .iter()
        .filter(|c| c.short)
        .count();
    assert!(short >= 2, "the short set: {short} cases");
    assert_eq!(outcomes.len(), short);
}
