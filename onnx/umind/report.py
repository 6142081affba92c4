"""The structured report umind-nano writes, its vocabulary and tokenizer, and
the parser that reads a generated report back.

A report describes the largest lesion in view, in the BI-RADS descriptor
vocabulary of sonoflow_core::findings, and ends with the task tokens whose
hidden states become the mask decoder's kernels:

    finding : mass . shape : oval . orientation : parallel . margin : circumscribed .
    echo pattern : hypoechoic . posterior features : none . calcifications : none .
    assessment : probably benign . long axis : <long> mm . short axis : <short> mm . [SEG] [DET] [EOS]

There are no digits in the vocabulary: the measurements are the placeholders
<long> and <short>, filled in from the calipers at run time.
"""
import re

# Attribute vocabularies, in the snake_case of sonoflow_core::findings.
ATTRIBUTES = {
    "shape": ["oval", "round", "irregular"],
    "orientation": ["parallel", "not_parallel"],
    "margin": ["circumscribed", "indistinct", "angular", "microlobulated", "spiculated"],
    "echo_pattern": ["anechoic", "hypoechoic", "isoechoic", "hyperechoic", "heterogeneous", "complex_cystic_solid"],
    "posterior": ["none", "enhancement", "shadowing", "combined"],
    "calcifications": ["none", "in_mass", "outside_mass"],
}
ASSESSMENTS = ["benign", "probably_benign", "suspicious", "highly_suggestive"]
CLASSES = ["cyst", "mass"]

# Report keys: (key in the report, field).
KEYS = [
    ("finding", "class"),
    ("shape", "shape"),
    ("orientation", "orientation"),
    ("margin", "margin"),
    ("echo pattern", "echo_pattern"),
    ("posterior features", "posterior"),
    ("calcifications", "calcifications"),
    ("assessment", "assessment"),
]
LONG, SHORT = "<long>", "<short>"
TASKS = ["[SEG]", "[DET]"]  # kernel tokens, in default-kernel row order
PROMPT = "[DIAG]"
SPECIAL = ["[PAD]", "[UNK]", "[EOS]", "[DIAG]", "[SEG]", "[DET]", "[MEAS]", LONG, SHORT]
NO_LESION = "no focal lesion ."


def field_values():
    """{field: its values in order} of every report field a lesion has."""
    return dict(ATTRIBUTES, **{"class": CLASSES, "assessment": ASSESSMENTS})


def descriptor_fields():
    """{field: number of values} of every report field a lesion has, in KEYS order."""
    values = field_values()
    return {field: len(values[field]) for _, field in KEYS}


def described(lesions):
    """The lesion a frame's report describes: the largest in view, or None."""
    return max(lesions, key=lambda l: l["area_px"]) if lesions else None


def descriptor_labels(lesions):
    """{field: index of its value} for the lesion the report describes (the
    largest), or -1 for every field when there is none (ignored by the loss)."""
    fields = [field for _, field in KEYS]
    lesion = described(lesions)
    if lesion is None:
        return {f: -1 for f in fields}
    given = dict(lesion["attributes"], **{"class": lesion["class"], "assessment": lesion["assessment"]})
    values = field_values()
    return {f: values[f].index(given[f]) for f in fields}


def words(value):
    return value.replace("_", " ")


def for_lesions(lesions):
    """The report for the largest lesion in view, or the no-lesion report."""
    lesion = described(lesions)
    if lesion is None:
        body = NO_LESION
    else:
        fields = dict(lesion["attributes"], **{"class": lesion["class"], "assessment": lesion["assessment"]})
        parts = [f"{key} : {words(fields[field])} ." for key, field in KEYS]
        parts.append(f"long axis : {LONG} mm . short axis : {SHORT} mm .")
        body = " ".join(parts)
    return f"{body} {' '.join(TASKS)} [EOS]"


def parse(text):
    """Fields of a generated report: {field: value} (snake_case), plus
    'lesion': bool. Unknown or missing keys are simply absent."""
    text = text.replace("[EOS]", "").strip()
    for t in TASKS:
        text = text.replace(t, "")
    out = {"lesion": not text.strip().startswith("no focal lesion")}
    keys = dict(KEYS)
    for clause in text.split(" . "):
        if " : " not in clause:
            continue
        key, value = (s.strip() for s in clause.split(" : ", 1))
        if key in keys:
            out[keys[key]] = value.strip(" .").replace(" ", "_")
    return out


def untraceable_numbers(text):
    """Numbers in a report that do not come from a measurement placeholder."""
    return re.findall(r"\d+(?:\.\d+)?", text)


def corpus():
    """Every report the vocabulary must cover (all attribute values appear)."""
    lines = [for_lesions([])]
    for cls in CLASSES:
        for key, values in ATTRIBUTES.items():
            for v in values:
                attrs = {k: vals[0] for k, vals in ATTRIBUTES.items()}
                attrs[key] = v
                for a in ASSESSMENTS:
                    lines.append(for_lesions([{"area_px": 1, "class": cls, "attributes": attrs, "assessment": a}]))
    return lines


def build_tokenizer(path):
    """A word-level tokenizer (the `tokenizers` library) over the report
    corpus: special tokens first, then the corpus' words in sorted order, so
    ids are stable."""
    from tokenizers import Tokenizer, models, pre_tokenizers

    words = sorted({w for line in corpus() for w in line.split()} - set(SPECIAL))
    vocab = {t: i for i, t in enumerate(SPECIAL + words)}
    tok = Tokenizer(models.WordLevel(vocab=vocab, unk_token="[UNK]"))
    tok.pre_tokenizer = pre_tokenizers.WhitespaceSplit()
    tok.add_special_tokens(SPECIAL)
    tok.save(str(path))
    return tok
