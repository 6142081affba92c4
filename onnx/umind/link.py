"""Phantom exports linked into one dataset, as `sonoflow eval` reads it.

    python -m umind.link OUT EXPORT [EXPORT ...]

writes OUT/truth.jsonl over every frame of the exports, each linked in as
OUT/e0, OUT/e1, ... (the held-out set of onnx/train.sh is test, test-single,
test-empty and test-empty-more so linked). Needs no PyTorch.
"""

import json
import pathlib
import sys

from . import data


def select(export_dirs, every=1, limit=None):
    """The frames evaluated: (export folder, truth record), every N-th, at most `limit` per export."""
    chosen = []
    for export_dir in export_dirs:
        export_dir = pathlib.Path(export_dir)
        chosen += [(export_dir, rec) for rec in data.read_records(export_dir)[::every][:limit]]
    return chosen


# Scene numbers of the k-th export linked into one dataset start at k * SCENES_PER_EXPORT.
SCENES_PER_EXPORT = 1_000_000


def write_dataset(chosen, folder):
    """One phantom export in `folder` holding exactly the chosen frames: each
    export is linked in as e0, e1, ... and truth.jsonl lists the frames with
    paths through those links (the format `sonoflow phantom export` writes).
    Each export's sequences stay scenes of their own (`sonoflow eval`'s
    intervals resample scenes): the k-th export's are numbered from
    k * SCENES_PER_EXPORT."""
    folder = pathlib.Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    links = {}
    with open(folder / "truth.jsonl", "w") as f:
        for export_dir, rec in chosen:
            key = export_dir.resolve()
            if key not in links:
                links[key] = f"e{len(links)}"
                (folder / links[key]).symlink_to(key, target_is_directory=True)
            line = dict(rec, image=f"{links[key]}/{rec['image']}", labels=f"{links[key]}/{rec['labels']}")
            if "sequence" in rec:
                if rec["sequence"] >= SCENES_PER_EXPORT:
                    raise SystemExit(f"link: {export_dir} has sequence {rec['sequence']}: more than {SCENES_PER_EXPORT} sequences")
                line["sequence"] = int(links[key][1:]) * SCENES_PER_EXPORT + rec["sequence"]
            f.write(json.dumps(line) + "\n")
    return folder


def main(argv):
    if len(argv) < 2:
        raise SystemExit("usage: python -m umind.link OUT EXPORT [EXPORT ...]")
    folder = write_dataset(select(argv[1:]), argv[0])
    print(f"{folder}: {len(data.read_records(folder))} frames of {len(argv) - 1} exports", file=sys.stderr)


if __name__ == "__main__":
    main(sys.argv[1:])
