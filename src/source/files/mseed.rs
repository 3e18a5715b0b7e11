//! MiniSEED 2 and 3 input through libmseed (the `mseed` crate).
//!
//! The file is read whole and walked record by record with libmseed's
//! detection and parser, so every record's index and byte offset is known
//! and a bad record can be reported and skipped. Every data encoding
//! libmseed decodes is read (Steim-1/2, int16/32, float32/64 and the legacy
//! GEOSCOPE, CDSN, SRO and DWWSSN encodings). Skipped on purpose and counted
//! in the file report: blank/noise records, SEED control headers (full SEED
//! volumes), text (log) records and records without samples. Bad: a block
//! that is no record, a truncated record, an unknown encoding, a record that
//! does not decode or whose CRC (miniSEED 3) is wrong, a sample rate of 0
//! with samples, a source id that is no valid `NET.STA.LOC.CHA`.
//!
//! libmseed's own messages are captured (not printed) and become the reason
//! of a bad record; warnings for records that were read anyway (e.g. a
//! Steim integrity check) are logged with `tracing::warn!`.

use std::cell::RefCell;
use std::collections::{BTreeMap, HashMap};
use std::ffi::{c_char, c_int, CStr};
use std::path::Path;

use mseed::{MSControlFlags, MSRecord, MSSampleType};

use super::mapped::FileBytes;
use super::{BadRecord, FileReport, InputFormat, RawFile, SensorData};
use crate::assemble::{same_rate, PieceBuf};
use crate::model::valid_sensor_id;

/// Smallest record libmseed parses (`MINRECLEN`).
const MIN_RECLEN: usize = 40;

extern "C" {
    // libmseed's per-thread logging setup (linked through the `mseed` crate).
    fn ms_rloginit(
        log_print: Option<extern "C" fn(*const c_char)>,
        logprefix: *const c_char,
        diag_print: Option<extern "C" fn(*const c_char)>,
        errprefix: *const c_char,
        maxmessages: c_int,
    );
}

thread_local! {
    static LIBMSEED_MESSAGES: RefCell<Vec<String>> = const { RefCell::new(Vec::new()) };
}

extern "C" fn capture_message(msg: *const c_char) {
    if msg.is_null() {
        return;
    }
    // SAFETY: libmseed passes a NUL-terminated message buffer.
    let text = unsafe { CStr::from_ptr(msg) }
        .to_string_lossy()
        .trim()
        .to_string();
    LIBMSEED_MESSAGES.with(|m| {
        let mut m = m.borrow_mut();
        if m.len() < 64 {
            m.push(text);
        }
    });
}

/// Routes libmseed's messages on this thread into [`LIBMSEED_MESSAGES`].
fn capture_libmseed_messages() {
    // SAFETY: plain setter of thread-local parameters; the prefixes are
    // static NUL-terminated strings.
    unsafe {
        ms_rloginit(
            Some(capture_message),
            c"".as_ptr(),
            Some(capture_message),
            c"".as_ptr(),
            0,
        )
    };
}

fn take_messages() -> Vec<String> {
    LIBMSEED_MESSAGES.with(|m| std::mem::take(&mut *m.borrow_mut()))
}

/// True when `head` starts with a miniSEED 2 or 3 record header or a SEED
/// control header (a full SEED volume).
pub fn looks_like_mseed(head: &[u8]) -> bool {
    head.len() >= MIN_RECLEN
        && (detect_version(head).is_some() || non_data_block(head) == Some(CONTROL_HEADER))
}

/// The format version of a record header at the start of `buf`, if any.
fn detect_version(buf: &[u8]) -> Option<u8> {
    if buf.len() < MIN_RECLEN {
        return None;
    }
    // Only the header is examined for the version; a short window keeps the
    // miniSEED 2 search for the next header from scanning the whole file.
    match mseed::detect(&buf[..buf.len().min(MIN_RECLEN.max(64))]) {
        Ok(d) if d.format_version == 2 || d.format_version == 3 => Some(d.format_version),
        _ => None,
    }
}

const CONTROL_HEADER: &str = "SEED control header record";

/// A blank ("noise") record or a SEED control header: six digits or
/// spaces, then a blank or a control type (`V`, `A`, `S`, `T`) and a space
/// or `*`.
fn non_data_block(buf: &[u8]) -> Option<&'static str> {
    if buf.len() < 8 || !buf[..6].iter().all(|c| c.is_ascii_digit() || *c == b' ') {
        return None;
    }
    match (buf[6], buf[7]) {
        (b' ', _)
            if buf[6..buf.len().min(48)]
                .iter()
                .all(|c| *c == b' ' || *c == 0) =>
        {
            Some("blank (noise) record")
        }
        (b'V' | b'A' | b'S' | b'T', b' ' | b'*') => Some(CONTROL_HEADER),
        _ => None,
    }
}

/// Offset of the next miniSEED record header after `from`: the next
/// 64-byte boundary (relative to `from`) for blocks of a SEED volume, else
/// any byte position where libmseed detects a record.
fn next_header(buf: &[u8], from: usize, aligned: bool) -> usize {
    let step = if aligned { 64 } else { 1 };
    let mut at = from + step;
    while at + MIN_RECLEN <= buf.len() {
        if detect_version(&buf[at..]).is_some() {
            return at;
        }
        at += step;
    }
    buf.len()
}

/// Converts libmseed's source identifier (`FDSN:NET_STA_LOC_B_S_SS`) to a
/// sensor id `NET.STA.LOC.CHA`.
fn sensor_id(sid: &str) -> Result<String, String> {
    let bare = sid
        .strip_prefix("FDSN:")
        .map(|s| s.rsplit(':').next().unwrap_or(s))
        .ok_or_else(|| format!("source identifier `{sid}` is not an FDSN source identifier"))?;
    let parts: Vec<&str> = bare.split('_').collect();
    if parts.len() != 6 {
        return Err(format!(
            "source identifier `{sid}` does not have six `_`-separated parts"
        ));
    }
    let cha = if parts[3..].iter().all(|p| p.len() == 1) {
        parts[3..].concat()
    } else {
        parts[3..].join("_")
    };
    let id = format!("{}.{}.{}.{}", parts[0], parts[1], parts[2], cha);
    valid_sensor_id(&id)?;
    Ok(id)
}

/// A record's decoded samples, in libmseed's sample type.
enum Samples<'a> {
    I32(&'a [i32]),
    F32(&'a [f32]),
    F64(&'a [f64]),
}

impl Samples<'_> {
    fn len(&self) -> usize {
        match self {
            Samples::I32(s) => s.len(),
            Samples::F32(s) => s.len(),
            Samples::F64(s) => s.len(),
        }
    }

    /// Appends the samples as f64 (exact for every type).
    fn append_to(&self, out: &mut Vec<f64>) {
        match self {
            Samples::I32(s) => out.extend(s.iter().map(|&x| f64::from(x))),
            Samples::F32(s) => out.extend(s.iter().map(|&x| f64::from(x))),
            Samples::F64(s) => out.extend_from_slice(s),
        }
    }
}

/// What one parsed record holds.
enum RecordContent<'a> {
    Data {
        sid: String,
        rate: f64,
        start_ns: i64,
        samples: Samples<'a>,
    },
    Skip(&'static str),
}

fn record_content(msr: &MSRecord) -> Result<RecordContent<'_>, String> {
    let declared = msr.sample_cnt();
    if declared == 0 {
        return Ok(RecordContent::Skip("record without samples"));
    }
    let n = msr.num_samples();
    let kind = msr.sample_type();
    if kind == MSSampleType::Text {
        return Ok(RecordContent::Skip(
            "text (ASCII) record: log or message channel",
        ));
    }
    if n != declared {
        return Err(format!(
            "decoded {n} samples but the header declares {declared}"
        ));
    }
    let samples = match kind {
        MSSampleType::Integer32 => msr.data_samples::<i32>().map(Samples::I32),
        MSSampleType::Float32 => msr.data_samples::<f32>().map(Samples::F32),
        MSSampleType::Float64 => msr.data_samples::<f64>().map(Samples::F64),
        _ => None,
    }
    .ok_or_else(|| {
        let enc = msr
            .encoding()
            .map(|e| e.to_string())
            .unwrap_or_else(|e| e.message().to_string());
        format!("samples could not be decoded (encoding: {enc})")
    })?;
    debug_assert_eq!(samples.len() as i64, n);
    let sid = msr.sid_lossy();
    let rate = msr.sample_rate_hz();
    if !(rate.is_finite() && rate > 0.0) {
        let id = sensor_id(&sid).unwrap_or(sid);
        return Err(format!(
            "sample rate {rate} Hz with {n} samples (sensor {id})"
        ));
    }
    let start = msr
        .start_time()
        .map_err(|e| format!("invalid start time: {}", e.message()))?;
    let start_ns = i64::try_from(start.unix_timestamp_nanos())
        .map_err(|_| "start time out of range".to_string())?;
    Ok(RecordContent::Data {
        sid,
        rate,
        start_ns,
        samples,
    })
}

/// One sensor's data in the file so far.
struct SensorAcc {
    id: String,
    rates: Vec<f64>,
    pieces: PieceBuf,
}

/// The file's sensors, found by libmseed source id; each id is converted
/// (and checked) once, not per record.
#[derive(Default)]
struct Sensors {
    by_sid: HashMap<String, Result<usize, String>>,
    list: Vec<SensorAcc>,
}

impl Sensors {
    fn get(&mut self, sid: String) -> Result<&mut SensorAcc, String> {
        let list = &mut self.list;
        let slot = self.by_sid.entry(sid).or_insert_with_key(|sid| {
            let id = sensor_id(sid)?;
            // Source ids that differ only in ways the sensor id drops.
            if let Some(i) = list.iter().position(|a| a.id == id) {
                return Ok(i);
            }
            list.push(SensorAcc {
                id,
                rates: Vec::new(),
                pieces: PieceBuf::default(),
            });
            Ok(list.len() - 1)
        });
        match slot {
            Ok(i) => Ok(&mut self.list[*i]),
            Err(e) => Err(e.clone()),
        }
    }
}

fn reason_with_messages(reason: String) -> String {
    let msgs = take_messages();
    if msgs.is_empty() {
        reason
    } else {
        format!("{reason} (libmseed: {})", msgs.join("; "))
    }
}

/// Reads a MiniSEED (2 or 3) file: every data record becomes a piece of
/// its sensor. Without `keep_going` the first bad record is an error (its
/// [`BadRecord`] is the error's source).
pub fn read_mseed(path: &Path, keep_going: bool) -> anyhow::Result<RawFile> {
    let buf = FileBytes::open(path)?;
    read_mseed_bytes(path, &buf, keep_going)
}

/// [`read_mseed`] on the bytes of a file (`path` names it in messages).
pub fn read_mseed_bytes(path: &Path, buf: &[u8], keep_going: bool) -> anyhow::Result<RawFile> {
    capture_libmseed_messages();
    take_messages();
    let mut sensors = Sensors::default();
    let mut report = FileReport {
        path: path.to_path_buf(),
        format: InputFormat::MiniSeed,
        records: 0,
        samples: 0,
        sensors: 0,
        skipped: BTreeMap::new(),
        bad: 0,
    };
    let mut bad = Vec::new();
    let fail = |bad: &mut Vec<BadRecord>,
                index: u64,
                offset: usize,
                reason: String|
     -> anyhow::Result<()> {
        let rec = BadRecord {
            file: path.to_path_buf(),
            format: InputFormat::MiniSeed,
            record: index,
            offset: offset as u64,
            reason,
        };
        if !keep_going {
            return Err(anyhow::Error::new(rec));
        }
        tracing::warn!("skipping bad MiniSEED record: {rec}");
        bad.push(rec);
        Ok(())
    };
    if buf.is_empty() {
        fail(&mut bad, 0, 0, "empty file: no MiniSEED records".into())?;
    }
    let flags = MSControlFlags::MSF_UNPACKDATA
        | MSControlFlags::MSF_VALIDATECRC
        | MSControlFlags::MSF_ATENDOFFILE;
    let mut offset = 0usize;
    let mut index = 0u64;
    while offset < buf.len() {
        let rest = &buf[offset..];
        if let Some(what) = non_data_block(rest).filter(|_| detect_version(rest).is_none()) {
            *report.skipped.entry(what.to_string()).or_default() += 1;
            offset = next_header(buf, offset, true);
            index += 1;
            continue;
        }
        if rest.len() < MIN_RECLEN || detect_version(rest).is_none() {
            let next = next_header(buf, offset, false);
            let reason = if rest.iter().all(|&b| b == 0) {
                format!("{} trailing zero byte(s) after the last record", rest.len())
            } else if next == buf.len() {
                format!(
                    "{} byte(s) that are not a MiniSEED record, up to the end of the file",
                    next - offset
                )
            } else {
                format!(
                    "{} byte(s) that are not a MiniSEED record, before the next record header",
                    next - offset
                )
            };
            fail(&mut bad, index, offset, reason)?;
            offset = next;
            index += 1;
            continue;
        }
        take_messages();
        if let Ok(det) = mseed::detect(rest) {
            if let Some(len) = det.rec_len.filter(|&l| l as usize > rest.len()) {
                fail(
                    &mut bad,
                    index,
                    offset,
                    format!(
                        "truncated record: miniSEED {} record of {len} bytes, only {} bytes left",
                        det.format_version,
                        rest.len()
                    ),
                )?;
                break;
            }
        }
        let parsed = MSRecord::parse(rest, flags);
        let reclen = parsed
            .as_ref()
            .ok()
            .and_then(|m| m.raw())
            .map_or(0, <[u8]>::len);
        match parsed {
            Err(e) => {
                let msgs = take_messages();
                let why = if msgs.is_empty() {
                    e.message().to_string()
                } else {
                    msgs.join("; ")
                };
                let reason = format!("record does not decode: {why}");
                fail(&mut bad, index, offset, reason)?;
                // Skip at least the record's header; resynchronise on the next one.
                offset = next_header(buf, offset, false);
            }
            Ok(_) if reclen == 0 => {
                let reason = reason_with_messages(
                    "record length unknown: no blockette 1000 and no following record header"
                        .to_string(),
                );
                fail(&mut bad, index, offset, reason)?;
                offset = next_header(buf, offset, false);
            }
            Ok(msr) => {
                offset += reclen;
                let data = match record_content(&msr) {
                    Ok(RecordContent::Skip(why)) => {
                        take_messages();
                        *report.skipped.entry(why.to_string()).or_default() += 1;
                        Ok(None)
                    }
                    Ok(RecordContent::Data {
                        sid,
                        rate,
                        start_ns,
                        samples,
                    }) => sensors
                        .get(sid)
                        .map(|acc| Some((acc, rate, start_ns, samples))),
                    Err(reason) => Err(reason),
                };
                match data {
                    Ok(Some((acc, rate, start_ns, samples))) => {
                        for w in take_messages() {
                            tracing::warn!(
                                "{}: record {index} (byte offset {}): libmseed: {w}",
                                path.display(),
                                offset - reclen
                            );
                        }
                        report.records += 1;
                        report.samples += samples.len() as u64;
                        if !acc.rates.iter().any(|r| same_rate(*r, rate)) {
                            acc.rates.push(rate);
                        }
                        acc.pieces.push_with(start_ns, |buf| samples.append_to(buf));
                    }
                    Ok(None) => {}
                    Err(reason) => fail(
                        &mut bad,
                        index,
                        offset - reclen,
                        reason_with_messages(reason),
                    )?,
                }
            }
        }
        index += 1;
    }
    let text_only = report.skipped.keys().any(|k| k.starts_with("text"));
    if report.records == 0 && !text_only && !buf.is_empty() && bad.is_empty() {
        let what: Vec<String> = report
            .skipped
            .iter()
            .map(|(k, n)| format!("{n} {k}"))
            .collect();
        let what = if what.is_empty() {
            String::new()
        } else {
            format!(" (only: {})", what.join(", "))
        };
        fail(
            &mut bad,
            0,
            0,
            format!("no MiniSEED data records in the file{what}"),
        )?;
    }
    report.bad = bad.len() as u64;
    report.sensors = sensors.list.len() as u64;
    Ok(RawFile {
        sensors: sensors
            .list
            .into_iter()
            .map(|a| {
                let data = SensorData::Pieces {
                    rates: a.rates,
                    pieces: a.pieces,
                };
                (a.id, data)
            })
            .collect(),
        bad,
        report,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn source_ids_become_sensor_ids() {
        assert_eq!(sensor_id("FDSN:GB_CWF__H_H_Z").unwrap(), "GB.CWF..HHZ");
        assert_eq!(
            sensor_id("FDSN:IU_COLA_00_L_H_1").unwrap(),
            "IU.COLA.00.LH1"
        );
        assert!(sensor_id("FDSN:__A_C_N_Z").unwrap_err().contains("network"));
        assert!(sensor_id("XFDSN:IU_COLA_00_L_H_1").is_err());
        assert!(sensor_id("FDSN:IU_COLA_00_LH1").is_err());
    }

    #[test]
    fn blank_and_control_blocks() {
        let mut blank = b"000012 ".to_vec();
        blank.resize(64, b' ');
        assert_eq!(non_data_block(&blank), Some("blank (noise) record"));
        assert_eq!(
            non_data_block(b"000001V 011  21 "),
            Some("SEED control header record")
        );
        assert_eq!(non_data_block(b"000001D MOX  HHZ"), None);
    }
}
