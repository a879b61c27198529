//! A cloud-config layer (any bytes) checked as the loader checks a file, then merged over the
//! real built-in defaults (`initrd/rootfs/usr/share/ros/os-config.yml`) and checked again, as
//! `config::load_layers` does. Beyond "no panic", it asserts the loader's promises: a checked
//! layer is valid (checking it again finds nothing), a merge of valid layers is valid, and
//! merging the same layer twice changes nothing.

#![no_main]

use libfuzzer_sys::fuzz_target;
use os::config::{check_text, check_value, merge, merge_layers, Layer, LayerKind};
use std::sync::LazyLock;

const DEFAULTS: &str = include_str!("../../initrd/rootfs/usr/share/ros/os-config.yml");

static DEFAULTS_LAYER: LazyLock<Layer> = LazyLock::new(|| {
    let checked = check_text("os-config.yml", DEFAULTS);
    assert!(checked.errors.is_empty(), "defaults: {:?}", checked.errors);
    Layer {
        kind: LayerKind::Defaults,
        source: "os-config.yml".into(),
        value: checked.value,
    }
});

fuzz_target!(|data: &[u8]| {
    // The loader reads files with read_to_string: anything not UTF-8 is a read error before YAML.
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let checked = check_text("fuzz.yml", text);
    let again = check_value("fuzz.yml", checked.value.clone());
    assert!(
        again.errors.is_empty(),
        "a checked layer is not valid when checked again: {:?}\nlayer: {:?}",
        again.errors,
        checked.value
    );
    let layer = Layer {
        kind: LayerKind::Datasource,
        source: "fuzz.yml".into(),
        value: checked.value,
    };
    let merged = merge_layers([&*DEFAULTS_LAYER, &layer]);
    let mut twice = merged.clone();
    merge(&mut twice, layer.value.clone());
    assert_eq!(twice, merged, "merging a layer again changed the result");
    let result = check_value("merged configuration", merged);
    assert!(
        result.errors.is_empty(),
        "a merge of valid layers is invalid: {:?}\nlayer: {:?}",
        result.errors,
        layer.value
    );
});
