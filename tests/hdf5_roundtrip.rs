//! HDF5: files written atomically read back exactly; a failing writer
//! leaves the previous file untouched; `checkpoint inspect` lists them.

mod common;
use anyhow::Context;
use common::*;
use ndarray::{arr1, Array1};

#[test]
fn atomic_write_and_read_back() {
    fakopp::h5io::disable_file_locking();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("sub").join("t.h5");
    let trace: Array1<f64> = (0..1000).map(|i| (i as f64 * 0.01).sin() * 1e3).collect();
    fakopp::h5io::write_atomic(&path, |f| {
        let g = f.create_group("traces")?;
        let ds = g
            .new_dataset_builder()
            .with_data(&trace)
            .create("XX.STA1..HHZ")?;
        ds.new_attr::<i64>()
            .create("start_time_ns")?
            .write_scalar(&1_714_564_800_000_000_000i64)?;
        fakopp::h5io::set_str_attr(f, "format", "fakopp-test")?;
        Ok(())
    })
    .unwrap();
    let f = hdf5::File::open(&path).unwrap();
    let back: Array1<f64> = f.dataset("traces/XX.STA1..HHZ").unwrap().read_1d().unwrap();
    assert_eq!(back, trace);
    let t0: i64 = f
        .dataset("traces/XX.STA1..HHZ")
        .unwrap()
        .attr("start_time_ns")
        .unwrap()
        .read_scalar()
        .unwrap();
    assert_eq!(t0, 1_714_564_800_000_000_000);
    assert_eq!(fakopp::h5io::str_attr(&f, "format").unwrap(), "fakopp-test");
    drop(f);

    // A writer that fails part-way leaves the old file as it was and no temp file.
    let err = fakopp::h5io::write_atomic(&path, |f| {
        f.new_dataset_builder()
            .with_data(&arr1(&[1.0, 2.0]))
            .create("half")?;
        Err(anyhow::anyhow!("disk full")).context("simulated failure")
    });
    assert!(err.is_err());
    let f = hdf5::File::open(&path).unwrap();
    assert!(f.dataset("half").is_err());
    assert_eq!(
        f.dataset("traces/XX.STA1..HHZ")
            .unwrap()
            .read_1d::<f64>()
            .unwrap(),
        trace
    );
    let leftovers: Vec<_> = std::fs::read_dir(path.parent().unwrap())
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(leftovers.len(), 1, "{leftovers:?}");

    let out = fakopp()
        .args(["checkpoint", "inspect"])
        .arg(&path)
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains("XX.STA1..HHZ")
            && text.contains("[1000]")
            && text.contains("@format = fakopp-test"),
        "{text}"
    );
}

#[test]
fn inspect_of_a_non_hdf5_file_fails_cleanly() {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("not.h5");
    std::fs::write(&p, b"not hdf5 at all").unwrap();
    let out = fakopp()
        .args(["checkpoint", "inspect"])
        .arg(&p)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(stderr(&out).contains("not.h5"), "{}", stderr(&out));
}
