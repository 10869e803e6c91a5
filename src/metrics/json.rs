//! Metrics as JSON. JSON has no infinity, and `null` for both ∞ and NaN
//! made a structure the model missed (HD95 = ∞) read like one that does not
//! apply (NaN): ∞ is written `"inf"` (−∞ `"-inf"`), NaN `null`.

use super::Evaluation;

/// Serialise a metric for JSON, keeping the empty-mask policy readable:
/// NaN (the structure is in neither map: does not apply) is `null`, +∞ (in
/// one map only: HD95/ASSD of a missed structure) is `"inf"` and −∞
/// `"-inf"`, since JSON has no infinity and `null` for both made a missed
/// structure read like an absent one.
pub fn json_float<S: serde::Serializer>(x: &f64, s: S) -> Result<S::Ok, S::Error> {
    if x.is_nan() {
        s.serialize_none()
    } else if x.is_infinite() {
        s.serialize_str(if *x > 0.0 { "inf" } else { "-inf" })
    } else {
        s.serialize_f64(*x)
    }
}

/// [`json_float`] as a JSON value (for JSON built by hand).
pub fn json_value(x: f64) -> serde_json::Value {
    json_float(&x, serde_json::value::Serializer).unwrap_or(serde_json::Value::Null)
}

/// An evaluation as pretty JSON, with [`json_float`]'s policy.
pub fn to_json(e: &Evaluation) -> Result<Vec<u8>, serde_json::Error> {
    serde_json::to_vec_pretty(e)
}
