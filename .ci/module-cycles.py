#!/usr/bin/env python3
"""Fails when modules of a crate import each other in a circle.

For every crate under crates/, each file `src/<name>.rs` is a module; an edge a -> b is a
`crate::b` path in a's code outside its `#[cfg(test)]` part. lib.rs and main.rs declare the
modules and are not part of the graph. Prints each circle found and exits 1.
"""
import pathlib
import re
import sys

def module_edges(src: pathlib.Path):
    mods = {p.stem: p for p in src.glob("*.rs") if p.stem not in ("lib", "main")}
    edges = {}
    for name, path in mods.items():
        text = path.read_text()
        cut = text.find("#[cfg(test)]")
        if cut >= 0:
            text = text[:cut]
        text = re.sub(r"//.*", "", text)
        used = set(re.findall(r"\bcrate::(\w+)", text))
        # `use crate::{a, b::c}` groups
        for group in re.findall(r"\bcrate::\{([^}]*)\}", text, re.S):
            used |= {part.strip().split("::")[0] for part in group.split(",") if part.strip()}
        edges[name] = sorted(m for m in used if m in mods and m != name)
    return edges

def cycles(edges):
    found, state, stack = [], {}, []
    def visit(node):
        state[node] = "open"
        stack.append(node)
        for nxt in edges.get(node, []):
            if state.get(nxt) == "open":
                found.append(stack[stack.index(nxt):] + [nxt])
            elif nxt not in state:
                visit(nxt)
        stack.pop()
        state[node] = "done"
    for node in sorted(edges):
        if node not in state:
            visit(node)
    return found

def main():
    root = pathlib.Path(__file__).resolve().parent.parent
    bad = 0
    for src in sorted(root.glob("crates/*/src")) + sorted(root.glob("crates/*/src/bin/*")):
        if not src.is_dir():
            continue
        for circle in cycles(module_edges(src)):
            print(f"{src.relative_to(root)}: import circle {' -> '.join(circle)}")
            bad += 1
    if bad:
        sys.exit(1)
    print("no import circles between modules")

if __name__ == "__main__":
    main()
