//! Property tests of the pipeline definition parser, the one reader of
//! outside input in this crate: [`PipelineDefinition::load`] and
//! [`PipelineDefinition::parse_at`], with the device profiles of
//! `firmware-config/devices/` they merge. Each is fed arbitrary text and
//! mutations of the real files (every file of pipelines/ and
//! firmware-config/devices/, plus definitions below that set every key)
//! and must return a definition that keeps the validated invariants, or an
//! error that names its key and a fix; never panic.
//!
//! `cargo test -p sonoflow-runtime --test parse_props` runs 256 cases per
//! target; `scripts/fuzz.sh` runs them for minutes (see tests/props/support.rs).

#[path = "../../../tests/props/support.rs"]
mod support;

use std::path::{Path, PathBuf};

use proptest::prelude::*;
use proptest::sample::Index;
use proptest::test_runner::TestCaseError;
use sonoflow_runtime::{DefinitionError, PipelineDefinition, ProcessKind};
use support::{check, check_message, text_edits, value_edits, Edit};

/// A definition that sets every key of every section (valid as written).
const EVERY_KEY: &str = r#"name = "every-key"
device = "cpu-2core"

[source]
kind = "phantom"
probe = "convex"
scene = "breast"
depth_cm = 6
seed = 7
lesions = 2
lesion_kind = "complex_cyst"
width = 800
height = 600
fps = 25
format = "GRAY8"
gain_db = 3.5
dynamic_range_db = 60.0
motion = false
restart = { initial_backoff_ms = 100, max_backoff_ms = 5000, stall_timeout_ms = 2000, startup_timeout_ms = 10000 }

[process]
kind = "model"

[queues.process]
depth = 3
policy = "block"

[queues.output]
depth = 2
policy = "drop-oldest"

[output]
max_queued = 4

[model]
dir = "tests/fixtures/tiny-model"
providers = ["cuda", "cpu"]
require_provider = "cpu"
intra_threads = 2
inter_threads = 1
optimization = "extended"
warmup_runs = 2
tensorrt_fp16 = false
cache_dir = "out/cache"
stall_after_ms = 300

[perception]
enabled = true
ellipse = true
smoothing = true
smoothing_alpha = 0.5
uncertainty_thresholds = [0.3, 0.7]

[overlay]
enabled = true
stale_after_ms = 250
paused_after_ms = 1000
forget_after_ms = 5000
mask_opacity = 0.3
stale_opacity = 0.4
font_px = 14.0
hud = true
panel = false

[reasoning]
enabled = true
model = "onnx/umind-nano"
prompt = "[SEG] cyst"
max_new_tokens = 64
temperature = 0.7
top_p = 0.9
seed = 3
intra_threads = 1
nice = 12
timeout_ms = 4000
stale_after_ms = 1500
min_interval_ms = 800
max_interval_ms = 5000
still_below = 0.1
still_frames = 6
stable_iou = 0.75
scene_change_above = 0.5

[[sinks]]
kind = "mp4"
path = "out/every-key.mp4"
bitrate_kbps = 2000

[[sinks]]
kind = "rtp"
host = "127.0.0.1"
port = 5004
bitrate_kbps = 1000

[[sinks]]
kind = "fake"
"#;

/// One definition per other source kind, each with its own keys.
const SOURCE_KINDS: [&str; 6] = [
    "[source]\nkind = \"test\"\npattern = \"smpte\"\nlive = false\nwidth = 320\nheight = 240\nfps = 60\nformat = \"RGBA\"\n\n[[sinks]]\nkind = \"display\"\n",
    "[source]\nkind = \"file\"\npath = \"videos/scan.mp4\"\nrealtime = true\n\n[process]\nkind = \"passthrough\"\n\n[[sinks]]\nkind = \"mkv\"\npath = \"out/a.mkv\"\n",
    "[source]\nkind = \"v4l2\"\ndevice = \"/dev/video2\"\n\n[[sinks]]\nkind = \"fake\"\n",
    "[source]\nkind = \"rtsp\"\nurl = \"rtsp://cart.local:8554/probe\"\nlatency_ms = 200\n\n[source.restart]\ninitial_backoff_ms = 50\nmax_backoff_ms = 800\nstall_timeout_ms = 500\nstartup_timeout_ms = 3000\n\n[[sinks]]\nkind = \"fake\"\n",
    "[source]\nkind = \"udp\"\nport = 5004\naddress = \"127.0.0.1\"\nlatency_ms = 50\n\n[[sinks]]\nkind = \"rtp\"\nport = 5006\n",
    "[source]\nkind = \"launch\"\nlaunch = \"videotestsrc is-live=true ! videoflip method=clockwise !\"\nlive = true\n\n[[sinks]]\nkind = \"fake\"\n",
];

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn read_dir_sorted(dir: &Path) -> Vec<PathBuf> {
    let mut paths: Vec<PathBuf> = std::fs::read_dir(dir)
        .expect("folder")
        .map(|e| e.expect("entry").path())
        .filter(|p| p.extension().is_some_and(|e| e == "toml"))
        .collect();
    paths.sort();
    paths
}

fn stem(path: &Path) -> String {
    path.file_stem()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_default()
}

/// (name, text) of every base definition: pipelines/ and the ones above.
fn definitions() -> Vec<(String, String)> {
    let mut bases: Vec<(String, String)> = read_dir_sorted(&repo().join("pipelines"))
        .into_iter()
        .map(|p| (stem(&p), std::fs::read_to_string(&p).expect("pipeline")))
        .collect();
    assert!(bases.len() >= 5, "expected the pipelines/ files");
    bases.push(("every-key".into(), EVERY_KEY.into()));
    for (i, text) in SOURCE_KINDS.iter().enumerate() {
        bases.push((format!("source-kind-{i}"), (*text).into()));
    }
    bases
}

/// (name, text) of every committed device profile.
fn profiles() -> Vec<(String, String)> {
    let profiles: Vec<(String, String)> = read_dir_sorted(&repo().join("firmware-config/devices"))
        .into_iter()
        .map(|p| (stem(&p), std::fs::read_to_string(&p).expect("profile")))
        .collect();
    assert!(profiles.len() >= 2, "expected the device profiles");
    profiles
}

/// A tree like the repository's: `pipelines/` beside
/// `firmware-config/devices/` (holding copies of the real profiles), so
/// `load` finds profiles the way it does in the repository.
struct Tree {
    _dir: tempfile::TempDir,
    root: PathBuf,
}

impl Tree {
    fn new() -> Self {
        let dir = tempfile::tempdir().expect("temp dir");
        let root = dir.path().join("repo");
        std::fs::create_dir_all(root.join("pipelines")).expect("pipelines");
        std::fs::create_dir_all(root.join("firmware-config/devices")).expect("devices");
        for (name, text) in profiles() {
            std::fs::write(
                root.join(format!("firmware-config/devices/{name}.toml")),
                text,
            )
            .expect("profile");
        }
        Self { _dir: dir, root }
    }

    fn pipeline(&self) -> PathBuf {
        self.root.join("pipelines/case.toml")
    }

    /// Writes `bytes` as pipelines/case.toml and loads it.
    fn load(
        &self,
        bytes: &[u8],
    ) -> Result<Result<PipelineDefinition, DefinitionError>, TestCaseError> {
        let path = self.pipeline();
        std::fs::write(&path, bytes).map_err(|e| TestCaseError::fail(e.to_string()))?;
        Ok(PipelineDefinition::load(&path))
    }

    fn write_profile(&self, name: &str, bytes: &[u8]) -> Result<(), TestCaseError> {
        std::fs::write(
            self.root
                .join(format!("firmware-config/devices/{name}.toml")),
            bytes,
        )
        .map_err(|e| TestCaseError::fail(e.to_string()))
    }
}

/// The parser's contract. A definition keeps the invariants validation
/// promises; an error says what is wrong, and a key error names the key
/// and a fix.
fn checked(
    result: Result<PipelineDefinition, DefinitionError>,
) -> Result<Option<PipelineDefinition>, TestCaseError> {
    match result {
        Ok(def) => {
            support::note("ok");
            for q in [def.process_queue, def.output_queue] {
                prop_assert!((1..=64).contains(&q.depth), "queue depth {}", q.depth);
            }
            prop_assert!(def.max_queued >= 1);
            prop_assert!(!def.sinks.is_empty());
            prop_assert!(!def.name.is_empty());
            prop_assert_eq!(def.model.is_some(), def.process == ProcessKind::Model);
            prop_assert!(def.source.launch_string().contains("appsink"));
            for sink in &def.sinks {
                prop_assert!(sink.key.starts_with("sinks["), "{}", sink.key);
            }
            Ok(Some(def))
        }
        Err(e) => {
            let message = e.to_string();
            match &e {
                DefinitionError::Invalid { issue, .. } => {
                    support::note(format!("Invalid({})", issue.key));
                    prop_assert!(!issue.key.is_empty(), "no key: {message}");
                    prop_assert!(!issue.fix.trim().is_empty(), "no fix: {message}");
                }
                other => support::note(support::variant(&format!("{other:?}"))),
            }
            check_message(&message)?;
            prop_assert!(message.contains(".toml"), "names no file: {message}");
            Ok(None)
        }
    }
}

#[test]
fn every_base_definition_is_valid() {
    let tree = Tree::new();
    for (name, text) in definitions() {
        let def = tree
            .load(text.as_bytes())
            .expect("write")
            .unwrap_or_else(|e| panic!("{name}: {e}"));
        checked(Ok(def)).unwrap_or_else(|e| panic!("{name}: {e}"));
    }
}

#[test]
fn definition_survives_arbitrary_text() {
    let bases: Vec<String> = definitions()
        .into_iter()
        .map(|(_, t)| t)
        .chain(profiles().into_iter().map(|(_, t)| t))
        .collect();
    let (keys, sections) = support::keys_and_sections(&bases);
    let text = prop_oneof![
        prop::collection::vec(any::<u8>(), 0..1024)
            .prop_map(|b| String::from_utf8_lossy(&b).into_owned()),
        ".{0,512}",
        support::toml_soup(keys, sections),
    ];
    let pipelines = repo().join("pipelines");
    check("definition/arbitrary-text", text, |t| {
        checked(PipelineDefinition::parse_at(
            &t,
            "fuzz.toml",
            "fuzz",
            Some(&pipelines),
        ))
        .map(drop)
    });
}

/// A base file (by index into its list) and the edits made to it.
#[derive(Debug, Clone)]
struct Mutated {
    base: Index,
    edits: Vec<Edit>,
}

fn mutated_definitions(name: &str, edits: impl Strategy<Value = Vec<Edit>>) {
    let bases = definitions();
    let tree = Tree::new();
    let cases = (any::<Index>(), edits).prop_map(|(base, edits)| Mutated { base, edits });
    check(name, cases, |case| {
        let base = &bases[case.base.index(bases.len())].1;
        checked(tree.load(&support::apply(base.as_bytes(), &case.edits))?).map(drop)
    });
}

#[test]
fn definition_survives_mutated_files() {
    mutated_definitions("definition/mutated-files", text_edits(4));
}

#[test]
fn definition_survives_extreme_values() {
    mutated_definitions("definition/extreme-values", value_edits(3));
}

#[test]
fn device_profile_survives_mutations() {
    let profiles = profiles();
    let tree = Tree::new();
    // Definitions that merge a profile: a live source with a model, and a
    // file source (whose stall_after_ms default differs) with one.
    let live = EVERY_KEY.replace("device = \"cpu-2core\"", "device = \"fuzz\"");
    let file = "device = \"fuzz\"\n[source]\nkind = \"file\"\npath = \"a.mp4\"\n[model]\ndir = \"m\"\n[[sinks]]\nkind = \"fake\"\n";
    let edits = prop_oneof![text_edits(4), value_edits(3)];
    let cases = (any::<Index>(), edits, any::<bool>());
    check(
        "device-profile/mutated-files",
        cases,
        |(base, edits, is_live)| {
            let profile = &profiles[base.index(profiles.len())].1;
            tree.write_profile("fuzz", &support::apply(profile.as_bytes(), &edits))?;
            let definition = if is_live { live.as_str() } else { file };
            checked(tree.load(definition.as_bytes())?).map(drop)
        },
    );
}

/// Names made of path pieces: `..`, separators, real profile names, NUL.
fn device_name() -> impl Strategy<Value = String> {
    let piece = prop::sample::select(vec![
        "..",
        ".",
        "/",
        "\\",
        "secret",
        "cpu-2core",
        "jetson-orin",
        "\0",
        "%2e%2e",
        "~",
        " ",
        "devices",
        "firmware-config",
        ".toml",
    ]);
    prop_oneof![
        prop::collection::vec(piece, 1..6).prop_map(|p| p.concat()),
        ".{0,40}",
        (1usize..5000).prop_map(|n| "a".repeat(n)),
    ]
}

#[test]
fn device_names_stay_in_the_profile_folder() {
    let tree = Tree::new();
    // Valid profiles outside the devices folder, which no name may reach.
    let outside = "[model]\nintra_threads = 1\n";
    std::fs::write(tree.root.join("secret.toml"), outside).expect("secret");
    std::fs::write(tree.root.join("firmware-config/secret.toml"), outside).expect("secret");
    std::fs::write(tree.root.join("pipelines/secret.toml"), outside).expect("secret");
    let known: Vec<String> = profiles().into_iter().map(|(n, _)| n).collect();
    check("device-profile/names", device_name(), |name| {
        let text = format!(
            "device = {}\n[source]\nkind = \"test\"\n[model]\ndir = \"m\"\n[[sinks]]\nkind = \"fake\"\n",
            support::toml_string(&name)
        );
        let result = checked(tree.load(text.as_bytes())?)?;
        prop_assert_eq!(
            result.is_some(),
            known.contains(&name),
            "device = {:?}",
            name
        );
        Ok(())
    });
}
