#!/usr/bin/env python3
"""No import cycle between the top-level modules of a crate.

Usage: module_cycles.py [--known DIR:MOD,MOD...]... CRATE_DIR...
(a directory holding src/lib.rs, src/main.rs or lib.rs; each root file is
one crate). `--known` names a cycle that exists and is waiting for its fix:
it is reported but tolerated while its modules stay exactly those; a cycle
that grows, or any other, fails.

For each crate it reads the root file's `mod NAME;` declarations (the
top-level modules), then every file of every module, and draws an edge
A -> B for each path in module A that names module B: `use crate::B...`,
`crate::B::...` in code, `super::` chains that climb out of A, and names
the root re-exports from B (`crate::Thing` where lib.rs has
`pub use b::Thing`). Comments, strings and items defined in the root itself
are not edges. Test modules count: a cycle only tests close is still one.
Exits 1 naming each cycle and, per edge, the first line that makes it.
Standard library only.
"""

import re
import sys
from pathlib import Path

IDENT = r"[A-Za-z_][A-Za-z0-9_]*"
CHAR_LIT = re.compile(r"'(?:[^'\\\n]|\\(?:u\{[0-9a-fA-F]+\}|x[0-9a-fA-F]{2}|.))'")
RAW_STR = re.compile(r'b?r(#*)"')


def strip(text):
    """Text with comments, strings and char literals blanked (newlines kept)."""
    out, i, n = [], 0, len(text)

    def blank(s):
        return re.sub(r"[^\n]", " ", s)

    while i < n:
        c = text[i]
        if text.startswith("//", i):
            j = text.find("\n", i)
            j = n if j < 0 else j
            out.append(blank(text[i:j]))
            i = j
        elif text.startswith("/*", i):
            depth, j = 1, i + 2
            while j < n and depth:
                if text.startswith("/*", j):
                    depth, j = depth + 1, j + 2
                elif text.startswith("*/", j):
                    depth, j = depth - 1, j + 2
                else:
                    j += 1
            out.append(blank(text[i:j]))
            i = j
        elif (m := RAW_STR.match(text, i)) and (i == 0 or not (text[i - 1].isalnum() or text[i - 1] == "_")):
            end = '"' + m.group(1)
            j = text.find(end, m.end())
            j = n if j < 0 else j + len(end)
            out.append(blank(text[i:j]))
            i = j
        elif c == '"':
            j = i + 1
            while j < n and text[j] != '"':
                j += 2 if text[j] == "\\" else 1
            out.append(blank(text[i : j + 1]))
            i = j + 1
        elif c == "'" and (m := CHAR_LIT.match(text, i)):
            out.append(blank(m.group(0)))
            i = m.end()
        else:
            out.append(c)
            i += 1
    return "".join(out)


def use_paths(tree):
    """`a::{b, c::d as e}` -> [(['a','b'], 'b'), (['a','c','d'], 'e')]."""
    tokens = re.findall(rf"::|[{{}},*]|{IDENT}", tree)
    pos = 0

    def parse(prefix):
        nonlocal pos
        results, path = [], list(prefix)
        while pos < len(tokens):
            t = tokens[pos]
            if t == "{":
                pos += 1
                while pos < len(tokens) and tokens[pos] != "}":
                    results += parse(path)
                    if pos < len(tokens) and tokens[pos] == ",":
                        pos += 1
                pos += 1
                return results
            if t in (",", "}"):
                break
            if t == "::":
                pos += 1
                continue
            if t == "as":
                pos += 1
                alias = tokens[pos] if pos < len(tokens) else None
                pos += 1
                results.append((path, alias))
                return results
            path = path + [t]
            pos += 1
        if path != list(prefix):
            last = path[-1]
            results.append((path[:-1] if last == "self" else path, None if last == "*" else last))
        return results

    return parse([])


def inline_modules(clean):
    """[(start, end, name)] spans of `mod name { ... }` blocks."""
    spans = []
    for m in re.finditer(rf"\bmod\s+({IDENT})\s*\{{", clean):
        depth, j = 1, m.end()
        while j < len(clean) and depth:
            depth += {"{": 1, "}": -1}.get(clean[j], 0)
            j += 1
        spans.append((m.start(), j, m.group(1)))
    return spans


def module_path_at(base, spans, pos):
    return base + [name for (s, e, name) in spans if s < pos < e]


def resolve(path, here):
    """Absolute path (from the crate root) of a `crate`/`super`/`self` path."""
    if not path:
        return None
    if path[0] == "crate":
        return path[1:]
    if path[0] in ("super", "self"):
        base = list(here)
        rest = list(path)
        while rest and rest[0] in ("super", "self"):
            if rest.pop(0) == "super":
                if not base:
                    return None
                base.pop()
        return base + rest
    return None


def crate_modules(root):
    text = strip(root.read_text())
    spans = inline_modules(text)
    names = [
        m.group(1)
        for m in re.finditer(rf"(?m)^\s*(?:pub(?:\([^)]*\))?\s+)?mod\s+({IDENT})\s*;", text)
        if not any(s < m.start() < e for (s, e, _) in spans)
    ]
    # Names the root brings into scope from its modules: crate::Name resolves to them.
    reexports = {}
    for m in re.finditer(r"\buse\s+([^;]+);", text):
        if any(s < m.start() < e for (s, e, _) in spans):
            continue
        for path, alias in use_paths(m.group(1)):
            head = path[1:] if path[:1] in (["crate"], ["self"]) else path
            if head and head[0] in names and alias:
                reexports[alias] = head[0]
    files = {}
    for name in names:
        single, folder = root.parent / f"{name}.rs", root.parent / name
        found = [single] if single.is_file() else []
        if folder.is_dir():
            found += sorted(folder.rglob("*.rs"))
        files[name] = found
    return names, reexports, files


def file_module_path(root_dir, name, path):
    rel = path.relative_to(root_dir).with_suffix("")
    parts = list(rel.parts)
    if parts[-1] == "mod":
        parts.pop()
    return parts if parts[0] == name else [name] + parts


def edges_of(root):
    names, reexports, files = crate_modules(root)
    edges = {}
    for name, paths in files.items():
        for path in paths:
            raw = path.read_text()
            clean = strip(raw)
            spans = inline_modules(clean)
            base = file_module_path(root.parent, name, path)
            found = []
            for m in re.finditer(r"\buse\s+([^;]+);", clean):
                for p, _ in use_paths(m.group(1)):
                    found.append((m.start(), p))
            code = re.sub(r"\buse\s+[^;]+;", lambda m: re.sub(r"[^\n]", " ", m.group(0)), clean)
            for m in re.finditer(rf"(?<![\w$])((?:crate|self|super)(?:\s*::\s*{IDENT})+)", code):
                found.append((m.start(), re.split(r"\s*::\s*", m.group(1))))
            for pos, p in found:
                target = resolve(p, module_path_at(base, spans, pos))
                if not target:
                    continue
                to = target[0] if target[0] in names else reexports.get(target[0])
                if to and to != name:
                    line = raw.count("\n", 0, pos) + 1
                    text = raw.splitlines()[line - 1].strip()
                    key = (name, to)
                    if key not in edges:
                        edges[key] = f"{path}:{line}: {text}"
    return names, edges


def cycles(names, edges):
    """Strongly connected components of more than one module, each as one cycle."""
    graph = {n: sorted(b for (a, b) in edges if a == n) for n in names}
    index, low, stack, on, comps, counter = {}, {}, [], set(), [], [0]

    def visit(v):
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on.add(v)
        for w in graph[v]:
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                comps.append(sorted(comp))

    for n in names:
        if n not in index:
            visit(n)
    result = []
    for comp in comps:
        start, members = comp[0], set(comp)
        prev, queue = {start: None}, [start]
        while queue:
            v = queue.pop(0)
            for w in graph[v]:
                if w == start:
                    loop = [v]
                    while prev[loop[-1]] is not None:
                        loop.append(prev[loop[-1]])
                    result.append((comp, list(reversed(loop)) + [start]))
                    queue = []
                    break
                if w in members and w not in prev:
                    prev[w] = v
                    queue.append(w)
    return result


def main(args):
    known, dirs = set(), []
    while args:
        arg = args.pop(0)
        if arg == "--known":
            where, _, mods = args.pop(0).partition(":")
            known.add((str(Path(where)), tuple(sorted(mods.split(",")))))
        else:
            dirs.append(arg)
    status, crates, tolerated = 0, 0, 0
    for d in map(Path, dirs):
        roots = [p for p in (d / "src/lib.rs", d / "src/main.rs", d / "lib.rs") if p.is_file()]
        for root in roots:
            crates += 1
            names, edges = edges_of(root)
            for comp, loop in cycles(names, edges):
                if (str(d), tuple(comp)) in known:
                    tolerated += 1
                    print(f"[architecture] known import cycle in {root}, to be fixed: {' -> '.join(loop)}", file=sys.stderr)
                    continue
                status = 1
                print(
                    f"[architecture] import cycle in {root}: {' -> '.join(loop)}"
                    + (f" (modules in the cycle: {', '.join(comp)})" if len(comp) > len(loop) - 1 else ""),
                    file=sys.stderr,
                )
                for a, b in zip(loop, loop[1:]):
                    print(f"    {a} -> {b}: {edges[(a, b)]}", file=sys.stderr)
    if status == 0:
        print(
            f"[architecture] ok: no new import cycle between the modules of {crates} crates"
            + (f" ({tolerated} known, listed above)" if tolerated else ""),
            file=sys.stderr,
        )
    return status


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
