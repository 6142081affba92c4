"""false-positives.jpg: the first frame of each lesion-free held-out sequence
where the model reports a finding, with every finding's box (those under the
3 mm² floor included). From the repository root, with the model to show in
onnx/umind-nano:

    target/release/sonoflow eval out/umind-data-v10/test-empty --min-finding-area-mm2 0 \
        --findings-jsonl /tmp/fp.jsonl
    onnx/.venv/bin/python docs/experiments/2026-12-01-drawn-phantom-descriptor-heads/fp_sheet.py \
        /tmp/fp.jsonl out/umind-data-v10/test-empty docs/experiments/2026-12-01-drawn-phantom-descriptor-heads/false-positives.jpg
"""
import json
import pathlib
import sys

from PIL import Image, ImageDraw

TILE, COLUMNS, SEQUENCE = (480, 400), 3, 4

log, export, out = sys.argv[1], pathlib.Path(sys.argv[2]), sys.argv[3]
rows = [json.loads(line) for line in open(log)]
records = [json.loads(line) for line in open(export / "truth.jsonl")]
first = {}
for row in rows:
    if row.get("findings"):
        first.setdefault(int(row["frameId"]) // SEQUENCE, int(row["frameId"]))
tiles = []
for frame in list(first.values())[: 2 * COLUMNS]:
    image = Image.open(export / records[frame]["image"]).convert("RGB")
    draw = ImageDraw.Draw(image)
    for finding in rows[frame]["findings"]:
        b = finding["box"]
        draw.rectangle([b["x0"] - 4, b["y0"] - 4, b["x1"] + 4, b["y1"] + 4], outline=(255, 0, 0), width=2)
    image.thumbnail(TILE)
    tiles.append(image)
sheet = Image.new("RGB", (COLUMNS * TILE[0], 2 * TILE[1]))
for i, tile in enumerate(tiles):
    sheet.paste(tile, ((i % COLUMNS) * TILE[0], (i // COLUMNS) * TILE[1]))
sheet.save(out, quality=80)
print(f"{len(first)} sequences with a finding: {sorted(first)}")
