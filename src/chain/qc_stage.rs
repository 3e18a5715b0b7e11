//! The QC part of a chain: every QARTOD step of the chain flags the same
//! readings (in a chain with trace operators, as the steps before it left
//! them); their flags come out with different latencies (spike looks one
//! reading ahead), so readings wait here until every test has flagged
//! them, then leave as one row with all flags and the aggregate.

use crate::config::Step;
use anyhow::Result;
use fakopp_kernels::qc::{self, Flag, QcStream};
use serde::{Deserialize, Serialize};
use std::collections::VecDeque;
use std::sync::Arc;

#[derive(Debug, Clone, Serialize, Deserialize)]
pub enum QcTest {
    GrossRange(qc::GrossRangeState),
    Spike(qc::SpikeState),
    RateOfChange(qc::RateOfChangeState),
    FlatLine(qc::FlatLineState),
    AttenuatedSignal(qc::AttenuatedSignalState),
    Climatology(qc::ClimatologyState),
    TimeGap(qc::TimeGapState),
    ImpossibleDate(qc::ImpossibleDateState),
    DataReception(qc::DataReceptionState),
    PercentileRange(qc::PercentileRangeState),
    /// `location` / `location_bounds` at the sensor's station.
    Position(qc::FixedPositionState),
    // Last: checkpoints name variants by index. Batch-only, so no
    // checkpoint holds one.
    Syntax(qc::SyntaxState),
}

impl QcTest {
    /// The test of `step` for readings `interval_ns` apart (nominal) of a
    /// sensor at `(lon, lat)` (NaN when unknown) whose readings' raw text is
    /// `raw_texts` (if the source kept it), or `None` if the step is not a
    /// QC test.
    pub fn build(
        step: &Step,
        interval_ns: Option<i64>,
        (lon, lat): (f64, f64),
        raw_texts: Option<&Arc<qc::RawTexts>>,
    ) -> Result<Option<QcTest>> {
        let need_interval = || {
            interval_ns.ok_or_else(|| {
                anyhow::anyhow!(
                    "{} needs a sampling interval and the series has none \
                     (irregular readings: set nominal_interval_s on the chain)",
                    step.op()
                )
            })
        };
        Ok(Some(match step {
            Step::GrossRange(c) => QcTest::GrossRange(qc::GrossRangeState::new(c)?),
            Step::Spike(c) => QcTest::Spike(qc::SpikeState::new(c)?),
            Step::RateOfChange(c) => QcTest::RateOfChange(qc::RateOfChangeState::new(c)?),
            Step::FlatLine(c) => QcTest::FlatLine(qc::FlatLineState::new(c, need_interval()?)?),
            Step::AttenuatedSignal(c) => {
                QcTest::AttenuatedSignal(qc::AttenuatedSignalState::new(c, interval_ns)?)
            }
            Step::Climatology(c) => QcTest::Climatology(qc::ClimatologyState::new(c)?),
            Step::TimeGap(c) => QcTest::TimeGap(qc::TimeGapState::new(c)?),
            Step::ImpossibleDate(c) => QcTest::ImpossibleDate(qc::ImpossibleDateState::new(
                &c.kernel().map_err(anyhow::Error::msg)?,
            )?),
            Step::DataReception(c) => QcTest::DataReception(qc::DataReceptionState::new(
                &c.kernel().map_err(anyhow::Error::msg)?,
            )?),
            Step::PercentileRange(c) => QcTest::PercentileRange(qc::PercentileRangeState::new(c)?),
            Step::Syntax(c) => {
                QcTest::Syntax(qc::SyntaxState::new(c, raw_texts.cloned(), interval_ns)?)
            }
            Step::Location(c) => QcTest::Position(qc::FixedPositionState::location(c, lon, lat)?),
            Step::LocationBounds(c) => {
                QcTest::Position(qc::FixedPositionState::bounds(c, lon, lat)?)
            }
            _ => return Ok(None),
        }))
    }

    fn stream(&mut self) -> &mut dyn QcStream {
        match self {
            QcTest::GrossRange(s) => s,
            QcTest::Spike(s) => s,
            QcTest::RateOfChange(s) => s,
            QcTest::FlatLine(s) => s,
            QcTest::AttenuatedSignal(s) => s,
            QcTest::Climatology(s) => s,
            QcTest::TimeGap(s) => s,
            QcTest::ImpossibleDate(s) => s,
            QcTest::DataReception(s) => s,
            QcTest::PercentileRange(s) => s,
            QcTest::Syntax(s) => s,
            QcTest::Position(s) => s,
        }
    }
}

/// A reading waiting for its flags.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct Pending {
    index: u64,
    time_ns: i64,
    value: f64,
}

/// A finished QC row: reading number, time, value, flags in step order, aggregate.
pub type QcRow = (u64, i64, f64, Vec<u8>, u8);

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct QcStage {
    tests: Vec<QcTest>,
    /// Flags emitted but not yet matched, one queue per test.
    flags: Vec<VecDeque<Flag>>,
    pending: VecDeque<Pending>,
    next_index: u64,
    #[serde(skip)]
    scratch: Vec<Flag>,
}

impl QcStage {
    pub fn add(&mut self, t: QcTest) {
        self.tests.push(t);
        self.flags.push(VecDeque::new());
    }

    pub fn is_empty(&self) -> bool {
        self.tests.is_empty()
    }

    /// Feeds one QC step (`test`) with the chunk. Every test must be fed
    /// the same chunk before [`QcStage::drain`].
    pub fn push_test(&mut self, test: usize, times_ns: &[i64], values: &[f64]) -> Result<()> {
        self.scratch.clear();
        self.tests[test]
            .stream()
            .push(times_ns, values, &mut self.scratch)?;
        self.flags[test].extend(self.scratch.drain(..));
        Ok(())
    }

    /// Records the chunk's readings (call once per chunk, with the values
    /// as the first QC step saw them).
    pub fn note_readings(&mut self, times_ns: &[i64], values: &[f64]) {
        for (&t, &v) in times_ns.iter().zip(values) {
            self.pending.push_back(Pending {
                index: self.next_index,
                time_ns: t,
                value: v,
            });
            self.next_index += 1;
        }
    }

    /// Moves every reading that all tests have flagged to `out`.
    pub fn drain(&mut self, out: &mut Vec<QcRow>) {
        while !self.pending.is_empty() && self.flags.iter().all(|q| !q.is_empty()) {
            let p = self.pending.pop_front().expect("checked non-empty");
            let flags: Vec<Flag> = self
                .flags
                .iter_mut()
                .map(|q| q.pop_front().expect("checked non-empty"))
                .collect();
            let agg = Flag::aggregate(flags.iter().copied()).as_u8();
            out.push((
                p.index,
                p.time_ns,
                p.value,
                flags.iter().map(|f| f.as_u8()).collect(),
                agg,
            ));
        }
    }

    /// End of the series: flushes every test and drains all readings.
    pub fn finish(&mut self, out: &mut Vec<QcRow>) {
        for (t, q) in self.tests.iter_mut().zip(self.flags.iter_mut()) {
            self.scratch.clear();
            t.stream().finish(&mut self.scratch);
            q.extend(self.scratch.drain(..));
        }
        self.drain(out);
        debug_assert!(
            self.pending.is_empty(),
            "every QC test flags every reading at finish"
        );
    }
}
