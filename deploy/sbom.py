#!/usr/bin/env python3
"""A CycloneDX 1.5 SBOM (JSON) of the Sluice binary's dependency tree, made from `cargo
metadata` (no cargo-cyclonedx: it builds the whole of cargo, minutes on 2 cores).

    python3 deploy/sbom.py [--out FILE]      # default: stdout

Components: every package reachable from `sluice` through normal (not dev, not build)
dependencies on the host platform, each with its version, purl (pkg:cargo/NAME@VERSION),
licence expression, the SHA-256 of its crates.io archive (from Cargo.lock) and its repository;
`dependencies` gives the graph. Standard library only; run from the repository."""
import argparse
import json
import subprocess
import sys
import tomllib
import uuid
from datetime import datetime, timezone


def host_triple():
    out = subprocess.run(["rustc", "-vV"], capture_output=True, text=True, check=True).stdout
    return next(l.split(": ", 1)[1] for l in out.splitlines() if l.startswith("host: "))


def metadata():
    cmd = ["cargo", "metadata", "--format-version", "1", "--locked", "--filter-platform", host_triple()]
    return json.loads(subprocess.run(cmd, capture_output=True, text=True, check=True).stdout)


def checksums(lock_path):
    with open(lock_path, "rb") as f:
        lock = tomllib.load(f)
    return {(p["name"], p["version"]): p["checksum"] for p in lock.get("package", []) if "checksum" in p}


def reachable(meta):
    """Package ids reachable from the root through normal dependencies, and the graph."""
    nodes = {n["id"]: n for n in meta["resolve"]["nodes"]}
    root = meta["resolve"]["root"]
    graph, seen, todo = {}, {root}, [root]
    while todo:
        pid = todo.pop()
        deps = [d["pkg"] for d in nodes[pid]["deps"] if any(k["kind"] is None for k in d["dep_kinds"])]
        graph[pid] = sorted(deps)
        for d in deps:
            if d not in seen:
                seen.add(d)
                todo.append(d)
    return root, graph


def purl(pkg):
    return f"pkg:cargo/{pkg['name']}@{pkg['version']}"


def component(pkg, sums, kind):
    c = {
        "type": kind,
        "bom-ref": purl(pkg),
        "name": pkg["name"],
        "version": pkg["version"],
        "purl": purl(pkg),
    }
    if pkg.get("description"):
        c["description"] = " ".join(pkg["description"].split())
    if pkg.get("license"):
        c["licenses"] = [{"expression": pkg["license"]}]
    sha = sums.get((pkg["name"], pkg["version"]))
    if sha:
        c["hashes"] = [{"alg": "SHA-256", "content": sha}]
    if pkg.get("repository"):
        c["externalReferences"] = [{"type": "vcs", "url": pkg["repository"]}]
    return c


def sbom(meta, sums):
    root, graph = reachable(meta)
    pkgs = {p["id"]: p for p in meta["packages"]}
    return {
        "bomFormat": "CycloneDX",
        "specVersion": "1.5",
        "serialNumber": f"urn:uuid:{uuid.uuid4()}",
        "version": 1,
        "metadata": {
            "timestamp": datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"),
            "tools": {"components": [{"type": "application", "name": "sluice deploy/sbom.py"}]},
            "component": component(pkgs[root], sums, "application"),
        },
        "components": sorted(
            (component(pkgs[i], sums, "library") for i in graph if i != root), key=lambda c: c["bom-ref"]
        ),
        "dependencies": [
            {"ref": purl(pkgs[i]), "dependsOn": sorted(purl(pkgs[d]) for d in graph[i])} for i in sorted(graph)
        ],
    }


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", help="write here instead of stdout")
    a = ap.parse_args()
    meta = metadata()
    doc = sbom(meta, checksums(meta["workspace_root"] + "/Cargo.lock"))
    text = json.dumps(doc, indent=2) + "\n"
    if a.out:
        with open(a.out, "w") as f:
            f.write(text)
        print(f"SBOM: {len(doc['components'])} components -> {a.out}", file=sys.stderr)
    else:
        sys.stdout.write(text)


if __name__ == "__main__":
    main()
