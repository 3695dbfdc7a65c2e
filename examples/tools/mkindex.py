#!/usr/bin/env python3
"""Build wheels and a PEP 503 "simple" package index without any network.

A wheel is a zip file with the package's files and a .dist-info directory;
this script writes them directly, so no build backend (and no download of
one) is needed.

  mkindex.py OUT --source DIR [--source DIR ...]   packages from source trees
  mkindex.py OUT --spec FILE.json                  packages described in JSON

A source tree holds pyproject.toml ([project] name, version, dependencies)
and the package's modules. A JSON spec is a list of objects:
  {"name": "foo", "version": "1.0", "requires": ["bar>=1"],
   "files": {"foo/__init__.py": "X = 1\n"}, "pad_bytes": 0}
pad_bytes adds an incompressible data file of that size (for size caps).

Keys for hostile wheels, which the tests use to check that the builder
refuses them (all optional):
  "pth_marker": "/abs/marker"    a top-level foo-marker.pth that writes that
                                 file whenever an interpreter of the venv starts
  "data": {"scripts/python3": "#!/bin/sh\n...",
           "data/pyvenv.cfg": "..."}
                                 files under foo-1.0.data/ (scripts/ becomes
                                 the venv's bin/, data/ its root); scripts are
                                 executable
  "many_files": 60000            that many small files under foo/_many/
  "record_extra": ["../../../../x"]
                                 rows added to the wheel's RECORD (pip keeps
                                 rows it did not install)

OUT receives files/*.whl and simple/<project>/index.html; the index URL is
file://OUT/simple/ or http://HOST:PORT/simple/ when served.
"""
import argparse
import base64
import hashlib
import html
import json
import os
import re
import sys
import tomllib
import zipfile


def normalize(name):
    return re.sub(r"[-_.]+", "-", name).lower()


def wheel_name(name, version):
    return "%s-%s-py3-none-any.whl" % (re.sub(r"[-_.]+", "_", name), version)


def record_hash(data):
    digest = hashlib.sha256(data).digest()
    return "sha256=" + base64.urlsafe_b64encode(digest).rstrip(b"=").decode()


def dist_base(name, version):
    return "%s-%s" % (re.sub(r"[-_.]+", "_", name), version)


def write_wheel(out_dir, name, version, requires, files, record_extra=(), executable=()):
    dist = "%s.dist-info" % dist_base(name, version)
    metadata = "Metadata-Version: 2.1\nName: %s\nVersion: %s\n" % (name, version)
    metadata += "".join("Requires-Dist: %s\n" % r for r in requires)
    entries = dict(files)
    entries[dist + "/METADATA"] = metadata.encode()
    entries[dist + "/WHEEL"] = (b"Wheel-Version: 1.0\nGenerator: mkindex\n"
                                b"Root-Is-Purelib: true\nTag: py3-none-any\n")
    record = "".join("%s,%s,%d\n" % (p, record_hash(d), len(d)) for p, d in sorted(entries.items()))
    record += "".join("%s,,\n" % p for p in record_extra)
    record += dist + "/RECORD,,\n"
    entries[dist + "/RECORD"] = record.encode()
    path = os.path.join(out_dir, "files", wheel_name(name, version))
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as z:
        for p in sorted(entries):
            info = zipfile.ZipInfo(p, date_time=(2020, 1, 1, 0, 0, 0))
            # pip marks a file executable only for a regular-file mode with x bits.
            info.external_attr = (0o100755 if p in executable else 0o644) << 16
            z.writestr(info, entries[p])
    return path


def from_source(src):
    with open(os.path.join(src, "pyproject.toml"), "rb") as f:
        project = tomllib.load(f)["project"]
    files = {}
    for root, dirs, names in os.walk(src):
        dirs[:] = [d for d in dirs if d != "__pycache__"]
        for n in names:
            full = os.path.join(root, n)
            rel = os.path.relpath(full, src)
            if rel == "pyproject.toml" or n.endswith(".pyc"):
                continue
            with open(full, "rb") as f:
                files[rel] = f.read()
    return project["name"], project["version"], project.get("dependencies", []), files


def write_index(out_dir):
    simple = os.path.join(out_dir, "simple")
    projects = {}
    for whl in sorted(os.listdir(os.path.join(out_dir, "files"))):
        project = normalize(whl.split("-")[0])
        projects.setdefault(project, []).append(whl)
    os.makedirs(simple, exist_ok=True)
    with open(os.path.join(simple, "index.html"), "w") as f:
        f.write("<!DOCTYPE html><html><body>\n")
        for p in sorted(projects):
            f.write('<a href="%s/">%s</a>\n' % (p, p))
        f.write("</body></html>\n")
    for p, wheels in projects.items():
        os.makedirs(os.path.join(simple, p), exist_ok=True)
        with open(os.path.join(simple, p, "index.html"), "w") as f:
            f.write("<!DOCTYPE html><html><body>\n")
            for w in wheels:
                with open(os.path.join(out_dir, "files", w), "rb") as wf:
                    digest = hashlib.sha256(wf.read()).hexdigest()
                f.write('<a href="../../files/%s#sha256=%s">%s</a>\n'
                        % (html.escape(w), digest, html.escape(w)))
            f.write("</body></html>\n")


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("out")
    ap.add_argument("--source", action="append", default=[])
    ap.add_argument("--spec")
    args = ap.parse_args()
    os.makedirs(os.path.join(args.out, "files"), exist_ok=True)
    for src in args.source:
        name, version, requires, files = from_source(src)
        print(write_wheel(args.out, name, version, requires, files))
    if args.spec:
        with open(args.spec) as f:
            specs = json.load(f)
        for s in specs:
            files = {k: v.encode() for k, v in s.get("files", {}).items()}
            package = normalize(s["name"]).replace("-", "_")
            if s.get("pad_bytes"):
                files["%s/_pad.bin" % package] = os.urandom(s["pad_bytes"])
            if s.get("pth_marker"):
                # .pth lines that start with "import" are executed by site.py.
                line = "import os; open(%r, 'w').write('pth ran\\n')\n" % s["pth_marker"]
                files["%s-marker.pth" % package] = line.encode()
            data = "%s.data" % dist_base(s["name"], s["version"])
            executable = set()
            for rel, text in s.get("data", {}).items():
                files["%s/%s" % (data, rel)] = text.encode()
                if rel.startswith("scripts/"):
                    executable.add("%s/%s" % (data, rel))
            for i in range(s.get("many_files", 0)):
                files["%s/_many/f%06d.txt" % (package, i)] = b"x\n"
            print(write_wheel(args.out, s["name"], s["version"], s.get("requires", []), files,
                              s.get("record_extra", []), executable))
    write_index(args.out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
