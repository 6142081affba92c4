//! C-STORE to a PACS (DICOM PS3.7 C-STORE over a PS3.8 association,
//! dicom-ul), and the spool that keeps every object until the PACS has it.
//!
//! [`Spool`]: objects are written into a folder under increasing sequence
//! numbers (`00000001-<SOP Instance UID>.dcm`, written to a temporary name
//! and renamed, so a crash never leaves half a file under a real name);
//! [`store_pending`] sends them in that order over one association and
//! removes each file only once the PACS answered success (or a warning). A
//! PACS that cannot be reached leaves the spool as it is, to be sent when it
//! returns; an object the PACS refuses (its SOP class not accepted, a failure
//! status) is moved to `refused/` with the reason beside it, so it neither
//! blocks the queue nor is lost.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::Duration;

use dicom_core::{DataElement, PrimitiveValue, Tag, VR};
use dicom_dictionary_std::tags;
use dicom_encoding::TransferSyntaxIndex;
use dicom_object::{open_file, InMemDicomObject};
use dicom_transfer_syntax_registry::TransferSyntaxRegistry;
use dicom_ul::pdu::{PDataValue, PDataValueType, Pdu, PresentationContextResultReason};
use dicom_ul::ClientAssociationOptions;

use crate::elements::{EXPLICIT_VR_LE, IMPLICIT_VR_LE};
use crate::{write_part10, DicomFile, ExportError, COMPREHENSIVE_SR_STORAGE, US_IMAGE_STORAGE};

/// C-STORE-RQ.
const C_STORE_RQ: u16 = 0x0001;
/// Command Data Set Type: a data set follows.
const WITH_DATASET: u16 = 0x0000;

/// Where objects go.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PacsTarget {
    /// host:port of its DICOM port.
    pub address: String,
    pub called_ae: String,
    pub calling_ae: String,
    /// Connection, read and write timeout.
    pub timeout: Duration,
}

#[derive(Debug, thiserror::Error)]
pub enum PacsError {
    #[error("cannot reach the PACS {called}@{address}: {cause}")]
    Unreachable {
        called: String,
        address: String,
        cause: String,
    },
    #[error("the PACS {called}@{address} broke off the transfer: {cause}")]
    Transfer {
        called: String,
        address: String,
        cause: String,
    },
    #[error("the spool {path}: {cause}")]
    Spool { path: PathBuf, cause: String },
}

/// What one pass over the spool did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct StorePass {
    /// Files the PACS acknowledged (removed from the spool), in order.
    pub stored: Vec<String>,
    /// Files it refused (moved to refused/), each with why.
    pub refused: Vec<(String, String)>,
}

/// A folder of objects waiting for the PACS.
#[derive(Debug, Clone)]
pub struct Spool {
    dir: PathBuf,
    next: u64,
}

impl Spool {
    /// Opens (creates) the spool at `dir`; numbering goes on after what is
    /// already there (objects left by an earlier run are sent first).
    pub fn open(dir: &Path) -> Result<Self, ExportError> {
        std::fs::create_dir_all(dir.join("refused")).map_err(|e| ExportError::Write {
            path: dir.to_path_buf(),
            cause: e.to_string(),
        })?;
        let last = pending(dir)
            .unwrap_or_default()
            .iter()
            .filter_map(|p| {
                p.file_name()?
                    .to_str()?
                    .split('-')
                    .next()?
                    .parse::<u64>()
                    .ok()
            })
            .max()
            .unwrap_or(0);
        Ok(Self {
            dir: dir.to_path_buf(),
            next: last + 1,
        })
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Writes `object` into the spool; its path. A full disk fails here,
    /// naming the file, and leaves nothing half-written under a real name.
    pub fn put(&mut self, object: &DicomFile) -> Result<PathBuf, ExportError> {
        let tmp = self.dir.join(".incoming");
        std::fs::create_dir_all(&tmp).map_err(|e| ExportError::Write {
            path: tmp.clone(),
            cause: e.to_string(),
        })?;
        let written = match write_part10(object, &tmp) {
            Ok(path) => path,
            Err(e) => {
                // A full disk: nothing half-written stays behind.
                let name = object
                    .meta()
                    .media_storage_sop_instance_uid()
                    .trim_end_matches('\0');
                let _ = std::fs::remove_file(tmp.join(format!("{name}.dcm")));
                return Err(e);
            }
        };
        let name = format!(
            "{:08}-{}",
            self.next,
            written
                .file_name()
                .and_then(|n| n.to_str())
                .unwrap_or("object.dcm")
        );
        let path = self.dir.join(name);
        std::fs::rename(&written, &path).map_err(|e| ExportError::Write {
            path: path.clone(),
            cause: e.to_string(),
        })?;
        self.next += 1;
        Ok(path)
    }
}

/// The spool's files waiting to be sent, oldest first.
pub fn pending(dir: &Path) -> std::io::Result<Vec<PathBuf>> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.is_file() && p.extension().is_some_and(|x| x == "dcm"))
        .collect();
    files.sort();
    Ok(files)
}

/// Sends every file waiting in `spool` to `target` over one association,
/// in order. Unreachable: nothing changes (try again later). A refused
/// object goes to refused/ and the pass goes on.
pub fn store_pending(spool: &Path, target: &PacsTarget) -> Result<StorePass, PacsError> {
    let files = pending(spool).map_err(|e| PacsError::Spool {
        path: spool.to_path_buf(),
        cause: e.to_string(),
    })?;
    let mut pass = StorePass::default();
    if files.is_empty() {
        return Ok(pass);
    }
    let unreachable = |cause: String| PacsError::Unreachable {
        called: target.called_ae.clone(),
        address: target.address.clone(),
        cause,
    };
    let broke = |cause: String| PacsError::Transfer {
        called: target.called_ae.clone(),
        address: target.address.clone(),
        cause,
    };
    let mut options = ClientAssociationOptions::new()
        .calling_ae_title(target.calling_ae.clone())
        .called_ae_title(target.called_ae.clone())
        .connection_timeout(target.timeout)
        .read_timeout(target.timeout)
        .write_timeout(target.timeout);
    for class in [US_IMAGE_STORAGE, COMPREHENSIVE_SR_STORAGE] {
        options = options.with_presentation_context(class, vec![EXPLICIT_VR_LE, IMPLICIT_VR_LE]);
    }
    let mut association = options
        .establish(target.address.as_str())
        .map_err(|e| unreachable(e.to_string()))?;
    let contexts = association.presentation_contexts().to_vec();
    for (n, file) in files.iter().enumerate() {
        let name = file
            .file_name()
            .and_then(|n| n.to_str())
            .unwrap_or_default()
            .to_owned();
        let object = match open_file(file) {
            Ok(o) => o,
            Err(e) => {
                refuse(spool, file, &format!("unreadable: {e}"));
                pass.refused.push((name, format!("unreadable: {e}")));
                continue;
            }
        };
        let class = object
            .meta()
            .media_storage_sop_class_uid()
            .trim_end_matches('\0')
            .to_owned();
        let instance = object
            .meta()
            .media_storage_sop_instance_uid()
            .trim_end_matches('\0')
            .to_owned();
        let Some(pc) = contexts.iter().find(|c| {
            c.abstract_syntax.trim_end_matches('\0') == class
                && c.reason == PresentationContextResultReason::Acceptance
        }) else {
            let why = format!("the PACS accepts no presentation context for SOP class {class}");
            refuse(spool, file, &why);
            pass.refused.push((name, why));
            continue;
        };
        let message_id = u16::try_from(n % 0xFFFF).unwrap_or(0) + 1;
        let command = store_command(&class, &instance, message_id).map_err(broke)?;
        let ts_uid = pc.transfer_syntax.trim_end_matches('\0');
        let ts = TransferSyntaxRegistry
            .get(ts_uid)
            .ok_or_else(|| broke(format!("unknown transfer syntax {ts_uid}")))?;
        let mut data = Vec::new();
        object
            .write_dataset_with_ts(&mut data, ts)
            .map_err(|e| broke(format!("encoding {name}: {e}")))?;
        association
            .send(&Pdu::PData {
                data: vec![PDataValue {
                    presentation_context_id: pc.id,
                    value_type: PDataValueType::Command,
                    is_last: true,
                    data: command,
                }],
            })
            .map_err(|e| broke(e.to_string()))?;
        {
            let mut writer = association.send_pdata(pc.id);
            writer.write_all(&data).map_err(|e| broke(e.to_string()))?;
            writer.finish().map_err(|e| broke(e.to_string()))?;
        }
        let status = match association.receive().map_err(|e| broke(e.to_string()))? {
            Pdu::PData { data } => data
                .first()
                .and_then(|v| response_status(&v.data))
                .ok_or_else(|| broke("a C-STORE response without a status".into()))?,
            other => return Err(broke(format!("expected a C-STORE response, got {other:?}"))),
        };
        // 0x0000 success; 0xB000, 0xB006, 0xB007: stored with a warning.
        if status == 0 || status & 0xF000 == 0xB000 {
            std::fs::remove_file(file).map_err(|e| PacsError::Spool {
                path: file.clone(),
                cause: e.to_string(),
            })?;
            pass.stored.push(name);
        } else {
            let why = format!("the PACS answered status 0x{status:04X} (failure)");
            refuse(spool, file, &why);
            pass.refused.push((name, why));
        }
    }
    let _ = association.release();
    Ok(pass)
}

/// Moves a refused file to refused/ with its reason beside it.
fn refuse(spool: &Path, file: &Path, why: &str) {
    let Some(name) = file.file_name() else {
        return;
    };
    let to = spool.join("refused").join(name);
    if std::fs::rename(file, &to).is_ok() {
        let _ = std::fs::write(to.with_extension("why.txt"), why);
    }
    tracing::warn!(file = %file.display(), "the PACS refused an object: {why}");
}

/// A C-STORE-RQ command set, Implicit VR Little Endian, group length first.
fn store_command(class: &str, instance: &str, message_id: u16) -> Result<Vec<u8>, String> {
    let us = |tag: Tag, v: u16| DataElement::new(tag, VR::US, PrimitiveValue::from(v));
    let ui = |tag: Tag, v: &str| DataElement::new(tag, VR::UI, PrimitiveValue::from(v));
    let body = InMemDicomObject::from_element_iter([
        ui(tags::AFFECTED_SOP_CLASS_UID, class),
        us(tags::COMMAND_FIELD, C_STORE_RQ),
        us(tags::MESSAGE_ID, message_id),
        us(tags::PRIORITY, 0),
        us(tags::COMMAND_DATA_SET_TYPE, WITH_DATASET),
        ui(tags::AFFECTED_SOP_INSTANCE_UID, instance),
    ]);
    let implicit = TransferSyntaxRegistry
        .get(IMPLICIT_VR_LE)
        .ok_or("Implicit VR Little Endian is not in the registry")?;
    let mut rest = Vec::new();
    body.write_dataset_with_ts(&mut rest, implicit)
        .map_err(|e| e.to_string())?;
    let length = u32::try_from(rest.len()).map_err(|e| e.to_string())?;
    let mut command = Vec::with_capacity(rest.len() + 12);
    InMemDicomObject::from_element_iter([DataElement::new(
        tags::COMMAND_GROUP_LENGTH,
        VR::UL,
        PrimitiveValue::from(length),
    )])
    .write_dataset_with_ts(&mut command, implicit)
    .map_err(|e| e.to_string())?;
    command.extend_from_slice(&rest);
    Ok(command)
}

/// The Status (0000,0900) of a response command set.
fn response_status(command: &[u8]) -> Option<u16> {
    let implicit = TransferSyntaxRegistry.get(IMPLICIT_VR_LE)?;
    let set = InMemDicomObject::read_dataset_with_ts(command, implicit).ok()?;
    set.element(tags::STATUS).ok()?.to_int::<u16>().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_store_command_reads_back_with_its_group_length() {
        let command = store_command("1.2.3", "1.2.3.4", 7).expect("command");
        let implicit = TransferSyntaxRegistry.get(IMPLICIT_VR_LE).expect("ts");
        let set = InMemDicomObject::read_dataset_with_ts(&command[..], implicit).expect("reads");
        let length = set
            .element(tags::COMMAND_GROUP_LENGTH)
            .expect("group length")
            .to_int::<u32>()
            .expect("UL");
        assert_eq!(
            length as usize,
            command.len() - 12,
            "everything after the group length"
        );
        assert_eq!(
            set.element(tags::MESSAGE_ID)
                .expect("id")
                .to_int::<u16>()
                .ok(),
            Some(7)
        );
    }
}
