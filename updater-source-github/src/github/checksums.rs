//! Expected SHA-256 from checksum assets: a `SHA256SUMS`-style list
//! (`<hex>  <name>` per line, as `sha256sum` writes it) or a `<asset>.sha256`
//! sidecar (`<hex>` optionally followed by the name).

use updater_core::release::Sha256Digest;

/// Whether `name` is a checksum list covering several assets.
pub(crate) fn is_checksum_list(name: &str) -> bool {
    let lower = name.to_ascii_lowercase();
    matches!(
        lower.as_str(),
        "sha256sums" | "sha256sums.txt" | "sha256sum.txt" | "checksums.txt" | "checksums.sha256"
    ) || lower.ends_with("_checksums.txt")
}

/// Whether `name` is metadata about other assets (checksums, signatures),
/// never a package itself.
pub(crate) fn is_metadata_asset(name: &str) -> bool {
    let lower = name.to_ascii_lowercase();
    is_checksum_list(name)
        || [
            ".sha256",
            ".sha256sum",
            ".minisig",
            ".sig",
            ".asc",
            ".index.json",
        ]
        .iter()
        .any(|suffix| lower.ends_with(suffix))
}

/// The digest of `asset` in a checksum list, `Ok(None)` when it is not listed.
pub(crate) fn find_in_list(list: &str, asset: &str) -> Result<Option<Sha256Digest>, String> {
    for (number, line) in list.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let Some((hash, name)) = line.split_once(char::is_whitespace) else {
            return Err(format!("line {} has no file name", number + 1));
        };
        let name = name.trim_start();
        let name = name.strip_prefix('*').unwrap_or(name);
        let name = name.strip_prefix("./").unwrap_or(name);
        if name == asset {
            return Sha256Digest::parse(hash)
                .map(Some)
                .map_err(|e| format!("line {}: {e}", number + 1));
        }
    }
    Ok(None)
}

/// The digest in a `<asset>.sha256` sidecar.
pub(crate) fn parse_sidecar(text: &str, asset: &str) -> Result<Sha256Digest, String> {
    let line = text
        .lines()
        .map(str::trim)
        .find(|l| !l.is_empty())
        .ok_or_else(|| "the file is empty".to_string())?;
    let mut parts = line.split_whitespace();
    let hash = parts.next().unwrap_or_default();
    if let Some(name) = parts.next() {
        let name = name.strip_prefix('*').unwrap_or(name);
        let name = name.rsplit('/').next().unwrap_or(name);
        if name != asset {
            return Err(format!("it is the checksum of {name:?}, not of {asset:?}"));
        }
    }
    Sha256Digest::parse(hash).map_err(|e| e.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const HEX: &str = "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08";

    #[test]
    fn lists_in_sha256sum_text_and_binary_modes_are_read() {
        let list = format!("{}  other.tar.gz\n{HEX} *app.tar.gz\n", "0".repeat(64));
        assert_eq!(
            find_in_list(&list, "app.tar.gz").unwrap().unwrap().to_hex(),
            HEX
        );
        assert_eq!(find_in_list(&list, "missing.tar.gz").unwrap(), None);
        assert!(find_in_list("zz  app.tar.gz", "app.tar.gz").is_err());
    }

    #[test]
    fn sidecars_must_be_about_the_same_file() {
        assert_eq!(
            parse_sidecar(&format!("{HEX}\n"), "a.tgz")
                .unwrap()
                .to_hex(),
            HEX
        );
        assert_eq!(
            parse_sidecar(&format!("{HEX}  dist/a.tgz"), "a.tgz")
                .unwrap()
                .to_hex(),
            HEX
        );
        assert!(parse_sidecar(&format!("{HEX}  b.tgz"), "a.tgz").is_err());
        assert!(parse_sidecar("", "a.tgz").is_err());
    }

    #[test]
    fn metadata_assets_are_not_packages() {
        for name in [
            "SHA256SUMS",
            "app_1.0.0_checksums.txt",
            "a.tar.gz.sha256",
            "a.tar.gz.minisig",
        ] {
            assert!(is_metadata_asset(name), "{name}");
        }
        assert!(!is_metadata_asset("app-1.0.0.tar.gz"));
    }

    proptest! {
        #[test]
        fn any_listed_name_is_found(names in proptest::collection::hash_set("[a-z0-9._-]{1,12}", 1..6)) {
            let names: Vec<String> = names.into_iter().collect();
            let list: String = names.iter().enumerate()
                .map(|(i, n)| format!("{:064x}  {n}\n", i + 1))
                .collect();
            for (i, name) in names.iter().enumerate() {
                let found = find_in_list(&list, name).unwrap().unwrap();
                prop_assert_eq!(found.to_hex(), format!("{:064x}", i + 1));
            }
        }
    }
}
