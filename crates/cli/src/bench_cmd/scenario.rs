//! What `sonoflow bench` runs: each scenario is a pipeline definition the
//! suite writes and runs with the real binary (`sonoflow run`), on one
//! provider, at one frame size and rate.

use std::path::Path;

use serde::{Deserialize, Serialize};
use sonoflow_inference::Provider;

/// Which part of the product a scenario measures.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Kind {
    /// The test source straight to a fake sink: the runtime's own cost.
    Passthrough,
    /// The phantom through the model (preprocess, encoder, decoder); no
    /// findings, no overlay, no head.
    Raw,
    /// The whole product: findings, calipers, overlay and the reasoning
    /// head at its own cadence.
    Product,
    /// The whole product with the head generating back to back (a keyframe
    /// on every frame, the degradation ladder off).
    ReasoningBusy,
    /// sonoflow on the peer's frames (a phantom export played live from
    /// PNG files): model, findings and calipers, no head.
    SameFrames,
    /// The Python peer (benches/peer.py) on those frames: what a lab would
    /// write instead.
    Peer,
}

impl Kind {
    pub fn name(self) -> &'static str {
        match self {
            Kind::Passthrough => "passthrough",
            Kind::Raw => "raw",
            Kind::Product => "product",
            Kind::ReasoningBusy => "reasoning-busy",
            Kind::SameFrames => "sonoflow-png",
            Kind::Peer => "python-peer",
        }
    }

    /// Whether the model runs, so that the floor applies.
    pub fn uses_model(self) -> bool {
        self != Kind::Passthrough
    }
}

/// One scenario of a suite.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Scenario {
    pub kind: Kind,
    pub width: u32,
    pub height: u32,
    pub fps: u32,
    pub provider: String,
    /// Lesions the phantom draws per frame (scaling by lesions).
    #[serde(default = "one")]
    pub lesions: u32,
    /// Pipelines run at once, each in its own process (scaling by streams).
    #[serde(default = "one")]
    pub streams: u32,
}

fn one() -> u32 {
    1
}

impl Scenario {
    pub fn new(kind: Kind, (width, height): (u32, u32), fps: u32, provider: Provider) -> Self {
        Self {
            kind,
            width,
            height,
            fps,
            provider: provider.name().to_owned(),
            lesions: 1,
            streams: 1,
        }
    }

    /// "product 640x480@30 cpu" (with lesions and streams when not one).
    pub fn label(&self) -> String {
        let mut label = format!(
            "{} {}x{}@{} {}",
            self.kind.name(),
            self.width,
            self.height,
            self.fps,
            self.provider
        );
        if self.lesions != 1 {
            label.push_str(&format!(" {} lesions", self.lesions));
        }
        if self.streams != 1 {
            label.push_str(&format!(" x{} streams", self.streams));
        }
        label
    }

    /// A file name for the scenario's definition and reports.
    pub fn slug(&self) -> String {
        self.label()
            .chars()
            .map(|c| if c.is_ascii_alphanumeric() { c } else { '-' })
            .collect()
    }

    /// The pipeline definition that runs the scenario with `model`
    /// (`frames`: the phantom export the peer plays).
    pub fn definition(&self, model: &Path, frames: &Path) -> String {
        self.compose(model, frames, "", "[[sinks]]\nkind = \"fake\"\n")
    }

    /// The definition with each frame's number and capture time stamped
    /// into its pixels at ingest and `sinks` (`[[sinks]]` tables) instead of
    /// the fake sink: what glass-to-glass latency runs. Phantom and test
    /// sources only (the others take no stamp).
    pub fn stamped_definition(&self, model: &Path, sinks: &str) -> String {
        self.compose(model, Path::new(""), "stamp = true\n", sinks)
    }

    fn compose(&self, model: &Path, frames: &Path, source_extra: &str, sinks: &str) -> String {
        let (w, h, fps) = (self.width, self.height, self.fps);
        let name = self.slug();
        let source = match self.kind {
            Kind::Passthrough => format!(
                "[source]\nkind = \"test\"\npattern = \"snow\"\nwidth = {w}\nheight = {h}\nfps = {fps}\n"
            ),
            Kind::SameFrames | Kind::Peer => format!(
                "[source]\nkind = \"images\"\npath = '{}'\nlive = true\nloop = true\nfps = {fps}\n",
                frames.display()
            ),
            _ => format!(
                "[source]\nkind = \"phantom\"\nprobe = \"linear\"\ndepth_cm = 4\nseed = 1\n\
                 lesions = {}\nwidth = {w}\nheight = {h}\nfps = {fps}\n",
                self.lesions
            ),
        };
        let model = format!(
            "[process]\nkind = \"model\"\n[model]\ndir = '{}'\nproviders = [\"{}\"]\n\
             require_provider = \"{}\"\nintra_threads = 1\n",
            model.display(),
            self.provider,
            self.provider
        );
        let queues = "[queues.process]\ndepth = 2\npolicy = \"drop-oldest\"\n\
                      [queues.output]\ndepth = 2\npolicy = \"drop-oldest\"\n";
        let body = match self.kind {
            Kind::Passthrough => String::new(),
            Kind::Raw => format!("{model}[perception]\nenabled = false\n"),
            Kind::Product => model,
            Kind::ReasoningBusy => format!(
                "{model}[reasoning]\nmin_interval_ms = 1\nmax_interval_ms = 1\n[load]\nenabled = false\n"
            ),
            Kind::SameFrames | Kind::Peer => format!("{model}[reasoning]\nenabled = false\n"),
        };
        format!("name = \"{name}\"\n{source}{source_extra}{queues}{body}{sinks}")
    }
}

/// The frame sizes of the standard suite.
pub const VGA: (u32, u32) = (640, 480);
pub const HD: (u32, u32) = (1280, 720);
pub const FULL_HD: (u32, u32) = (1920, 1080);

/// The scenarios of `suite` on `providers`; None for an unknown suite.
pub fn suite(name: &str, providers: &[Provider]) -> Option<Vec<Scenario>> {
    let mut all = Vec::new();
    match name {
        // Every part of the product at both sizes and both rates.
        "standard" => {
            for &provider in providers {
                for size in [VGA, FULL_HD] {
                    for fps in [30, 60] {
                        for kind in [Kind::Passthrough, Kind::Raw, Kind::Product] {
                            all.push(Scenario::new(kind, size, fps, provider));
                        }
                    }
                }
                all.push(Scenario::new(Kind::ReasoningBusy, VGA, 30, provider));
            }
            all.extend(peer());
        }
        // A few short scenarios: that the suite runs end to end.
        "quick" => {
            for &provider in providers {
                for kind in [Kind::Passthrough, Kind::Raw, Kind::Product] {
                    all.push(Scenario::new(kind, VGA, 30, provider));
                }
            }
            all.extend(peer());
        }
        // How cost grows with work: resolution, frame rate, lesions, streams.
        "scaling" => {
            for &provider in providers {
                for size in [VGA, HD, FULL_HD] {
                    all.push(Scenario::new(Kind::Product, size, 30, provider));
                }
                for fps in [15, 60, 90, 120] {
                    all.push(Scenario::new(Kind::Product, VGA, fps, provider));
                }
                for lesions in [0, 2, 3] {
                    all.push(Scenario {
                        lesions,
                        ..Scenario::new(Kind::Product, VGA, 30, provider)
                    });
                }
                for streams in [2, 4] {
                    all.push(Scenario {
                        streams,
                        ..Scenario::new(Kind::Product, VGA, 30, provider)
                    });
                }
            }
        }
        // No latency scenarios: glass-to-glass alone (the standard suite
        // ends with it too).
        "glass" => {}
        _ => return None,
    }
    Some(all)
}

/// sonoflow and the Python peer on the same frames (CPU: the peer's).
fn peer() -> [Scenario; 2] {
    [Kind::SameFrames, Kind::Peer].map(|kind| Scenario::new(kind, VGA, 30, Provider::Cpu))
}

/// The suites [`suite`] knows, for messages.
pub const SUITES: &str = "standard, quick, scaling, glass";

/// Whether `suite` measures glass-to-glass latency (`glass`).
pub fn has_glass(suite: &str) -> bool {
    matches!(suite, "standard" | "glass")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_kind_writes_the_definition_it_measures() {
        let model = Path::new("/m");
        let frames = Path::new("/frames");
        let raw = Scenario::new(Kind::Raw, VGA, 30, Provider::Cpu).definition(model, frames);
        assert!(raw.contains("[perception]\nenabled = false"), "{raw}");
        assert!(raw.contains("require_provider = \"cpu\""), "{raw}");
        let pass =
            Scenario::new(Kind::Passthrough, FULL_HD, 60, Provider::Cpu).definition(model, frames);
        assert!(
            pass.contains("kind = \"test\"") && !pass.contains("[model]"),
            "{pass}"
        );
        assert!(
            pass.contains("width = 1920\nheight = 1080\nfps = 60"),
            "{pass}"
        );
        let busy =
            Scenario::new(Kind::ReasoningBusy, VGA, 30, Provider::Cpu).definition(model, frames);
        assert!(busy.contains("max_interval_ms = 1"), "{busy}");
        let png = Scenario::new(Kind::SameFrames, VGA, 30, Provider::Cpu).definition(model, frames);
        assert!(png.contains("kind = \"images\"\npath = '/frames'"), "{png}");
        let stamped = Scenario::new(Kind::Product, VGA, 30, Provider::Cpu)
            .stamped_definition(model, "[[sinks]]\nkind = \"rtp\"\nport = 5004\n");
        assert!(
            stamped.contains("fps = 30\nstamp = true\n[queues.process]"),
            "{stamped}"
        );
        assert!(
            stamped.ends_with("kind = \"rtp\"\nport = 5004\n") && !stamped.contains("\"fake\""),
            "{stamped}"
        );
        for text in [raw, pass, busy, png, stamped] {
            text.parse::<toml::Table>().expect("valid TOML");
        }
    }

    #[test]
    fn suites_are_known_by_name_and_labels_are_distinct() {
        let standard = suite("standard", &[Provider::Cpu]).expect("standard");
        assert_eq!(standard.len(), 15);
        let scaling = suite("scaling", &[Provider::Cpu]).expect("scaling");
        let mut labels: Vec<String> = scaling.iter().map(Scenario::label).collect();
        labels.sort();
        labels.dedup();
        assert_eq!(labels.len(), scaling.len(), "{labels:?}");
        assert!(suite("fastest", &[Provider::Cpu]).is_none());
        assert_eq!(suite("glass", &[Provider::Cpu]), Some(Vec::new()));
        assert!(has_glass("glass") && has_glass("standard") && !has_glass("quick"));
    }
}
