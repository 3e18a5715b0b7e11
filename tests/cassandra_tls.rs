//! Real Cassandra over TLS: the test cluster (`scripts/services`) serves
//! TLS on its native port (optional, so plain CQL keeps working).
//! `[cassandra.tls]` with the cluster's CA connects and writes; with any
//! other CA the connection is refused by certificate verification — which
//! also proves the client does speak TLS (a plain connection would have
//! succeeded). Bad `[cassandra.tls]` settings exit 2 naming the key.

mod common;
use common::*;
use std::path::Path;
use std::process::Command;

fn config(dir: &Path, ks: &str, tls: &str) -> std::path::PathBuf {
    write_config(
        dir,
        "tls.toml",
        &format!(
            "[source]\nkind = \"kafka\"\n[cassandra]\nnodes = [\"{}\"]\nkeyspace = \"{ks}\"\n{tls}",
            cassandra_node()
        ),
    )
}

fn schema_apply(cfg: &Path) -> std::process::Output {
    fakopp()
        .args(["schema", "apply", "--config"])
        .arg(cfg)
        .output()
        .unwrap()
}

#[test]
fn tls_with_the_clusters_ca_connects_and_any_other_ca_is_refused() {
    let ca = cassandra_ca();
    assert!(
        ca.is_file(),
        "{} missing: start the services with scripts/services start",
        ca.display()
    );
    let dir = tempfile::tempdir().unwrap();
    let ks = unique("fakopp_tls");
    let good = config(
        dir.path(),
        &ks,
        &format!(
            "[cassandra.tls]\nca_file = {:?}\n",
            ca.display().to_string()
        ),
    );
    let out = schema_apply(&good);
    assert!(out.status.success(), "over TLS: {}", stderr(&out));

    // Another self-signed CA, made here with the JDK's keytool.
    let ks_file = dir.path().join("other.p12");
    let other = dir.path().join("other.pem");
    let status = Command::new("keytool")
        .args([
            "-genkeypair",
            "-alias",
            "x",
            "-keyalg",
            "RSA",
            "-keysize",
            "2048",
        ])
        .args(["-dname", "CN=not-the-cluster", "-ext", "SAN=ip:127.0.0.1"])
        .arg("-keystore")
        .arg(&ks_file)
        .args([
            "-storetype",
            "PKCS12",
            "-storepass",
            "changeit",
            "-keypass",
            "changeit",
        ])
        .output()
        .expect("keytool (scripts/bootstrap installs the JDK)");
    assert!(status.status.success(), "{}", stderr(&status));
    let pem = Command::new("keytool")
        .args([
            "-exportcert",
            "-rfc",
            "-alias",
            "x",
            "-storepass",
            "changeit",
        ])
        .arg("-keystore")
        .arg(&ks_file)
        .output()
        .unwrap();
    assert!(pem.status.success());
    std::fs::write(&other, &pem.stdout).unwrap();
    let bad = config(
        dir.path(),
        &unique("fakopp_tls"),
        &format!(
            "[cassandra.tls]\nca_file = {:?}\n",
            other.display().to_string()
        ),
    );
    let out = schema_apply(&bad);
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(
        err.contains("cannot connect to Cassandra") && err.to_lowercase().contains("certificate"),
        "{err}"
    );
}

#[test]
fn bad_tls_settings_exit_2_naming_the_key() {
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("nope.pem");
    let cases = [
        (
            format!(
                "[cassandra.tls]\nca_file = {:?}\n",
                missing.display().to_string()
            ),
            "cassandra.tls.ca_file",
        ),
        (
            format!(
                "[cassandra.tls]\nca_file = {:?}\ncert_file = {:?}\n",
                cassandra_ca().display().to_string(),
                cassandra_ca().display().to_string()
            ),
            "cassandra.tls",
        ),
        ("[cassandra.tls]\nca = \"x.pem\"\n".to_string(), "ca"),
    ];
    for (tls, key) in cases {
        let cfg = config(dir.path(), "fakopp_x", &tls);
        let out = schema_apply(&cfg);
        let err = stderr(&out);
        assert_eq!(out.status.code(), Some(2), "{tls}: {err}");
        assert!(
            err.contains(key) && err.contains("tls.toml"),
            "{tls}: {err}"
        );
    }
}
