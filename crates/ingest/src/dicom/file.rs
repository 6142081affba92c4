//! One DICOM file as a run of frames: its header is read and checked once
//! when it is opened (transfer syntax, photometric interpretation, sample
//! layout, palette, frame time, calibration), then frames are decoded one at
//! a time, straight into the GStreamer buffer, as 8-bit GRAY8 (MONOCHROME1/2)
//! or RGBA (RGB, YBR_FULL, PALETTE COLOR; YBR_FULL_422, YBR_PARTIAL_420 and
//! YBR_ICT/RCT where the JPEG or JPEG 2000 decoder turns them into RGB).
//!
//! Only the compressed object is held; a 120-frame cine never exists
//! decoded all at once. Pixel samples arrive from `dicom-pixeldata` in the
//! host's byte order, one frame at a time:
//!
//! ```text
//! samples_per_pixel 1:  v v v ...               (1 or 2 bytes each)
//! samples_per_pixel 3:  planar 0: r g b r g b ... | planar 1: r r ... g g ... b b ...
//! ```

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use dicom_core::value::{PrimitiveValue, Value};
use dicom_dictionary_std::tags;
use dicom_encoding::transfer_syntax::{Endianness, TransferSyntaxIndex};
use dicom_object::mem::InMemElement;
use dicom_object::{DefaultDicomObject, InMemDicomObject, Tag};
use dicom_pixeldata::{
    PhotometricInterpretation, PixelDecoder, PixelRepresentation, PlanarConfiguration,
};
use dicom_transfer_syntax_registry::TransferSyntaxRegistry;
use sonoflow_core::{Calibration, PixelFormat};
use tracing::debug_span;

use super::regions::{self, Regions};
use crate::{DicomError, MAX_HEIGHT, MAX_WIDTH};

/// RLE Lossless: encapsulated, but decoded to the samples as stored (no
/// colour conversion), like native pixel data.
const RLE_LOSSLESS: &str = "1.2.840.10008.1.2.5";
/// Encapsulated Uncompressed Explicit VR Little Endian, and Deflated Image
/// Frame Compression: likewise.
const ENCAPSULATED_UNCOMPRESSED: &str = "1.2.840.10008.1.2.1.98";
const DEFLATED_IMAGE_FRAME: &str = "1.2.840.10008.1.2.8.1";

/// The frame rate when a file declares none (a still, or a cine without timing).
pub(crate) const DEFAULT_FPS: u32 = 30;

/// The longest frame time taken from a file; longer is treated as an error in it.
const MAX_FRAME_TIME: Duration = Duration::from_secs(10);

/// A DICOM file opened for playing.
pub(crate) struct DicomFile {
    obj: DefaultDicomObject,
    pub width: u32,
    pub height: u32,
    pub frames: u32,
    /// GRAY8 for monochrome files, RGBA for colour ones.
    pub format: PixelFormat,
    /// The header's photometric interpretation and transfer syntax, for logs.
    pub photometric: String,
    pub transfer_syntax: &'static str,
    /// Time from one frame to the next, and the attribute that said so.
    pub frame_period: Duration,
    pub timing: &'static str,
    /// Shared by every frame of the file; `None`: uncalibrated.
    pub calibration: Option<Arc<Calibration>>,
    /// What the Sequence of Ultrasound Regions gave, to be logged.
    pub regions: Regions,
    conversion: Conversion,
}

/// How decoded samples become output pixels.
enum Conversion {
    /// One sample a pixel to GRAY8.
    Mono { invert: bool },
    /// One sample a pixel, looked up in the palette, to RGBA.
    Palette(Palette),
    /// Three samples a pixel to RGBA; `ybr`: they are YCbCr (full range).
    Colour { ybr: bool },
}

impl DicomFile {
    /// Opens and checks `path`; nothing is decoded yet.
    pub(crate) fn open(path: &Path) -> Result<Self, DicomError> {
        let _span = tracing::info_span!("dicom_open").entered();
        let obj = dicom_object::open_file(path).map_err(DicomError::Open)?;
        let uid = obj
            .meta()
            .transfer_syntax()
            .trim_end_matches(['\0', ' '])
            .to_owned();
        let ts = TransferSyntaxRegistry
            .get(&uid)
            .ok_or_else(|| DicomError::UnknownTransferSyntax { uid: uid.clone() })?;
        if !ts.can_decode_all() {
            return Err(DicomError::UnsupportedTransferSyntax {
                name: ts.name(),
                uid,
            });
        }
        let width = required_uint(&obj, tags::COLUMNS, "Columns")?;
        let height = required_uint(&obj, tags::ROWS, "Rows")?;
        for (name, value, max) in [("Columns", width, MAX_WIDTH), ("Rows", height, MAX_HEIGHT)] {
            if value == 0 || value > max {
                return Err(DicomError::Attribute {
                    name,
                    value: value.to_string(),
                    expected: "sonoflow takes frames from 1x1 to 7680x4320",
                });
            }
        }
        let frames = uint(&obj, tags::NUMBER_OF_FRAMES, "Number of Frames")?.unwrap_or(1);
        if frames == 0 {
            return Err(DicomError::Attribute {
                name: "Number of Frames",
                value: "0".into(),
                expected: "a file must hold at least one frame",
            });
        }
        let pixel_data = obj
            .get(tags::PIXEL_DATA)
            .ok_or(DicomError::Missing("Pixel Data"))?;
        // Compressed frames are found one a fragment, or through the basic
        // offset table; anything else cannot be played frame by frame.
        if let Some(fragments) = pixel_data.fragments() {
            let table = pixel_data.offset_table().map_or(0, <[u32]>::len);
            let findable = match frames {
                1 => !fragments.is_empty(),
                n => fragments.len() == n as usize || table == n as usize,
            };
            if !findable {
                return Err(DicomError::Fragments {
                    fragments: fragments.len(),
                    frames,
                });
            }
        }
        let samples = required_uint(&obj, tags::SAMPLES_PER_PIXEL, "Samples per Pixel")?;
        let bits = required_uint(&obj, tags::BITS_ALLOCATED, "Bits Allocated")?;
        if bits != 8 && bits != 16 {
            return Err(DicomError::Attribute {
                name: "Bits Allocated",
                value: bits.to_string(),
                expected: "8 or 16 bits a sample are supported",
            });
        }
        let photometric = obj
            .get(tags::PHOTOMETRIC_INTERPRETATION)
            .ok_or(DicomError::Missing("Photometric Interpretation"))?
            .to_str()
            .map(|s| s.trim_end_matches(['\0', ' ']).to_owned())
            .unwrap_or_default();
        // Which decoders hand over RGB: JPEG and JPEG 2000 apply the colour
        // transform themselves; RLE and native data come as stored.
        let encapsulated = ts.is_encapsulated_pixel_data();
        let as_stored = !encapsulated
            || [
                RLE_LOSSLESS,
                ENCAPSULATED_UNCOMPRESSED,
                DEFLATED_IMAGE_FRAME,
            ]
            .contains(&uid.as_str());
        let big_endian = ts.endianness() == Endianness::Big;
        let pi = PhotometricInterpretation::from(photometric.clone());
        let wants = |n: u32| -> Result<(), DicomError> {
            if samples == n {
                Ok(())
            } else {
                Err(DicomError::Attribute {
                    name: "Samples per Pixel",
                    value: samples.to_string(),
                    expected: if n == 1 {
                        "monochrome and palette images have 1 sample a pixel"
                    } else {
                        "colour images have 3 samples a pixel"
                    },
                })
            }
        };
        let conversion = match pi {
            PhotometricInterpretation::Monochrome1 | PhotometricInterpretation::Monochrome2 => {
                wants(1)?;
                Conversion::Mono {
                    invert: pi == PhotometricInterpretation::Monochrome1,
                }
            }
            PhotometricInterpretation::PaletteColor => {
                wants(1)?;
                Conversion::Palette(Palette::of(&obj, big_endian)?)
            }
            PhotometricInterpretation::Rgb => {
                wants(3)?;
                Conversion::Colour { ybr: false }
            }
            PhotometricInterpretation::YbrFull => {
                wants(3)?;
                Conversion::Colour { ybr: as_stored }
            }
            PhotometricInterpretation::YbrFull422
            | PhotometricInterpretation::YbrPartial420
            | PhotometricInterpretation::YbrIct
            | PhotometricInterpretation::YbrRct => {
                wants(3)?;
                if as_stored {
                    return Err(DicomError::Photometric {
                        photometric,
                        detail: " uncompressed or RLE (only where a JPEG or JPEG 2000 decoder converts it to RGB)",
                    });
                }
                Conversion::Colour { ybr: false }
            }
            _ => {
                return Err(DicomError::Photometric {
                    photometric,
                    detail: " (MONOCHROME1/2, RGB, PALETTE COLOR and YBR_FULL(_422) are)",
                })
            }
        };
        let format = match conversion {
            Conversion::Mono { .. } => PixelFormat::Gray8,
            Conversion::Palette(_) | Conversion::Colour { .. } => PixelFormat::Rgba,
        };
        let (frame_period, timing) = frame_period(&obj);
        let regions = regions::read(&obj, width, height);
        let calibration = regions.calibration.clone().map(Arc::new);
        Ok(Self {
            obj,
            width,
            height,
            frames,
            format,
            photometric,
            transfer_syntax: ts.name(),
            frame_period,
            timing,
            calibration,
            regions,
            conversion,
        })
    }

    /// Decodes frame `frame` into `out`, rows `stride` bytes apart, in
    /// [`Self::format`].
    pub(crate) fn decode_into(
        &self,
        frame: u32,
        out: &mut [u8],
        stride: usize,
    ) -> Result<(), DicomError> {
        let _span = debug_span!("dicom_decode", frame).entered();
        let decoded = self
            .obj
            .decode_pixel_data_frame(frame)
            .map_err(|cause| DicomError::Decode { frame, cause })?;
        let (w, h) = (self.width as usize, self.height as usize);
        // What the conversion reads, checked against what was decoded: a
        // decoder's surprise is an error, never an index out of bounds.
        let samples = match self.conversion {
            Conversion::Colour { .. } => 3,
            Conversion::Mono { .. } | Conversion::Palette(_) => 1,
        };
        let bytes = usize::from(decoded.bits_allocated().div_ceil(8));
        let expected = w * h * samples * bytes;
        let data = decoded.data();
        let out_row = w * self.format.bytes_per_pixel();
        if usize::from(decoded.samples_per_pixel()) != samples
            || !(bytes == 1 || bytes == 2)
            || data.len() < expected
            || stride < out_row
            || out.len() < stride * (h - 1) + out_row
        {
            return Err(DicomError::FrameSize {
                frame,
                got: data.len(),
                expected,
            });
        }
        let depth = Depth {
            bytes,
            stored: decoded.bits_stored(),
            signed: decoded.pixel_representation() == PixelRepresentation::Signed,
        };
        match &self.conversion {
            Conversion::Mono { invert } => {
                for (y, dst) in out.chunks_mut(stride).take(h).enumerate() {
                    let src = &data[y * w * bytes..(y + 1) * w * bytes];
                    for (d, s) in dst[..w].iter_mut().zip(src.chunks_exact(bytes)) {
                        let v = depth.to_u8(s);
                        *d = if *invert { 255 - v } else { v };
                    }
                }
            }
            Conversion::Palette(palette) => {
                for (y, dst) in out.chunks_mut(stride).take(h).enumerate() {
                    let src = &data[y * w * bytes..(y + 1) * w * bytes];
                    for (d, s) in dst[..w * 4]
                        .chunks_exact_mut(4)
                        .zip(src.chunks_exact(bytes))
                    {
                        let [r, g, b] = palette.lookup(depth.raw(s));
                        d.copy_from_slice(&[r, g, b, 255]);
                    }
                }
            }
            Conversion::Colour { ybr } => {
                let planar = decoded.planar_configuration() == PlanarConfiguration::PixelFirst;
                let plane = w * h * bytes;
                for (y, dst) in out.chunks_mut(stride).take(h).enumerate() {
                    for (x, d) in dst[..w * 4].chunks_exact_mut(4).enumerate() {
                        let i = y * w + x;
                        let at = |c: usize| {
                            let start = if planar {
                                c * plane + i * bytes
                            } else {
                                (i * 3 + c) * bytes
                            };
                            depth.to_u8(&data[start..start + bytes])
                        };
                        let (a, b, c) = (at(0), at(1), at(2));
                        let [r, g, b] = if *ybr { ybr_to_rgb(a, b, c) } else { [a, b, c] };
                        d.copy_from_slice(&[r, g, b, 255]);
                    }
                }
            }
        }
        Ok(())
    }
}

/// Bytes a sample and how many bits of it hold the value.
struct Depth {
    bytes: usize,
    stored: u16,
    signed: bool,
}

impl Depth {
    /// The stored value, unsigned (a signed one offset by half its range).
    fn raw(&self, s: &[u8]) -> u32 {
        let v = match s {
            [a] => u32::from(*a),
            [a, b] => u32::from(u16::from_ne_bytes([*a, *b])),
            _ => 0,
        };
        let bits = u32::from(self.stored.clamp(1, 16)).min(8 * self.bytes as u32);
        let v = v & ((1u32 << bits) - 1);
        if self.signed {
            // Two's complement in `bits` bits, moved up by half the range.
            v ^ (1 << (bits - 1))
        } else {
            v
        }
    }

    /// The value scaled to 8 bits (its top 8 stored bits).
    fn to_u8(&self, s: &[u8]) -> u8 {
        let bits = u32::from(self.stored.clamp(1, 16)).min(8 * self.bytes as u32);
        let v = self.raw(s);
        let v = if bits > 8 {
            v >> (bits - 8)
        } else {
            v << (8 - bits)
        };
        u8::try_from(v).unwrap_or(u8::MAX)
    }
}

/// YCbCr (full range, as YBR_FULL stores it) to RGB.
fn ybr_to_rgb(y: u8, cb: u8, cr: u8) -> [u8; 3] {
    let (y, cb, cr) = (f32::from(y), f32::from(cb) - 128.0, f32::from(cr) - 128.0);
    let clamp = |v: f32| v.round().clamp(0.0, 255.0) as u8;
    [
        clamp(y + 1.402 * cr),
        clamp(y - 0.344_136 * cb - 0.714_136 * cr),
        clamp(y + 1.772 * cb),
    ]
}

/// A PALETTE COLOR file's lookup tables, expanded to 8-bit RGB entries.
struct Palette {
    entries: Vec<[u8; 3]>,
    /// The stored value that maps to the first entry.
    first: i64,
}

impl Palette {
    fn lookup(&self, value: u32) -> [u8; 3] {
        let last = self.entries.len().saturating_sub(1);
        let i = (i64::from(value) - self.first).clamp(0, last as i64) as usize;
        self.entries.get(i).copied().unwrap_or([0, 0, 0])
    }

    /// Reads the three descriptors and tables (plain or segmented).
    fn of(obj: &InMemDicomObject, big_endian: bool) -> Result<Self, DicomError> {
        let descriptor = obj
            .get(tags::RED_PALETTE_COLOR_LOOKUP_TABLE_DESCRIPTOR)
            .ok_or(DicomError::Palette(
                "it has no Red Palette Color Lookup Table Descriptor",
            ))?
            .to_multi_int::<i64>()
            .map_err(|_| DicomError::Palette("its descriptor is not three numbers"))?;
        let [count, first, bits] = descriptor[..] else {
            return Err(DicomError::Palette("its descriptor is not three numbers"));
        };
        let count = if count == 0 { 65_536 } else { count };
        if !(1..=65_536).contains(&count) || !(bits == 8 || bits == 16) {
            return Err(DicomError::Palette(
                "its descriptor gives an entry count or bit depth out of range (8 or 16 bits)",
            ));
        }
        let count = count as usize;
        let plain = [
            tags::RED_PALETTE_COLOR_LOOKUP_TABLE_DATA,
            tags::GREEN_PALETTE_COLOR_LOOKUP_TABLE_DATA,
            tags::BLUE_PALETTE_COLOR_LOOKUP_TABLE_DATA,
        ];
        let segmented = [
            tags::SEGMENTED_RED_PALETTE_COLOR_LOOKUP_TABLE_DATA,
            tags::SEGMENTED_GREEN_PALETTE_COLOR_LOOKUP_TABLE_DATA,
            tags::SEGMENTED_BLUE_PALETTE_COLOR_LOOKUP_TABLE_DATA,
        ];
        let mut channels: Vec<Vec<u8>> = Vec::with_capacity(3);
        for (plain, segmented) in plain.into_iter().zip(segmented) {
            let table: Vec<u8> = if let Some(e) = obj.get(plain) {
                let words = words(e, big_endian)?;
                if words.len() == count {
                    // One entry a word; 8-bit entries sit in the low byte.
                    words.iter().map(|&v| palette_entry(v, bits)).collect()
                } else if words.len() * 2 == count && bits == 8 {
                    // 8-bit entries packed two a word, in the file's byte order.
                    unpacked_bytes(&words, big_endian).collect()
                } else {
                    return Err(DicomError::Palette(
                        "a table's length does not match its descriptor",
                    ));
                }
            } else if let Some(e) = obj.get(segmented) {
                let values: Vec<u16> = if bits == 16 {
                    words(e, big_endian)?
                } else {
                    unpacked_bytes(&words(e, big_endian)?, big_endian)
                        .map(u16::from)
                        .collect()
                };
                let expanded = expand_segmented(&values, count)?;
                expanded.iter().map(|&v| palette_entry(v, bits)).collect()
            } else {
                return Err(DicomError::Palette("it has no lookup table data"));
            };
            if table.len() < count {
                return Err(DicomError::Palette(
                    "a table holds fewer entries than its descriptor says",
                ));
            }
            channels.push(table);
        }
        let [r, g, b] = &channels[..] else {
            return Err(DicomError::Palette("it has no lookup table data"));
        };
        let entries = (0..count).map(|i| [r[i], g[i], b[i]]).collect();
        Ok(Self { entries, first })
    }
}

/// A palette entry as 8 bits: the high byte of a 16-bit entry, an 8-bit
/// entry (which sits in the low byte of its word) as it is.
fn palette_entry(v: u16, bits: i64) -> u8 {
    if bits == 16 {
        (v >> 8) as u8
    } else {
        v.min(255) as u8
    }
}

/// The bytes of `words` in the file's byte order (8-bit values packed two a word).
fn unpacked_bytes(words: &[u16], big_endian: bool) -> impl Iterator<Item = u8> + '_ {
    words.iter().flat_map(move |&v| {
        if big_endian {
            v.to_be_bytes()
        } else {
            v.to_le_bytes()
        }
    })
}

/// A segmented lookup table (PS3.3 C.7.9.2) expanded: discrete and linear
/// segments; indirect segments are refused. At most `count` entries.
fn expand_segmented(data: &[u16], count: usize) -> Result<Vec<u16>, DicomError> {
    let mut lut: Vec<u16> = Vec::with_capacity(count);
    let mut i = 0;
    // `i + 1`: a trailing pad word is not a segment.
    while i + 1 < data.len() && lut.len() < count {
        let (opcode, length) = (data[i], usize::from(data[i + 1]));
        i += 2;
        match opcode {
            0 => {
                let end = (i + length).min(data.len());
                lut.extend_from_slice(&data[i..end]);
                i = end;
            }
            1 => {
                let &y0 = lut.last().ok_or(DicomError::Palette(
                    "its segmented table starts with a linear segment",
                ))?;
                let &y1 = data
                    .get(i)
                    .ok_or(DicomError::Palette("its segmented table is cut short"))?;
                i += 1;
                let (y0, y1) = (f64::from(y0), f64::from(y1));
                for k in 1..=length {
                    let v = y0 + (y1 - y0) * k as f64 / length as f64;
                    lut.push(v.round().clamp(0.0, 65_535.0) as u16);
                }
            }
            2 => {
                return Err(DicomError::Palette(
                    "its segmented table has indirect segments, which are not supported",
                ))
            }
            _ => {
                return Err(DicomError::Palette(
                    "its segmented table has an unknown segment type",
                ))
            }
        }
    }
    lut.truncate(count);
    Ok(lut)
}

/// The 16-bit words of an OW (or US) element, as the parser read them, or
/// pairs of bytes in the file's order if it kept them as bytes.
fn words(e: &InMemElement, big_endian: bool) -> Result<Vec<u16>, DicomError> {
    match e.value() {
        Value::Primitive(PrimitiveValue::U16(v)) => Ok(v.to_vec()),
        Value::Primitive(PrimitiveValue::I16(v)) => Ok(v.iter().map(|&x| x as u16).collect()),
        Value::Primitive(PrimitiveValue::U8(b)) => Ok(b
            .chunks_exact(2)
            .map(|p| {
                if big_endian {
                    u16::from_be_bytes([p[0], p[1]])
                } else {
                    u16::from_le_bytes([p[0], p[1]])
                }
            })
            .collect()),
        _ => Err(DicomError::Palette("a table is not 16-bit words")),
    }
}

/// How long each frame shows: Frame Time (ms), else the mean of the Frame
/// Time Vector, else Cine Rate or Recommended Display Frame Rate (fps),
/// else [`DEFAULT_FPS`]. A value that is not a positive time up to 10 s is
/// passed over.
fn frame_period(obj: &InMemDicomObject) -> (Duration, &'static str) {
    let from_ms = |ms: f64| {
        (ms.is_finite() && ms > 0.0 && ms <= MAX_FRAME_TIME.as_secs_f64() * 1000.0)
            .then(|| Duration::from_secs_f64(ms / 1000.0))
            .filter(|d| !d.is_zero())
    };
    let float = |tag: Tag| obj.get(tag).and_then(|e| e.to_float64().ok());
    if let Some(d) = float(tags::FRAME_TIME).and_then(from_ms) {
        return (d, "Frame Time");
    }
    let vector = obj
        .get(tags::FRAME_TIME_VECTOR)
        .and_then(|e| e.to_multi_float64().ok())
        .filter(|v| v.len() > 1);
    if let Some(d) = vector.and_then(|v| from_ms(v[1..].iter().sum::<f64>() / (v.len() - 1) as f64))
    {
        return (d, "Frame Time Vector");
    }
    for (tag, name) in [
        (tags::CINE_RATE, "Cine Rate"),
        (
            tags::RECOMMENDED_DISPLAY_FRAME_RATE,
            "Recommended Display Frame Rate",
        ),
    ] {
        if let Some(d) = float(tag).and_then(|fps| from_ms(1000.0 / fps)) {
            return (d, name);
        }
    }
    (
        Duration::from_nanos(1_000_000_000 / u64::from(DEFAULT_FPS)),
        "none declared, 30 fps",
    )
}

fn uint(obj: &InMemDicomObject, tag: Tag, name: &'static str) -> Result<Option<u32>, DicomError> {
    let Some(e) = obj.get(tag) else {
        return Ok(None);
    };
    e.to_int::<u32>()
        .map(Some)
        .map_err(|_| DicomError::Attribute {
            name,
            value: shown(e),
            expected: "a whole number is needed",
        })
}

fn required_uint(obj: &InMemDicomObject, tag: Tag, name: &'static str) -> Result<u32, DicomError> {
    uint(obj, tag, name)?.ok_or(DicomError::Missing(name))
}

/// An element's value for an error message, cut short.
fn shown(e: &InMemElement) -> String {
    let text = e.to_str().map(|s| s.into_owned()).unwrap_or_default();
    let text: String = text.chars().take(32).collect();
    format!("\"{}\"", text.trim_end_matches(['\0', ' ']))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn full_range_ycbcr_greys_stay_grey_and_primaries_come_back() {
        assert_eq!(ybr_to_rgb(128, 128, 128), [128, 128, 128]);
        assert_eq!(ybr_to_rgb(0, 128, 128), [0, 0, 0]);
        assert_eq!(ybr_to_rgb(255, 128, 128), [255, 255, 255]);
        // Pure red in BT.601 full range: Y 76, Cb 85, Cr 255.
        let [r, g, b] = ybr_to_rgb(76, 85, 255);
        assert!(r >= 253 && g <= 2 && b <= 2, "{r} {g} {b}");
    }

    #[test]
    fn samples_are_scaled_to_their_top_eight_stored_bits() {
        let d8 = Depth {
            bytes: 1,
            stored: 8,
            signed: false,
        };
        assert_eq!(d8.to_u8(&[200]), 200);
        let d12 = Depth {
            bytes: 2,
            stored: 12,
            signed: false,
        };
        assert_eq!(d12.to_u8(&4095u16.to_ne_bytes()), 255);
        assert_eq!(d12.to_u8(&2048u16.to_ne_bytes()), 128);
        // Bits above the stored ones (an overlay plane) are ignored.
        assert_eq!(d12.to_u8(&(0xF000u16 | 16).to_ne_bytes()), 1);
        let signed = Depth {
            bytes: 1,
            stored: 8,
            signed: true,
        };
        assert_eq!(signed.to_u8(&[0x80]), 0, "-128 is the darkest");
        assert_eq!(signed.to_u8(&[0x7F]), 255, "127 the brightest");
    }

    #[test]
    fn segmented_tables_expand_discrete_and_linear_segments() {
        // Discrete 0, 10; then linear up to 50 over 4 steps; then discrete 7.
        let data = [0, 2, 0, 10, 1, 4, 50, 0, 1, 7, 0];
        assert_eq!(
            expand_segmented(&data, 16).expect("expands"),
            vec![0, 10, 20, 30, 40, 50, 7]
        );
        assert_eq!(
            expand_segmented(&data, 3).expect("expands"),
            vec![0, 10, 20]
        );
        assert!(expand_segmented(&[1, 4, 50], 8).is_err(), "linear first");
        assert!(
            expand_segmented(&[0, 1, 5, 2, 1, 0, 0], 8).is_err(),
            "indirect"
        );
    }

    #[test]
    fn palette_values_outside_the_table_take_its_end_entries() {
        let palette = Palette {
            entries: vec![[1, 1, 1], [2, 2, 2], [3, 3, 3]],
            first: 10,
        };
        assert_eq!(palette.lookup(0), [1, 1, 1]);
        assert_eq!(palette.lookup(11), [2, 2, 2]);
        assert_eq!(palette.lookup(1000), [3, 3, 3]);
    }
}
