//! A walk over a DICOM file's element headers before dicom-rs parses it:
//! every defined length must fit in the bytes that follow. dicom-rs sizes
//! its buffers from declared lengths, so a corrupt length in a small file
//! would otherwise allocate gigabytes (found by fuzzing); this keeps
//! allocation bounded by what the file holds.
//!
//! Sequences, items and undefined-length values are stepped into (their
//! contents are elements or items again), everything else is skipped by
//! its length, so the walk is linear in the file size.

/// Check a Part 10 file (preamble, "DICM", meta group, data set).
pub(super) fn check(bytes: &[u8]) -> Result<(), String> {
    if bytes.len() < 132 || &bytes[128..132] != b"DICM" {
        return Err("not a DICOM Part 10 file (no DICM header)".into());
    }
    // The meta group is explicit VR little endian; it names the syntax.
    let mut ts = String::new();
    let data_start = walk(&bytes[132..], true, false, Some(&mut ts))? + 132;
    // dicom-rs reads the meta group by its declared length: if that
    // disagrees with the elements, it would read data set elements as meta
    // elements (and allocate what their bytes say).
    let declared = (
        u16_at(bytes, 132, false),
        u16_at(bytes, 134, false),
        bytes.get(136..138).unwrap_or(&[]),
    );
    if declared == (Some(2), Some(0), b"UL".as_slice()) {
        let len = u32_at(bytes, 140, false).unwrap_or(0) as usize;
        if 144 + len != data_start {
            return Err(format!(
                "the file meta group length (0002,0000) says {len} bytes but its elements take {}",
                data_start.saturating_sub(144)
            ));
        }
    }
    let ts = ts.trim_end_matches(['\0', ' ']);
    if ts == "1.2.840.10008.1.2.1.99" {
        // Deflated explicit VR little endian: inflate (at most 1032:1, the
        // format's limit) and check what dicom-rs will parse.
        use std::io::Read;
        let rest = &bytes[data_start..];
        let mut inflated = Vec::new();
        flate2::read::DeflateDecoder::new(rest)
            .take((rest.len() as u64).saturating_mul(1032))
            .read_to_end(&mut inflated)
            .map_err(|e| format!("deflated data set: {e}"))?;
        return walk(&inflated, true, false, None).map(|_| ());
    }
    let explicit = ts != "1.2.840.10008.1.2";
    let big = ts == "1.2.840.10008.1.2.2";
    walk(&bytes[data_start..], explicit, big, None).map(|_| ())
}

/// Whether the standard dictionary (dicom-rs's) says a tag is a sequence.
fn is_sequence(group: u16, elem: u16) -> bool {
    use dicom_core::dictionary::{DataDictionary, DataDictionaryEntry, VirtualVr};
    dicom_dictionary_std::StandardDataDictionary
        .by_tag(dicom_core::Tag(group, elem))
        .is_some_and(|e| e.vr() == VirtualVr::Exact(dicom_core::VR::SQ))
}

fn u16_at(b: &[u8], at: usize, big: bool) -> Option<u16> {
    let s: [u8; 2] = b.get(at..at + 2)?.try_into().ok()?;
    Some(if big {
        u16::from_be_bytes(s)
    } else {
        u16::from_le_bytes(s)
    })
}

fn u32_at(b: &[u8], at: usize, big: bool) -> Option<u32> {
    let s: [u8; 4] = b.get(at..at + 4)?.try_into().ok()?;
    Some(if big {
        u32::from_be_bytes(s)
    } else {
        u32::from_le_bytes(s)
    })
}

/// Walk elements; with `meta`, only group 2 (collecting the transfer syntax
/// UID) and return where it ends. Returns the offset reached.
fn walk(
    b: &[u8],
    explicit: bool,
    big: bool,
    mut meta: Option<&mut String>,
) -> Result<usize, String> {
    const UNDEFINED: u32 = u32::MAX;
    let mut pos = 0usize;
    // Inside encapsulated pixel data, items are compressed fragments (bytes),
    // not data sets.
    let mut fragments = false;
    while pos + 8 <= b.len() {
        let (Some(group), Some(elem)) = (u16_at(b, pos, big), u16_at(b, pos + 2, big)) else {
            break;
        };
        if meta.is_some() && group != 2 {
            return Ok(pos);
        }
        if group == 0xFFFE {
            // An item: step into a data set, skip a fragment; a delimiter.
            let len = u32_at(b, pos + 4, big).unwrap_or(0);
            pos += 8;
            if elem == 0xE0DD {
                fragments = false;
            } else if !matches!(elem, 0xE000 | 0xE00D) && len != UNDEFINED {
                // Any other (FFFE,xxxx) dicom-rs reads as an element of VR
                // UN with this length (a fuzzed (FFFE,FF0D) in a sequence
                // claimed 3.7 GB).
                let len = len as usize;
                if len > b.len() - pos {
                    return Err(format!(
                        "element (FFFE,{elem:04X}) claims {len} bytes but only {} follow: truncated or corrupt",
                        b.len() - pos
                    ));
                }
                pos += len;
            } else if elem == 0xE000 && fragments && len != UNDEFINED {
                let len = len as usize;
                if len > b.len() - pos {
                    return Err(format!(
                        "a pixel data fragment claims {len} bytes but only {} follow",
                        b.len() - pos
                    ));
                }
                pos += len;
            }
            continue;
        }
        let (len, header, step_into, unit) = if explicit {
            let vr = [b[pos + 4], b[pos + 5]];
            // As dicom-rs reads them: these VRs have a 16-bit length; every
            // other one, unknown VRs included (read as UN), a 32-bit one.
            let long = !matches!(
                &vr,
                b"AE"
                    | b"AS"
                    | b"AT"
                    | b"CS"
                    | b"DA"
                    | b"DS"
                    | b"DT"
                    | b"FL"
                    | b"FD"
                    | b"IS"
                    | b"LO"
                    | b"LT"
                    | b"PN"
                    | b"SH"
                    | b"SL"
                    | b"SS"
                    | b"ST"
                    | b"TM"
                    | b"UI"
                    | b"UL"
                    | b"US"
            );
            if long {
                let len = u32_at(b, pos + 8, big).ok_or("truncated element header")?;
                (len, 12, &vr == b"SQ", value_unit(&vr))
            } else {
                let len = u32::from(u16_at(b, pos + 6, big).unwrap_or(0));
                (len, 8, false, value_unit(&vr))
            }
        } else {
            let unit = dictionary_vr(group, elem).map_or(1, |vr| value_unit(&vr));
            (u32_at(b, pos + 4, big).unwrap_or(0), 8, false, unit)
        };
        pos += header;
        // As dicom-rs decides: only an undefined-length (7FE0,0010) holds
        // fragments; any other undefined-length element, whatever its VR
        // (OB and UN included), is read as a sequence of data-set items in
        // the same encoding (a fuzzed (7F7E,0010) OB walked here as
        // fragments let dicom-rs read an item tag as a 3.7 GB length).
        if len == UNDEFINED && (group, elem) == (0x7FE0, 0x0010) {
            fragments = true;
            continue;
        }
        // Implicit VR hides sequences: dicom-rs knows them from its
        // dictionary and steps in; so does this walk.
        let implicit_sq = !explicit && is_sequence(group, elem);
        if len == UNDEFINED || step_into || implicit_sq {
            continue;
        }
        let len = len as usize;
        if len > b.len() - pos.min(b.len()) {
            return Err(format!(
                "element ({group:04X},{elem:04X}) claims {len} bytes but only {} follow: truncated or corrupt",
                b.len().saturating_sub(pos)
            ));
        }
        if let Some(ts) = meta.as_deref_mut()
            && (group, elem) == (0x0002, 0x0010)
        {
            *ts = String::from_utf8_lossy(&b[pos..pos + len]).to_string();
        }
        // dicom-rs reads binary numbers in whole values and leaves the rest
        // of a length that is not a multiple of the value size unread: the
        // next element header starts there (a fuzzed Modality of VR AT and
        // length 2 put the next header two bytes early, inside a value, whose
        // bytes then read as a 1.4 GB length).
        pos += len - len % unit;
    }
    Ok(pos)
}

/// The size of one value of a binary VR as dicom-rs decodes it (whole
/// values only), 1 for the others.
fn value_unit(vr: &[u8; 2]) -> usize {
    match vr {
        b"US" | b"SS" | b"OW" => 2,
        b"AT" | b"UL" | b"SL" | b"OL" | b"FL" | b"OF" => 4,
        b"FD" | b"OD" | b"SV" | b"UV" | b"OV" => 8,
        _ => 1,
    }
}

/// The VR implicit-VR parsing gives a tag, as dicom-rs resolves it: OW for
/// pixel and overlay data, else its dictionary's VR relaxed to one (OW for
/// "OB or OW", US for "US or SS"), UN for unknown tags.
fn dictionary_vr(group: u16, elem: u16) -> Option<[u8; 2]> {
    use dicom_core::dictionary::{DataDictionary, DataDictionaryEntry};
    if (group, elem) == (0x7FE0, 0x0010) || (group >> 8 == 0x60 && elem == 0x3000) {
        return Some(*b"OW");
    }
    let vr = dicom_dictionary_std::StandardDataDictionary
        .by_tag(dicom_core::Tag(group, elem))
        .map_or(dicom_core::VR::UN, |e| e.vr().relaxed());
    vr.to_string().as_bytes().try_into().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn file(dataset: &[u8]) -> Vec<u8> {
        let mut f = vec![0u8; 128];
        f.extend_from_slice(b"DICM");
        // (0002,0010) UI "1.2.840.10008.1.2.1" (explicit VR LE), padded.
        f.extend_from_slice(&[2, 0, 0x10, 0, b'U', b'I', 20, 0]);
        f.extend_from_slice(b"1.2.840.10008.1.2.1\0");
        f.extend_from_slice(dataset);
        f
    }

    #[test]
    fn a_length_past_the_end_is_refused_and_a_sound_file_passes() {
        // (0010,0010) PN of 4 bytes: fine.
        let ok = file(&[0x10, 0, 0x10, 0, b'P', b'N', 4, 0, b'A', b'^', b'B', b' ']);
        assert!(check(&ok).is_ok());
        // (7FE0,0010) OW claiming 2 GB in a tiny file.
        let bad = file(&[0xE0, 0x7F, 0x10, 0, b'O', b'W', 0, 0, 0, 0, 0, 0x80, 1, 2]);
        let e = check(&bad).unwrap_err();
        assert!(e.contains("(7FE0,0010)") && e.contains("2147483648"), "{e}");
        assert!(check(&ok[..100]).is_err());
    }

    #[test]
    fn binary_values_are_stepped_in_whole_values_as_dicom_rs_reads_them() {
        // (0008,0060) AT of length 2: dicom-rs reads no whole tag and starts
        // the next header at its value, whose bytes "NM" + (0008,0064)...
        // make a UN element with a 1.4 GB length.
        let mut ds = vec![8, 0, 0x60, 0, b'A', b'T', 2, 0, b'N', b'M'];
        ds.extend_from_slice(&[8, 0, 0x64, 0, b'C', b'S', 4, 0, b'W', b'S', b'D', b' ']);
        let e = check(&file(&ds)).unwrap_err();
        assert!(e.contains("(4D4E,0008)"), "{e}");
        // Even lengths read as they say.
        let mut ds = vec![0x28, 0, 0x10, 0, b'U', b'S', 2, 0, 64, 0];
        ds.extend_from_slice(&[0x10, 0, 0x10, 0, b'P', b'N', 4, 0, b'A', b'^', b'B', b' ']);
        assert!(check(&file(&ds)).is_ok());
    }
}
