//! What can go wrong between a source and a frame, each cause its own
//! variant with the facts that explain it: which element, which state
//! change, GStreamer's own error (domain, message, debug detail), the size a
//! buffer had against the size its caps promise.

use gst::prelude::*;
use gstreamer as gst;

/// The whole run's source failed, or one attempt of a live source did.
#[derive(Debug, thiserror::Error)]
pub enum IngestError {
    #[error("GStreamer could not be initialised: {0}")]
    Init(#[source] gst::glib::Error),
    #[error("the source pipeline `{launch}` could not be built: {cause}")]
    Launch { launch: String, cause: BuildError },
    #[error("the source pipeline `{launch}` could not start: {}", describe_start(.error))]
    Start {
        launch: String,
        /// The error GStreamer posted while the state change failed, if any.
        error: Option<BusError>,
    },
    /// GStreamer posted an error on the source pipeline's bus.
    #[error("the source failed: {0}")]
    Failed(BusError),
    /// A live source's stream ended (a cable pulled, a sender stopped).
    #[error("the source failed: the live source ended{rejections}")]
    LiveEnded { rejections: Rejections },
    /// A live source delivered no usable frame for its stall (or startup) timeout.
    #[error("the source failed: no frame for {quiet_ms} ms (limit {limit_ms} ms){rejections}")]
    Stalled {
        quiet_ms: u64,
        limit_ms: u64,
        rejections: Rejections,
    },
    /// A source that plays files (DICOM) has none it can play.
    #[error(
        "no file in {path} can be played{}; fix: point source.path at a DICOM file, or a folder of them, \
         that this build decodes (see docs/sources.md)",
        describe_unplayable(.unplayable)
    )]
    NothingPlayable {
        path: String,
        /// Each file tried (its name, not its folder) and why it cannot play.
        unplayable: Vec<(String, DicomError)>,
    },
    /// An image dataset (`kind = "images"`) that cannot be listed: no such
    /// path, or no image in it (the message names what was looked for and
    /// the fix).
    #[error("source.path: {0}")]
    Dataset(#[source] sonoflow_dataset::DatasetError),
    /// An image dataset none of whose items can be loaded.
    #[error(
        "no image of {path} can be played{}; fix: point source.path at PNG, JPEG or BMP images \
         whose masks (NAME_mask.png) have the image's size and whose sidecars (NAME.json) are \
         valid, or at a phantom export (see docs/sources.md)",
        describe_unloadable(.unplayable)
    )]
    NoPlayableImage {
        path: String,
        /// Each item tried and why it cannot be loaded (each names its file).
        unplayable: Vec<sonoflow_dataset::ItemError>,
    },
    /// A finite source ended after samples of which none could be used.
    #[error(
        "the source delivered {rejected} samples and none could be used as a frame (the last: {last}); \
         check that the source's caps match its buffers (width, height, format, row stride)"
    )]
    Unusable {
        rejected: u64,
        last: Box<SampleError>,
    },
}

impl IngestError {
    /// Worth a restart for a live source (a device or network that may come back).
    pub fn is_transient(&self) -> bool {
        matches!(
            self,
            IngestError::Start { .. }
                | IngestError::Failed(_)
                | IngestError::LiveEnded { .. }
                | IngestError::Stalled { .. }
        )
    }
}

fn describe_unplayable(unplayable: &[(String, DicomError)]) -> String {
    const SHOWN: usize = 8;
    let mut text = String::new();
    for (i, (name, why)) in unplayable.iter().take(SHOWN).enumerate() {
        text.push_str(if i == 0 { ": " } else { "; " });
        text.push_str(&format!("{name}: {why}"));
    }
    if unplayable.len() > SHOWN {
        text.push_str(&format!("; and {} more", unplayable.len() - SHOWN));
    }
    text
}

fn describe_unloadable(unplayable: &[sonoflow_dataset::ItemError]) -> String {
    const SHOWN: usize = 8;
    let mut text = String::new();
    for (i, why) in unplayable.iter().take(SHOWN).enumerate() {
        text.push_str(if i == 0 { ": " } else { "; " });
        text.push_str(&why.to_string());
    }
    if unplayable.len() > SHOWN {
        text.push_str(&format!("; and {} more", unplayable.len() - SHOWN));
    }
    text
}

fn describe_start(error: &Option<BusError>) -> String {
    match error {
        Some(error) => error.to_string(),
        None => "the state change to PLAYING failed".into(),
    }
}

/// Why a source pipeline could not be built from its launch string.
#[derive(Debug, thiserror::Error)]
pub enum BuildError {
    /// GStreamer's parser refused the launch string (an unknown element, a bad property).
    #[error("{0}")]
    Parse(#[source] gst::glib::Error),
    #[error("it built a single element, not a pipeline")]
    NotAPipeline,
    /// An element sonoflow's own part of the pipeline names is not there.
    #[error("it has no {kind} named {name}")]
    MissingElement {
        kind: &'static str,
        name: &'static str,
    },
    #[error("the pipeline has no bus")]
    NoBus,
    /// A value from the definition could not be set as a property.
    #[error("{element}.{property}: {problem}")]
    Property {
        element: &'static str,
        property: &'static str,
        problem: PropertyProblem,
    },
}

/// What is wrong with a property a definition value goes into.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum PropertyProblem {
    #[error("no element of that name")]
    NoElement,
    #[error("the element has no such property")]
    NoProperty,
    #[error("not a string property")]
    NotAString,
}

/// An error message from a pipeline's bus, in its parts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BusError {
    /// Path of the element that posted it (`/GstPipeline:pipeline0/GstFileSrc:filesrc0`).
    pub element: String,
    /// The GLib error domain (`gst-resource-error-quark`, `gst-stream-error-quark`, ...).
    pub domain: String,
    /// GStreamer's message.
    pub message: String,
    /// The element's debug detail, if it gave one.
    pub debug: Option<String>,
}

impl BusError {
    /// The parts of an error message posted on a bus.
    pub fn from_message(msg: &gst::Message, err: &gst::message::Error) -> Self {
        let error = err.error();
        Self {
            element: msg
                .src()
                .map(|s| s.path_string().to_string())
                .unwrap_or_else(|| "pipeline".into()),
            domain: error.domain().as_str().to_string(),
            message: error.message().to_owned(),
            debug: err.debug().map(|d| d.to_string()),
        }
    }
}

impl std::fmt::Display for BusError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match &self.debug {
            Some(debug) => write!(f, "{} (from {}: {debug})", self.message, self.element),
            None => write!(f, "{} (from {})", self.message, self.element),
        }
    }
}

/// Why one sample could not become a frame. The sample is skipped and
/// counted; a source whose every sample is rejected stalls or fails.
#[derive(Debug, thiserror::Error)]
pub enum SampleError {
    #[error("a sample without caps")]
    NoCaps,
    #[error("a sample without a buffer")]
    NoBuffer,
    #[error("unreadable caps {caps}: {cause}")]
    UnreadableCaps {
        caps: String,
        #[source]
        cause: gst::glib::BoolError,
    },
    #[error("unexpected pixel format {format} (GRAY8 or RGBA expected)")]
    PixelFormat { format: String },
    #[error("the caps give an unusable frame size: {0}")]
    Size(#[from] sonoflow_core::FrameFormatError),
    /// GStreamer could not map the buffer as the negotiated video format.
    #[error(
        "a buffer of {buffer_bytes} bytes cannot be read as {width}x{height} {format} \
         ({expected_bytes} bytes, row stride {stride}): {cause}"
    )]
    Unmappable {
        buffer_bytes: usize,
        width: u32,
        height: u32,
        format: &'static str,
        expected_bytes: usize,
        stride: i32,
        #[source]
        cause: gst::glib::BoolError,
    },
    #[error("a negative row stride ({stride})")]
    NegativeStride { stride: i32 },
    #[error("plane 0 cannot be read: {0}")]
    Plane(#[source] gst::glib::BoolError),
    /// The mapped plane holds fewer bytes than its rows need.
    #[error(
        "buffer of {buffer_bytes} bytes (stride {stride}) too small for {width}x{height} \
         ({needed_bytes} bytes needed)"
    )]
    TooSmall {
        buffer_bytes: usize,
        stride: usize,
        width: u32,
        height: u32,
        needed_bytes: usize,
    },
}

/// Why one DICOM file cannot be played. The file is skipped with a warning
/// naming it; the stream goes on with the next.
#[derive(Debug, thiserror::Error)]
pub enum DicomError {
    #[error("the path cannot be read: {0}")]
    Path(#[source] std::io::Error),
    #[error("the folder holds no files")]
    EmptyFolder,
    /// Not a DICOM file, or one cut short before its pixel data.
    #[error("not a readable DICOM file: {0}")]
    Open(#[source] dicom_object::ReadError),
    #[error("unknown transfer syntax {uid}")]
    UnknownTransferSyntax { uid: String },
    /// Known, but this build has no decoder for it (JPEG-LS, JPEG XL, ...).
    #[error(
        "transfer syntax {name} ({uid}) cannot be decoded by this build \
         (it decodes uncompressed, deflated, RLE, JPEG baseline/extended/lossless and JPEG 2000)"
    )]
    UnsupportedTransferSyntax { name: &'static str, uid: String },
    #[error("it has no {0}")]
    Missing(&'static str),
    /// An attribute whose value sonoflow cannot use.
    #[error("{name} is {value}: {expected}")]
    Attribute {
        name: &'static str,
        value: String,
        expected: &'static str,
    },
    #[error("photometric interpretation {photometric} is not supported{detail}")]
    Photometric {
        photometric: String,
        /// A clause starting with ", " or " (", or nothing.
        detail: &'static str,
    },
    #[error("its palette cannot be used: {0}")]
    Palette(&'static str),
    /// Compressed frames that cannot all be found (a file cut short, most often).
    #[error(
        "its pixel data holds {fragments} fragments for {frames} frames, and no offset table \
         that finds each frame (a file cut short?)"
    )]
    Fragments { fragments: usize, frames: u32 },
    #[error("frame {frame} could not be decoded: {cause}")]
    Decode {
        frame: u32,
        #[source]
        cause: dicom_pixeldata::Error,
    },
    #[error("frame {frame} decoded to {got} bytes, {expected} expected")]
    FrameSize {
        frame: u32,
        got: usize,
        expected: usize,
    },
}

/// Samples rejected since the last usable frame, and why the latest was:
/// what a stall or an end adds when samples came but none could be used.
#[derive(Debug, Default)]
pub struct Rejections {
    pub count: u64,
    /// Boxed: an error path, and it keeps [`IngestError`] small.
    pub last: Option<Box<SampleError>>,
}

impl Rejections {
    pub(crate) fn note(&mut self, err: SampleError) {
        self.count += 1;
        self.last = Some(Box::new(err));
    }
}

impl std::fmt::Display for Rejections {
    /// Nothing when no sample was rejected; else a clause that starts with "; ".
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match &self.last {
            Some(last) if self.count > 0 => write!(
                f,
                "; {} samples since the last usable frame were rejected, the last: {last}",
                self.count
            ),
            _ => Ok(()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rejections_add_a_clause_only_when_samples_were_rejected() {
        let none = Rejections::default();
        assert_eq!(none.to_string(), "");
        let mut some = Rejections::default();
        some.note(SampleError::NoCaps);
        some.note(SampleError::TooSmall {
            buffer_bytes: 307_200,
            stride: 644,
            width: 642,
            height: 480,
            needed_bytes: 309_114,
        });
        let err = IngestError::Stalled {
            quiet_ms: 310,
            limit_ms: 300,
            rejections: some,
        };
        assert!(err.is_transient());
        assert_eq!(
            err.to_string(),
            "the source failed: no frame for 310 ms (limit 300 ms); 2 samples since the last usable \
             frame were rejected, the last: buffer of 307200 bytes (stride 644) too small for 642x480 \
             (309114 bytes needed)"
        );
    }

    #[test]
    fn a_start_without_a_bus_error_names_the_state_change() {
        let err = IngestError::Start {
            launch: "videotestsrc".into(),
            error: None,
        };
        assert!(err.is_transient());
        assert_eq!(
            err.to_string(),
            "the source pipeline `videotestsrc` could not start: the state change to PLAYING failed"
        );
        let bus = BusError {
            element: "/GstPipeline:pipeline0/GstFileSrc:src".into(),
            domain: "gst-resource-error-quark".into(),
            message: "Could not open file.".into(),
            debug: None,
        };
        let err = IngestError::Start {
            launch: "filesrc".into(),
            error: Some(bus),
        };
        assert!(err.to_string().ends_with(
            "could not start: Could not open file. (from /GstPipeline:pipeline0/GstFileSrc:src)"
        ));
    }

    #[test]
    fn a_broken_definition_is_not_worth_a_restart() {
        let err = IngestError::Launch {
            launch: "x".into(),
            cause: BuildError::MissingElement {
                kind: "appsink",
                name: "sonoflow_sink",
            },
        };
        assert!(!err.is_transient());
        assert_eq!(
            err.to_string(),
            "the source pipeline `x` could not be built: it has no appsink named sonoflow_sink"
        );
    }
}
