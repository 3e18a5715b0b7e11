//! MiniSEED 2 and 3 input through libmseed (the `mseed` crate).
//!
//! The file is read whole and walked record by record with libmseed's
//! detection and parser, so every record's index and byte offset is known
//! and a bad record can be reported and skipped. Every data encoding
//! libmseed decodes is read (Steim-1/2, int16/32, float32/64 and the legacy
//! GEOSCOPE, CDSN, SRO and DWWSSN encodings). Steim-1/2, nearly every
//! seismic archive, are decoded by [`super::steim`] straight into the
//! sensor's sample buffer (equal to libmseed's decoding, tested against it
//! on packed and on damaged records); the rest by libmseed. Skipped on purpose and counted
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

use mseed::{MSControlFlags, MSDataEncoding, MSRecord, MSSampleType};

use super::mapped::FileBytes;
use super::steim;
use super::{BadRecord, FileReport, InputFormat, RawFile, SensorData, Want};
use crate::assemble::{same_rate, PieceBuf};
use crate::model::valid_sensor_id;

/// libmseed's `swapflag` bits: the header / the payload needed byte swapping.
const MSSWAP_HEADER: u8 = 0x01;
const MSSWAP_PAYLOAD: u8 = 0x02;

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

/// A record's samples as libmseed decoded them, in its sample type.
enum Samples<'a> {
    I32(&'a [i32]),
    F32(&'a [f32]),
    F64(&'a [f64]),
}

impl Samples<'_> {
    /// Appends the samples as f64 (exact for every type; a NaN becomes
    /// the canonical one, see [`crate::model::NOT_RECORDED`]).
    fn append_to(&self, out: &mut Vec<f64>) {
        use crate::model::canonical_nan;
        match self {
            Samples::I32(s) => out.extend(s.iter().map(|&x| f64::from(x))),
            Samples::F32(s) => out.extend(s.iter().map(|&x| canonical_nan(f64::from(x)))),
            Samples::F64(s) => out.extend(s.iter().map(|&x| canonical_nan(x))),
        }
    }
}

/// The checked header of a data record.
struct Header {
    sid: String,
    rate: f64,
    start_ns: i64,
    declared: usize,
}

enum RecordKind {
    Data(Header),
    Skip(&'static str),
}

fn header(msr: &MSRecord) -> Result<RecordKind, String> {
    let declared = msr.sample_cnt();
    if declared == 0 {
        return Ok(RecordKind::Skip("record without samples"));
    }
    if matches!(msr.encoding(), Ok(MSDataEncoding::Text)) {
        return Ok(RecordKind::Skip(
            "text (ASCII) record: log or message channel",
        ));
    }
    let declared = usize::try_from(declared)
        .ok()
        .filter(|&n| n <= i32::MAX as usize)
        .ok_or_else(|| format!("the header declares {declared} samples"))?;
    let sid = msr.sid_lossy();
    let rate = msr.sample_rate_hz();
    if !(rate.is_finite() && rate > 0.0) {
        let id = sensor_id(&sid).unwrap_or(sid);
        return Err(format!(
            "sample rate {rate} Hz with {declared} samples (sensor {id})"
        ));
    }
    let start = msr
        .start_time()
        .map_err(|e| format!("invalid start time: {}", e.message()))?;
    let start_ns = i64::try_from(start.unix_timestamp_nanos())
        .map_err(|_| "start time out of range".to_string())?;
    Ok(RecordKind::Data(Header {
        sid,
        rate,
        start_ns,
        declared,
    }))
}

/// Where a record's encoded samples are (offset and length within the
/// record) and whether they are big-endian, as libmseed works them out
/// (`msr3_data_bounds`: trailing empty Steim frames excluded; the byte
/// order of blockette 1000 or, for miniSEED 3 Steim, big-endian).
fn payload_bounds(msr: MSRecord) -> (MSRecord, Result<(usize, usize, bool), String>) {
    let record_len = msr.raw().map_or(0, <[u8]>::len);
    let ptr = msr.into_raw();
    // SAFETY: `ptr` is the live record `into_raw` just released; it is
    // only read here and taken back by `from_raw` below. `record` points
    // at `record_len` readable bytes; 48 are read only if there are 48.
    let bounds = unsafe {
        let r = &*ptr;
        let (mut offset, mut size) = (0u32, 0u32);
        // miniSEED 2 takes the data offset from the header unchecked, and
        // libmseed's bounds would then run past the record (a size that
        // wraps below zero): check it first. (miniSEED 3 derives both from
        // the header lengths that make up the record length.)
        let v2_offset = (r.formatversion == 2 && record_len >= 48).then(|| {
            let b = std::slice::from_raw_parts(r.record as *const u8, 48);
            let v = [b[44], b[45]];
            // Big-endian header: swapped on a little-endian host.
            if (r.swapflag & MSSWAP_HEADER != 0) != cfg!(target_endian = "big") {
                u16::from_be_bytes(v)
            } else {
                u16::from_le_bytes(v)
            }
        });
        match v2_offset {
            Some(o) if usize::from(o) < 48 || usize::from(o) >= record_len => Err(format!(
                "data offset {o} is not within the record of {record_len} bytes"
            )),
            _ if r.formatversion == 2 && record_len < 48 => {
                Err(format!("record of {record_len} bytes has no data"))
            }
            _ if libmseed_sys::msr3_data_bounds(ptr, &mut offset, &mut size) != 0 => {
                Err("cannot locate the data payload".to_string())
            }
            _ => {
                let swapped = r.swapflag & MSSWAP_PAYLOAD != 0;
                Ok((
                    offset as usize,
                    size as usize,
                    swapped != cfg!(target_endian = "big"),
                ))
            }
        }
    };
    // SAFETY: taking back the record released above, once.
    (unsafe { MSRecord::from_raw(ptr) }, bounds)
}

/// Decodes a record's samples onto `out`: Steim-1/2 with [`steim`], every
/// other encoding through libmseed. On error nothing is appended. Returns
/// a warning for a record that was read anyway.
fn decode_into(
    msr: MSRecord,
    declared: usize,
    out: &mut Vec<f64>,
) -> Result<Option<String>, String> {
    let start = out.len();
    let level = match msr.encoding() {
        Ok(MSDataEncoding::Steim1) => Some(steim::Level::One),
        Ok(MSDataEncoding::Steim2) => Some(steim::Level::Two),
        _ => None,
    };
    let (decoded, warning) = if let Some(level) = level {
        let (msr, bounds) = payload_bounds(msr);
        let (offset, size, big_endian) = bounds?;
        let record = msr.raw().unwrap_or_default();
        if offset < MIN_RECLEN || offset >= record.len() || offset + size > record.len() {
            return Err(format!(
                "data offset {offset} (size {size}) is not valid for a record of {} bytes",
                record.len()
            ));
        }
        let d = steim::decode(
            &record[offset..offset + size],
            level,
            big_endian,
            declared,
            out,
        )
        .map_err(|e| format!("record does not decode: {e}"))?;
        (d.samples, d.warning)
    } else {
        let mut msr = msr;
        if let Err(e) = msr.unpack_data() {
            let msgs = take_messages();
            let why = if msgs.is_empty() {
                e.message().to_string()
            } else {
                msgs.join("; ")
            };
            return Err(format!("record does not decode: {why}"));
        }
        let n = usize::try_from(msr.num_samples()).unwrap_or(0);
        if n == declared {
            let samples = match msr.sample_type() {
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
            samples.append_to(out);
        }
        (n, None)
    };
    if decoded != declared {
        out.truncate(start);
        return Err(format!(
            "decoded {decoded} samples but the header declares {declared}"
        ));
    }
    Ok(warning)
}

/// What [`read_record`] did with a parsed record.
enum Read {
    Data {
        samples: usize,
        warning: Option<String>,
    },
    /// A good header of a sensor this read does not keep: not decoded.
    Unwanted,
    Skip(&'static str),
}

/// Checks a parsed record and decodes its samples onto its sensor's pieces.
fn read_record(msr: MSRecord, sensors: &mut Sensors, want: Want<'_>) -> Result<Read, String> {
    let h = match header(&msr)? {
        RecordKind::Skip(why) => return Ok(Read::Skip(why)),
        RecordKind::Data(h) => h,
    };
    // A damaged header may declare far more samples than the record can
    // hold (Steim-2: 7 per 4 bytes); the count only weighs the sensor when
    // sensors are split over ranks.
    let most = 2 * msr.raw().map_or(0, <[u8]>::len) as u64;
    let acc = sensors.get(h.sid)?;
    acc.declared += (h.declared as u64).min(most);
    if !want.keeps(&acc.id) {
        return Ok(Read::Unwanted);
    }
    let mut decoded = Ok(None);
    acc.pieces.push_with(h.start_ns, |buf| {
        decoded = decode_into(msr, h.declared, buf)
    });
    let warning = decoded?;
    if !acc.rates.iter().any(|r| same_rate(*r, h.rate)) {
        acc.rates.push(h.rate);
    }
    Ok(Read::Data {
        samples: h.declared,
        warning,
    })
}

/// One sensor's data in the file so far.
struct SensorAcc {
    id: String,
    /// Samples its good record headers declare (decoded or not).
    declared: u64,
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
                declared: 0,
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
pub fn read_mseed(path: &Path, keep_going: bool, want: Want<'_>) -> anyhow::Result<RawFile> {
    let buf = FileBytes::open(path)?;
    read_mseed_bytes(path, &buf, keep_going, want)
}

/// [`read_mseed`] on the bytes of a file (`path` names it in messages).
pub fn read_mseed_bytes(
    path: &Path,
    buf: &[u8],
    keep_going: bool,
    want: Want<'_>,
) -> anyhow::Result<RawFile> {
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
    // Samples are decoded by `read_record` once the header is checked.
    let flags = MSControlFlags::MSF_VALIDATECRC | MSControlFlags::MSF_ATENDOFFILE;
    let mut offset = 0usize;
    let mut index = 0u64;
    // Good data records of sensors this read does not keep.
    let mut unwanted = 0u64;
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
                let at = offset;
                offset += reclen;
                match read_record(msr, &mut sensors, want) {
                    Ok(Read::Data { samples, warning }) => {
                        for w in take_messages().into_iter().chain(warning) {
                            tracing::warn!(
                                "{}: record {index} (byte offset {at}): {w}",
                                path.display()
                            );
                        }
                        report.records += 1;
                        report.samples += samples as u64;
                    }
                    Ok(Read::Skip(why)) => {
                        take_messages();
                        *report.skipped.entry(why.to_string()).or_default() += 1;
                    }
                    Ok(Read::Unwanted) => {
                        take_messages();
                        unwanted += 1;
                    }
                    Err(reason) => fail(&mut bad, index, at, reason_with_messages(reason))?,
                }
            }
        }
        index += 1;
    }
    let text_only = report.skipped.keys().any(|k| k.starts_with("text"));
    if report.records + unwanted == 0 && !text_only && !buf.is_empty() && bad.is_empty() {
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
    let counts = sensors
        .list
        .iter()
        .filter(|a| a.declared > 0)
        .map(|a| (a.id.clone(), a.declared))
        .collect();
    // Sensors kept with at least one decoded record.
    let kept: BTreeMap<String, SensorData> = sensors
        .list
        .into_iter()
        .filter(|a| a.pieces.pieces() > 0)
        .map(|a| {
            let data = SensorData::Pieces {
                rates: a.rates,
                pieces: a.pieces,
            };
            (a.id, data)
        })
        .collect();
    report.sensors = kept.len() as u64;
    Ok(RawFile {
        sensors: kept,
        counts,
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

    fn xorshift(seed: u64) -> impl FnMut() -> u64 {
        let mut s = seed | 1;
        move || {
            s ^= s << 13;
            s ^= s >> 7;
            s ^= s << 17;
            s
        }
    }

    /// Records libmseed packs from `samples`.
    fn packed(samples: &[i32], enc: MSDataEncoding, version: u8, reclen: i32) -> Vec<Vec<u8>> {
        let mut info = mseed::PackInfo::new("FDSN:XX_TEST__H_H_Z").unwrap();
        info.sample_rate = 100.0;
        info.encoding = enc;
        info.rec_len = reclen;
        info.format_version = version;
        let start = time::OffsetDateTime::from_unix_timestamp(1_200_000_000).unwrap();
        let mut records = Vec::new();
        let mut data = samples.to_vec();
        let flags = if version == 2 {
            MSControlFlags::MSF_FLUSHDATA | MSControlFlags::MSF_PACKVER2
        } else {
            MSControlFlags::MSF_FLUSHDATA
        };
        mseed::pack_raw(
            &mut data,
            &start,
            |r: &[u8]| records.push(r.to_vec()),
            &info,
            flags,
        )
        .unwrap();
        records
    }

    /// libmseed's decoding of a record: the samples, or an error (also when
    /// it decodes fewer samples than the header declares).
    fn libmseed(rec: &[u8]) -> Result<Vec<i32>, ()> {
        let flags = MSControlFlags::MSF_UNPACKDATA | MSControlFlags::MSF_VALIDATECRC;
        let msr = MSRecord::parse(rec, flags).map_err(|_| ())?;
        if msr.num_samples() != msr.sample_cnt() {
            return Err(());
        }
        Ok(msr.data_samples::<i32>().ok_or(())?.to_vec())
    }

    /// Ours: the reader's decoding of the same record.
    fn ours(rec: &[u8]) -> Result<Vec<i32>, String> {
        let msr =
            MSRecord::parse(rec, MSControlFlags::MSF_VALIDATECRC).map_err(|e| e.to_string())?;
        let declared = msr.sample_cnt() as usize;
        let mut out = vec![1.5]; // must stay untouched on error
        let r = decode_into(msr, declared, &mut out);
        if r.is_err() {
            assert_eq!(out, [1.5], "nothing appended on error");
        }
        r?;
        Ok(out[1..].iter().map(|&v| v as i32).collect())
    }

    #[test]
    fn steim_decoding_equals_libmseed() {
        // A random walk whose steps switch between magnitudes, so that
        // every Steim field width is used (4..30 bits; 8/16/32 for Steim-1).
        let mut rnd = xorshift(42);
        let mut v = 0i64;
        let samples: Vec<i32> = (0..20_000)
            .map(|i| {
                let mag = [3u32, 4, 5, 7, 9, 14, 15, 20, 26][(i / 97) % 9];
                let step = (rnd() % (2u64 << mag)) as i64 - (1i64 << mag);
                v = (v + step).clamp(-(1 << 27), 1 << 27);
                v as i32
            })
            .collect();
        let _ = take_messages();
        for version in [2u8, 3] {
            for enc in [MSDataEncoding::Steim1, MSDataEncoding::Steim2] {
                for reclen in [512, 4096] {
                    let records = packed(&samples, enc, version, reclen);
                    let mut all = Vec::new();
                    for rec in &records {
                        let want = libmseed(rec).expect("libmseed reads its own record");
                        let got = ours(rec).unwrap_or_else(|e| panic!("{enc:?} v{version}: {e}"));
                        assert_eq!(got, want, "{enc:?} v{version} {reclen}");
                        all.extend(got);
                    }
                    assert_eq!(all, samples, "{enc:?} v{version} {reclen}: round trip");
                }
            }
        }
        // A data offset beyond the record: an error, not a read past it
        // (libmseed's own bounds would wrap; it is not asked here).
        let mut rec = packed(&samples, MSDataEncoding::Steim2, 2, 512).remove(0);
        rec[44..46].copy_from_slice(&576u16.to_be_bytes());
        let err = ours(&rec).unwrap_err();
        assert!(err.contains("data offset 576"), "{err}");
        // Damaged payloads in both byte orders (miniSEED 2: no CRC to stop
        // them): errors, sample counts and values must match libmseed's.
        let mut outcomes = std::collections::BTreeMap::<&str, usize>::new();
        for enc in [MSDataEncoding::Steim1, MSDataEncoding::Steim2] {
            for rec in packed(&samples, enc, 2, 512) {
                let data_at = u16::from_be_bytes([rec[44], rec[45]]) as usize;
                let b1000 = u16::from_be_bytes([rec[46], rec[47]]) as usize;
                for _ in 0..40 {
                    let mut r = rec.clone();
                    r[b1000 + 5] = (rnd() % 2) as u8; // payload byte order
                    for _ in 0..(rnd() % 6) {
                        let at = data_at + (rnd() as usize % (r.len() - data_at));
                        r[at] = rnd() as u8;
                    }
                    let (want, got) = (libmseed(&r), ours(&r));
                    match (&want, &got) {
                        (Ok(w), Ok(g)) => {
                            assert_eq!(g, w);
                            *outcomes.entry("same samples").or_default() += 1;
                        }
                        (Err(()), Err(_)) => *outcomes.entry("both errors").or_default() += 1,
                        _ => panic!("libmseed {want:?} vs ours {got:?}"),
                    }
                    let _ = take_messages();
                }
            }
        }
        assert!(
            outcomes.get("same samples") > Some(&100) && outcomes.get("both errors") > Some(&20),
            "{outcomes:?}"
        );
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
