//! DICOM UIDs for one session: a Study, an image Series and an SR Series,
//! and an instance UID for each object, all under one root.
//!
//! The root is configurable (`uid_root`: a hospital's or vendor's registered
//! root); without one, UIDs are `2.25.` and a 128-bit number (ISO/IEC 9834-8,
//! what DICOM PS3.5 B.2 allows without registration), drawn from the session
//! start time, the process and a counter through SHA-256, so two sessions never
//! share one. A UID is at most 64 characters of digits and dots, no component
//! with a leading zero.

use sha2::{Digest, Sha256};

use crate::ExportError;

/// The root used when none is configured: UUID-derived UIDs (PS3.5 B.2).
pub const UUID_ROOT: &str = "2.25";
const MAX_UID: usize = 64;

/// The UIDs of one session.
#[derive(Debug, Clone)]
pub struct SessionUids {
    root: String,
    /// Unique to the session: seeds every UID made under it.
    seed: [u8; 32],
    pub study: String,
    pub image_series: String,
    pub sr_series: String,
    /// The device observer UID of the SR (sonoflow on this machine and run).
    pub device: String,
    next: u64,
}

impl SessionUids {
    /// UIDs for a session under `root` (None: [`UUID_ROOT`]); `salt` makes
    /// this session's UIDs its own (e.g. start time and process id).
    pub fn new(root: Option<&str>, salt: &[u8]) -> Result<Self, ExportError> {
        let root = root.unwrap_or(UUID_ROOT).trim_end_matches('.').to_owned();
        check_uid(&root).map_err(|why| ExportError::UidRoot {
            root: root.clone(),
            why,
        })?;
        let seed: [u8; 32] = Sha256::digest(salt).into();
        let mut uids = Self {
            root,
            seed,
            study: String::new(),
            image_series: String::new(),
            sr_series: String::new(),
            device: String::new(),
            next: 0,
        };
        uids.study = uids.next_uid()?;
        uids.image_series = uids.next_uid()?;
        uids.sr_series = uids.next_uid()?;
        uids.device = uids.next_uid()?;
        Ok(uids)
    }

    /// Files this session's series into an existing study (the DICOM
    /// source's own Study Instance UID), so the PACS shows them beside the
    /// images they were made from.
    pub fn join_study(&mut self, study: &str) -> Result<(), ExportError> {
        let study = study.trim_end_matches(['\0', ' ']);
        check_instance_uid(study).map_err(|why| ExportError::StudyUid {
            uid: study.to_owned(),
            why,
        })?;
        self.study = study.to_owned();
        Ok(())
    }

    /// A new UID for an object of this session.
    pub fn next_uid(&mut self) -> Result<String, ExportError> {
        self.next += 1;
        let mut hash = Sha256::new();
        hash.update(self.seed);
        hash.update(self.next.to_be_bytes());
        let digest: [u8; 32] = hash.finalize().into();
        let uid = if self.root == UUID_ROOT {
            // 128 bits, as a UUID-derived UID carries.
            let n = u128::from_be_bytes(digest[..16].try_into().unwrap_or_default());
            format!("{UUID_ROOT}.{}", n.max(1))
        } else {
            // Under a registered root: as many digits as fit.
            let n = u128::from_be_bytes(digest[..16].try_into().unwrap_or_default());
            let room = MAX_UID.saturating_sub(self.root.len() + 1);
            let digits = n.max(1).to_string();
            let digits = digits[..digits.len().min(room)].trim_start_matches('0');
            format!(
                "{}.{}",
                self.root,
                if digits.is_empty() { "1" } else { digits }
            )
        };
        check_uid(&uid).map_err(|why| ExportError::UidRoot {
            root: self.root.clone(),
            why,
        })?;
        Ok(uid)
    }
}

/// Why `uid` is not a valid DICOM UID (of an existing object), if it is
/// not: digits and dots, at most 64 characters. Leading zeros, which some
/// scanners write, are let through.
fn check_instance_uid(uid: &str) -> Result<(), String> {
    if uid.is_empty() || uid.len() > MAX_UID {
        return Err(format!(
            "{} characters (a UID has 1 to {MAX_UID})",
            uid.len()
        ));
    }
    match uid
        .split('.')
        .find(|p| p.is_empty() || !p.bytes().all(|b| b.is_ascii_digit()))
    {
        Some(part) => Err(format!("component \"{part}\" is not a number")),
        None => Ok(()),
    }
}

/// Why `uid` is not a valid DICOM UID root, if it is not: a valid UID
/// with no leading zeros and room below it for a session's UIDs.
pub fn check_uid(uid: &str) -> Result<(), String> {
    check_instance_uid(uid)?;
    if let Some(part) = uid.split('.').find(|p| p.len() > 1 && p.starts_with('0')) {
        return Err(format!("component \"{part}\" has a leading zero"));
    }
    // Room for at least a session's worth of instance numbers below it.
    if uid.len() > MAX_UID - 8 && uid.split('.').count() < 3 {
        return Err("too long to leave room for the instance numbers below it".into());
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn uuid_rooted_uids_are_valid_distinct_and_per_session() {
        let mut a = SessionUids::new(None, b"session a").expect("uids");
        let b = SessionUids::new(None, b"session b").expect("uids");
        let objects: Vec<String> = (0..100).map(|_| a.next_uid().expect("uid")).collect();
        for uid in objects
            .iter()
            .chain([&a.study, &a.image_series, &a.sr_series])
        {
            assert!(uid.starts_with("2.25."), "{uid}");
            check_uid(uid).expect("valid");
        }
        let mut all = objects.clone();
        all.extend([a.study.clone(), a.image_series.clone(), a.sr_series.clone()]);
        all.sort();
        all.dedup();
        assert_eq!(all.len(), 103, "no UID twice");
        assert_ne!(a.study, b.study, "another session, another study");
    }

    #[test]
    fn a_configured_root_is_kept_and_a_bad_one_is_refused_naming_why() {
        let mut uids = SessionUids::new(Some("1.2.826.0.1.3680043.10.999"), b"s").expect("uids");
        let uid = uids.next_uid().expect("uid");
        assert!(uid.starts_with("1.2.826.0.1.3680043.10.999."), "{uid}");
        assert!(uid.len() <= 64);
        check_uid(&uid).expect("valid");
        let err = SessionUids::new(Some("1.2.03"), b"s").expect_err("leading zero");
        assert!(err.to_string().contains("leading zero"), "{err}");
        let err = SessionUids::new(Some("1.2.abc"), b"s").expect_err("letters");
        assert!(err.to_string().contains("uid_root"), "{err}");
    }

    #[test]
    fn a_source_study_is_joined_and_a_broken_one_refused() {
        let mut uids = SessionUids::new(None, b"s").expect("uids");
        let own = uids.image_series.clone();
        uids.join_study("1.2.840.113619.2.0123.4\0")
            .expect("a scanner's UID");
        assert_eq!(uids.study, "1.2.840.113619.2.0123.4");
        assert_eq!(uids.image_series, own, "the series stay the session's own");
        let err = uids.join_study("1.2.x").expect_err("not a UID");
        assert!(err.to_string().contains("Study Instance UID"), "{err}");
        assert_eq!(
            uids.study, "1.2.840.113619.2.0123.4",
            "unchanged by a refusal"
        );
    }
}
