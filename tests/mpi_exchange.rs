//! Real MPI ranks: `mpirun -n 3 fakopp selftest mpi` scatters
//! variable-length f64 buffers from rank 0 to every rank and gathers them
//! back, every value checked on both sides.

mod common;
use common::*;

/// `mpirun -n ranks fakopp selftest mpi` (with `limit` as the MPI message
/// limit, if any): its report.
fn selftest(ranks: usize, limit: Option<&str>) -> String {
    let mut c = mpirun(ranks);
    if let Some(l) = limit {
        c.env("FAKOPP_MPI_MESSAGE_LIMIT", l);
    }
    let out = c
        .arg(env!("CARGO_BIN_EXE_fakopp"))
        .args(["selftest", "mpi"])
        .output()
        .expect("mpirun (scripts/bootstrap installs it)");
    let stdout = String::from_utf8_lossy(&out.stdout).trim().to_string();
    assert!(
        out.status.success(),
        "mpirun failed: {}\n{stdout}",
        stderr(&out)
    );
    stdout
}

#[test]
fn scatterv_gatherv_round_trip_on_three_ranks() {
    // Only rank 0 reports; 17 + 0 + (17 + 2026) values.
    assert_eq!(
        selftest(3, None),
        "mpi selftest: 3 ranks, 2060 f64 values scattered and gathered intact"
    );
}

/// MPI counts are C `int`s: an exchange larger than one message carries is
/// split into rounds. With the limit lowered to 7 elements, the same
/// buffers go in hundreds of rounds and still arrive intact.
#[test]
fn exchanges_over_the_message_limit_are_split_not_truncated() {
    assert_eq!(
        selftest(3, Some("7")),
        "mpi selftest: 3 ranks, 2060 f64 values scattered and gathered intact"
    );
}

/// One rank under mpirun: every exchange is rank 0 with itself, empty
/// ones included.
#[test]
fn one_rank_under_mpirun_exchanges_with_itself() {
    assert_eq!(
        selftest(1, None),
        "mpi selftest: 1 ranks, 17 f64 values scattered and gathered intact"
    );
}

#[test]
fn without_mpirun_it_is_one_rank() {
    let out = fakopp().args(["selftest", "mpi"]).output().unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(String::from_utf8_lossy(&out.stdout).contains("a world of one rank"));
}
