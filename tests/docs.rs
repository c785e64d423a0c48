//! The shipped documentation stays true to the code: every key of the configuration schema
//! (src/config/file.rs, the YAML as written) has its entry in vpnd.yaml(5), and the default
//! configuration the Debian package installs loads.

use std::collections::BTreeSet;
use std::path::Path;

fn root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

/// Every `pub name:` field of the file layer's structs.
fn schema_keys() -> BTreeSet<String> {
    let text = std::fs::read_to_string(root().join("src/config/file.rs")).unwrap();
    text.lines()
        .filter_map(|l| l.trim().strip_prefix("pub "))
        .filter_map(|l| l.split_once(':').map(|(k, _)| k.trim()))
        .filter(|k| k.chars().all(|c| c.is_ascii_lowercase() || c == '_'))
        .map(str::to_string)
        .collect()
}

#[test]
fn every_configuration_key_is_in_the_man_page() {
    let page = std::fs::read_to_string(root().join("doc/vpnd.yaml.5")).unwrap();
    let documented: BTreeSet<&str> = page
        .lines()
        .filter_map(|l| l.strip_prefix(".B "))
        .map(str::trim)
        .collect();
    let keys = schema_keys();
    assert!(keys.len() > 60, "the schema parse found only {keys:?}");
    let missing: Vec<&String> = keys
        .iter()
        .filter(|k| !documented.contains(k.as_str()))
        .collect();
    assert!(missing.is_empty(), "not in doc/vpnd.yaml.5: {missing:?}");
}

#[test]
fn the_packaged_default_configuration_loads() {
    let path = root().join("debian/vpnd.yaml");
    let c = vpnd::config::Config::load(&path).unwrap_or_else(|e| panic!("{e}"));
    assert!(c.peers.is_empty());
    assert_eq!(
        c.metrics, None,
        "metrics stay off unless the operator turns them on"
    );
}
