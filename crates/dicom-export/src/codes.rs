//! The coded concepts the SR uses, each with where it comes from.
//!
//! - DCM: DICOM PS3.16 Annex D (the DICOM Controlled Terminology), as TID
//!   1500 "Measurement Report" and TID 1001 "Observation Context" use them.
//! - SCT: SNOMED CT, as DICOM PS3.16 lists them: the axes from CID 7470
//!   "Linear Measurements", the findings (Lesion, Cyst, Mass) and the
//!   procedure (Ultrasonography).
//! - UCUM: the unit "mm" (CID 7200s).
//! - 99SONOFLOW: sonoflow's own (private) scheme, used only where we could not
//!   vouch for a standard code: the BI-RADS-style descriptors, the caliper
//!   uncertainty and the "not for diagnosis" notice. docs/dicom.md lists them.

/// A coded concept: value, scheme, meaning.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Code {
    pub value: &'static str,
    pub scheme: &'static str,
    pub meaning: &'static str,
}

const fn code(value: &'static str, scheme: &'static str, meaning: &'static str) -> Code {
    Code {
        value,
        scheme,
        meaning,
    }
}

/// The private scheme of the concepts below that have no standard code.
pub const PRIVATE_SCHEME: &str = "99SONOFLOW";

// TID 1500 and its sub-templates (DCM).
pub const IMAGING_MEASUREMENT_REPORT: Code = code("126000", "DCM", "Imaging Measurement Report");
pub const LANGUAGE: Code = code("121049", "DCM", "Language of Content Item and Descendants");
pub const ENGLISH: Code = code("en", "RFC5646", "English");
pub const OBSERVER_TYPE: Code = code("121005", "DCM", "Observer Type");
pub const DEVICE: Code = code("121007", "DCM", "Device");
pub const DEVICE_OBSERVER_UID: Code = code("121012", "DCM", "Device Observer UID");
pub const DEVICE_OBSERVER_NAME: Code = code("121013", "DCM", "Device Observer Name");
pub const PROCEDURE_REPORTED: Code = code("121058", "DCM", "Procedure reported");
pub const ULTRASONOGRAPHY: Code = code("16310003", "SCT", "Ultrasonography");
pub const IMAGE_LIBRARY: Code = code("111028", "DCM", "Image Library");
pub const IMAGE_LIBRARY_GROUP: Code = code("126200", "DCM", "Image Library Group");
pub const IMAGING_MEASUREMENTS: Code = code("126010", "DCM", "Imaging Measurements");
pub const MEASUREMENT_GROUP: Code = code("125007", "DCM", "Measurement Group");
pub const TRACKING_IDENTIFIER: Code = code("112039", "DCM", "Tracking Identifier");
pub const TRACKING_UID: Code = code("112040", "DCM", "Tracking Unique Identifier");
pub const FINDING: Code = code("121071", "DCM", "Finding");
pub const IMAGE_REGION: Code = code("111030", "DCM", "Image Region");
pub const IMPRESSION: Code = code("121073", "DCM", "Impression");
pub const QUALITATIVE_EVALUATIONS: Code = code("C0034375", "UMLS", "Qualitative Evaluations");

// Measurements (SCT, CID 7470) and their unit (UCUM).
pub const LONG_AXIS: Code = code("103339001", "SCT", "Long Axis");
pub const SHORT_AXIS: Code = code("103340004", "SCT", "Short Axis");
pub const MILLIMETRE: Code = code("mm", "UCUM", "millimeter");

// Findings (SCT).
pub const LESION: Code = code("52988006", "SCT", "Lesion");
pub const CYST: Code = code("441457006", "SCT", "Cyst");
pub const MASS: Code = code("4147007", "SCT", "Mass");

// Ours (99SONOFLOW).
pub const CALIPER_UNCERTAINTY: Code = code(
    "CALIPER-UNC",
    PRIVATE_SCHEME,
    "Caliper uncertainty (plus or minus)",
);
pub const NOT_FOR_DIAGNOSIS: Code = code("NOT-FOR-DX", PRIVATE_SCHEME, "Not for diagnosis");

/// The finding code for the model's word for a finding.
pub fn finding(label: &str) -> Code {
    match label.trim().to_ascii_lowercase().as_str() {
        "cyst" => CYST,
        "mass" => MASS,
        _ => LESION,
    }
}

/// A descriptor name ("shape") as a private concept name; its value
/// ("oval") is written as a private code too (BI-RADS words, not codes).
pub fn descriptor(name: &str) -> (String, String) {
    let value = format!(
        "DESC-{}",
        name.trim().to_ascii_uppercase().replace(' ', "-")
    );
    (value, name.trim().to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_model_words_map_to_snomed_findings() {
        assert_eq!(finding("Cyst"), CYST);
        assert_eq!(finding("mass"), MASS);
        assert_eq!(finding("lesion"), LESION);
        assert_eq!(finding("anything else"), LESION);
        assert_eq!(descriptor("echo pattern").0, "DESC-ECHO-PATTERN");
    }
}
