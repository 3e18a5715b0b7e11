//! Bad configurations exit with code 2 and a message naming the file, the
//! key and the reason (docs/reference.md, "Configuration").

mod common;
use common::*;

fn check(body: &str, expect_key: &str, expect_reason: &str) {
    check_command("run", body, expect_key, expect_reason)
}

/// [`check`] for the command `cmd` (`run` loads a stream config, `batch` a batch one).
fn check_command(cmd: &str, body: &str, expect_key: &str, expect_reason: &str) {
    let dir = tempfile::tempdir().unwrap();
    let cfg = write_config(dir.path(), "job.toml", body);
    let out = fakopp().args([cmd, "--config"]).arg(&cfg).output().unwrap();
    let err = stderr(&out);
    assert_eq!(
        out.status.code(),
        Some(2),
        "exit code for {expect_key}: {err}"
    );
    assert!(err.contains("job.toml"), "message names the file: {err}");
    assert!(
        err.contains(&format!("`{expect_key}`")),
        "message names key {expect_key}: {err}"
    );
    assert!(
        err.contains(expect_reason),
        "message gives the reason `{expect_reason}`: {err}"
    );
}

const CHAIN: &str = "[[chains]]\nname = \"p\"\nselect = [\"GB.*..?HZ\"]\n";

#[test]
fn unknown_key_is_rejected() {
    check(
        "[source]\nkind = \"kafka\"\n[stream]\nbatch_interval = 5\n",
        "stream.batch_interval",
        "unknown field `batch_interval`",
    );
    let body = format!("[source]\nkind = \"kafka\"\n{CHAIN}steps = [{{ op = \"recursive_sta_lta\", sta = 1.0, lat = 10.0 }}]\n");
    check(&body, "chains[0].steps[0]", "unknown field `lat`");
}

#[test]
fn nominal_interval_must_be_positive() {
    let body = format!(
        "[source]\nkind = \"kafka\"\n{CHAIN}nominal_interval_s = -600.0\nsteps = [{{ op = \"gross_range\", fail_span = [0.0, 14.0] }}]\n"
    );
    check(&body, "chains[0].nominal_interval_s", "must be");
}

#[test]
fn unknown_operator_is_rejected() {
    let body = format!("[source]\nkind = \"kafka\"\n{CHAIN}steps = [{{ op = \"bandpas\", freqmin = 1.0, freqmax = 5.0 }}]\n");
    check(&body, "chains[0].steps[0].op", "unknown variant `bandpas`");
}

#[test]
fn wrong_type_is_rejected() {
    check(
        "[source]\nkind = \"kafka\"\n[stream]\nbatch_interval_ms = \"fast\"\n",
        "stream.batch_interval_ms",
        "invalid type: string \"fast\"",
    );
    check(
        "[source]\nkind = \"kafka\"\n[cassandra]\nnodes = \"127.0.0.1:9042\"\n",
        "cassandra.nodes",
        "invalid type",
    );
}

#[test]
fn sta_not_shorter_than_lta_is_rejected() {
    let body = format!("[source]\nkind = \"kafka\"\n{CHAIN}steps = [{{ op = \"recursive_sta_lta\", sta = 10.0, lta = 0.5 }}]\n");
    check(&body, "chains[0].steps[0].sta", "must be shorter than lta");
}

#[test]
fn batch_only_step_in_a_stream_is_rejected() {
    let body = format!("[source]\nkind = \"kafka\"\n{CHAIN}steps = [{{ op = \"bandpass\", freqmin = 1.0, freqmax = 5.0, zerophase = true }}]\n");
    check(&body, "chains[0].steps[0].op", "batch-only");
    let body =
        format!("[source]\nkind = \"kafka\"\n{CHAIN}steps = [{{ op = \"syntax\", nchar = 4 }}]\n");
    check(&body, "chains[0].steps[0].op", "packets do not carry");
}

#[test]
fn bad_syntax_arguments_are_rejected() {
    let body = format!("[source]\nkind = \"files\"\n{CHAIN}steps = [{{ op = \"syntax\", nchar = 4, lentype = \"bit\" }}]\n");
    check_command("batch", &body, "chains[0].steps[0]", "lentype must be");
    let body = format!(
        "[source]\nkind = \"files\"\n{CHAIN}steps = [{{ op = \"syntax\", nchar = nan }}]\n"
    );
    check_command(
        "batch",
        &body,
        "chains[0].steps[0].nchar",
        "not a finite number",
    );
}

#[test]
fn empty_select_and_impossible_values_are_rejected() {
    check("[source]\nkind = \"kafka\"\n[[chains]]\nname = \"p\"\nselect = []\nsteps = [{ op = \"stats\", window = 60.0 }]\n", "chains[0].select", "at least one glob");
    let body = format!("[source]\nkind = \"kafka\"\n{CHAIN}steps = [{{ op = \"bandpass\", freqmin = 10.0, freqmax = 1.0 }}]\n");
    check(&body, "chains[0].steps[0].freqmin", "must be below freqmax");
    check(
        "[source]\nkind = \"kafka\"\n[cassandra]\nkeyspace = \"x; DROP TABLE y\"\n",
        "cassandra.keyspace",
        "not a valid CQL identifier",
    );
}

#[test]
fn coincidence_over_an_unknown_chain_is_rejected() {
    check(
        "[source]\nkind = \"kafka\"\n[[coincidence]]\nchain = \"nope\"\nthreshold_sum = 3\n",
        "coincidence[0].chain",
        "no chain named `nope`",
    );
}

#[test]
fn missing_config_file_is_a_configuration_error() {
    let out = fakopp()
        .args(["batch", "--config", "/nonexistent/fakopp.toml"])
        .output()
        .unwrap();
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(
        err.contains("/nonexistent/fakopp.toml") && err.contains("cannot read the config file"),
        "{err}"
    );
}

#[test]
fn invalid_toml_is_a_configuration_error() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = write_config(dir.path(), "broken.toml", "[source\nkind = 1\n");
    let out = fakopp()
        .args(["run", "--config"])
        .arg(&cfg)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(
        stderr(&out).contains("broken.toml") && stderr(&out).contains("invalid TOML"),
        "{}",
        stderr(&out)
    );
}

#[test]
fn usage_errors_exit_2_and_help_exits_0() {
    let out = fakopp().args(["run"]).output().unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(stderr(&out).contains("--config"));
    let out = fakopp().arg("--help").output().unwrap();
    assert_eq!(out.status.code(), Some(0));
    let help = String::from_utf8_lossy(&out.stdout);
    for sub in ["run", "batch", "produce", "schema", "checkpoint"] {
        assert!(help.contains(sub), "help lists {sub}: {help}");
    }
}

#[test]
fn shipped_example_configs_are_valid() {
    for (name, cmd) in [("stack.toml", "run"), ("local.toml", "batch")] {
        let path = repo().join("configs").join(name);
        let mode = if cmd == "run" {
            fakopp::config::Mode::Stream
        } else {
            fakopp::config::Mode::Batch
        };
        fakopp::config::Config::load(&path, mode).unwrap_or_else(|e| panic!("{name}: {e}"));
    }
}

#[test]
fn a_stream_refuses_the_hdf5_sink_and_a_retirement_inside_the_window() {
    check(
        "[source]\nkind = \"kafka\"\n[sinks]\nkinds = [\"jsonl\", \"hdf5\"]\n",
        "sinks.kinds",
        "is a batch sink",
    );
    check(
        "[source]\nkind = \"kafka\"\n[sinks]\nkinds = [\"jsonl\"]\n[stream]\nreorder_window_s = 10.0\nretire_after_s = 5.0\n",
        "stream.retire_after_s",
        "must exceed stream.reorder_window_s",
    );
    check(
        "[source]\nkind = \"kafka\"\n[sinks]\nkinds = [\"jsonl\"]\n[stream]\nstartup_timeout_s = 0\n",
        "stream.startup_timeout_s",
        "must be a finite number > 0",
    );
}

#[test]
fn properties_the_delivery_protocol_depends_on_are_refused() {
    check(
        "[source]\nkind = \"kafka\"\n[kafka.properties]\n\"enable.auto.commit\" = \"true\"\n",
        "kafka.properties.\"enable.auto.commit\"",
        "offsets are committed only after a checkpoint",
    );
    check(
        "[source]\nkind = \"kafka\"\n[kafka.properties_env]\n\"group.id\" = \"SOME_VAR\"\n",
        "kafka.properties_env.\"group.id\"",
        "is set by kafka.group",
    );
}
