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
  "generated": {"py_files": 17000, "py_bytes": 40000000,
                "blobs": 40, "blob_bytes": 180000000}
                                 a heavy package (bench/link_store.sh): that
                                 many Python modules (valid code of realistic
                                 shape, log-normal sizes, py_bytes in all) in
                                 subpackages foo/subNNN/, and that many
                                 incompressible foo/_lib/_extNNN.so blobs
                                 (blob_bytes in all); the same modules for the
                                 same name and version
  "record_extra": ["../../../../x"]
                                 rows added to the wheel's RECORD (pip keeps
                                 rows it did not install)

Keys for the shapes a real wheel can take, which the pip-vs-link comparison
(tests/integration/test_pip_vs_link.cpp) uses (all optional):
  "entry_points": "[console_scripts]\ntool = foo.cli:main\n"
                                 the dist-info's entry_points.txt
  "metadata": "Provides-Extra: cli\nSummary: x\n"
                                 more header lines of METADATA
  "dist_info": {"top_level.txt": "foo\n", "licenses/LICENSE": "..."}
                                 more files in the dist-info directory
  "binary_files": {"foo/blob.bin": "<base64>"}
                                 files whose bytes are given in base64 (any
                                 bytes, e.g. not UTF-8, or empty)
  "root_is_purelib": false       WHEEL says Root-Is-Purelib: false (the root
                                 goes to platlib); the tag stays py3-none-any
  "modes": {"foo/run.sh": "755", "foo-1.0.data/scripts/x": "644"}
                                 the zip's Unix mode of those paths (inside
                                 the wheel), instead of 644 (755 for scripts)
  "dir_entries": ["foo/", "foo/empty/"]
                                 directory entries in the zip (pip makes no
                                 directory for them: only files' parents)
  "data" keys may name any scheme: scripts/, data/, headers/, purelib/,
  platlib/. RECORD is written by the csv module, so a path with a comma or
  a quote is quoted as pip's own reader expects.

OUT receives files/*.whl and simple/<project>/index.html; the index URL is
file://OUT/simple/ or http://HOST:PORT/simple/ when served.
"""
import argparse
import base64
import csv
import hashlib
import html
import io
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


def write_wheel(out_dir, name, version, requires, files, record_extra=(), executable=(),
                dist_info=None, root_is_purelib=True, modes=None, dir_entries=(),
                metadata_extra=""):
    dist = "%s.dist-info" % dist_base(name, version)
    metadata = "Metadata-Version: 2.1\nName: %s\nVersion: %s\n" % (name, version)
    metadata += "".join("Requires-Dist: %s\n" % r for r in requires)
    metadata += metadata_extra
    entries = dict(files)
    for rel, data in (dist_info or {}).items():
        entries["%s/%s" % (dist, rel)] = data
    entries[dist + "/METADATA"] = metadata.encode()
    entries[dist + "/WHEEL"] = (b"Wheel-Version: 1.0\nGenerator: mkindex\n"
                                b"Root-Is-Purelib: " + (b"true" if root_is_purelib else b"false") +
                                b"\nTag: py3-none-any\n")
    # Quoted where needed (a comma in a path), "\n" line ends; for plain
    # paths the same bytes as "%s,%s,%d\n".
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    for p, d in sorted(entries.items()):
        writer.writerow([p, record_hash(d), len(d)])
    for p in record_extra:
        writer.writerow([p, "", ""])
    writer.writerow([dist + "/RECORD", "", ""])
    entries[dist + "/RECORD"] = out.getvalue().encode()
    modes = modes or {}
    path = os.path.join(out_dir, "files", wheel_name(name, version))
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as z:
        for d in sorted(dir_entries):
            info = zipfile.ZipInfo(d if d.endswith("/") else d + "/", date_time=(2020, 1, 1, 0, 0, 0))
            info.external_attr = (0o40755 << 16) | 0x10  # a directory, for Unix and DOS readers
            z.writestr(info, b"")
        for p in sorted(entries):
            info = zipfile.ZipInfo(p, date_time=(2020, 1, 1, 0, 0, 0))
            # pip marks a file executable only for a regular-file mode with x bits.
            mode = 0o100755 if p in executable else 0o644
            if p in modes:
                mode = 0o100000 | int(str(modes[p]), 8)
            info.external_attr = mode << 16
            z.writestr(info, entries[p])
    return path


_WORDS = ("array input output value axis shape default compute return solver matrix sparse "
          "vector integrate optimize interpolate signal filter kernel sample estimate linear "
          "method parameter tolerance iteration convergence boundary gradient sequence order "
          "dtype result given number function object option algorithm").split()

_FUNC = '''

def {f}(x, y=None, *, scale={a}.{b}, mode="{w}"):
    """{doc}

    Parameters
    ----------
    x : array_like
        The {w} to {w2}.
    y : int, optional
        How many {w3} steps; {a} by default.

    Returns
    -------
    out : list
        {doc2}

    Notes
    -----
    {doc3}

    Examples
    --------
    >>> {f}({a}, {b})
    [{c}.0, {a}, {b}, '{w2}_{w3}']
    """
    # {doc2}
    if y is None:
        y = {a}
    total = 0.0
    for i in range(int(y)):
        total += (x * i + {b}) / scale
        if total > {c} and mode == "{w}":
            break
    return [total, x, y, "{w2}_{w3}"]
'''

_CLASS = '''

class {C}(object):
    """{doc}"""
    _cache = {{}}

    # {doc2}
    def __init__(self, a, b={a}):
        self.a = a
        self.b = b

    def {f}(self, value):
        try:
            return self._cache[value]
        except KeyError:
            r = self.a * value + self.b - {c}
            self._cache[value] = r
            return r

    @property
    def {w}_{w2}(self):
        return (self.a, self.b, {b}, "{w3}")
'''


def _module_text(rng, size):
    """Python source of about `size` bytes: a docstring, imports, and
    functions and classes of the kind a scientific package has."""
    def words(n):
        return " ".join(rng.choice(_WORDS) for _ in range(n))

    parts = ['"""%s.\n\n%s.\n"""\nimport math\nimport os\n\n__all__ = []\n' % (
        words(6).capitalize(), words(20).capitalize())]
    n, i = len(parts[0]), 0
    while n + 400 < size:
        i += 1
        fields = dict(f="%s_%s_%d" % (rng.choice(_WORDS), rng.choice(_WORDS), i),
                      C="%s%s%d" % (rng.choice(_WORDS).title(), rng.choice(_WORDS).title(), i),
                      w=rng.choice(_WORDS), w2=rng.choice(_WORDS), w3=rng.choice(_WORDS),
                      a=rng.randint(1, 99), b=rng.randint(0, 999), c=rng.randint(1000, 99999),
                      doc=words(rng.randint(5, 25)).capitalize() + ".",
                      doc2=words(rng.randint(5, 12)).capitalize() + ".",
                      doc3=words(rng.randint(10, 60)).capitalize() + ".")
        text = (_CLASS if i % 3 == 0 else _FUNC).format(**fields)
        parts.append(text)
        n += len(text)
    return "".join(parts).encode()


def generated_files(package, g, seed):
    """The files of a "generated" spec: py_files modules of py_bytes in all,
    in subpackages of about 40 modules (each subpackage's __init__.py counts
    as one of them), and blobs random files (incompressible) of blob_bytes in
    all, named like extension modules (package/_lib/_extNNN.so)."""
    import random
    rng = random.Random(seed)
    files = {}
    n_py, py_bytes = int(g.get("py_files", 0)), int(g.get("py_bytes", 0))
    if n_py:
        files["%s/__init__.py" % package] = b""
    per_sub = 40
    names = []
    for i in range(max(0, n_py - 1)):
        sub, k = divmod(i, per_sub)
        names.append("%s/sub%03d/%s.py" % (package, sub, "__init__" if k == 0 else "mod%03d" % k))
    # Sizes: log-normal (most modules a few KB, a few much larger), scaled to
    # py_bytes in all.
    weights = [rng.lognormvariate(0, 1) for _ in names]
    scale = py_bytes / (sum(weights) or 1)
    for name, w in zip(names, weights):
        files[name] = _module_text(rng, max(64, int(w * scale)))
    n_blobs, blob_bytes = int(g.get("blobs", 0)), int(g.get("blob_bytes", 0))
    weights = [rng.uniform(0.2, 1.8) for _ in range(n_blobs)]
    for i, w in enumerate(weights):
        size = int(blob_bytes * w / sum(weights))
        files["%s/_lib/_ext%03d.so" % (package, i)] = os.urandom(size)
    return files

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
            if s.get("generated"):
                files.update(generated_files(package, s["generated"],
                                             "%s-%s" % (s["name"], s["version"])))
            for rel, b64 in s.get("binary_files", {}).items():
                files[rel] = base64.b64decode(b64)
            dist_info = {k: v.encode() for k, v in s.get("dist_info", {}).items()}
            if "entry_points" in s:
                dist_info["entry_points.txt"] = s["entry_points"].encode()
            print(write_wheel(args.out, s["name"], s["version"], s.get("requires", []), files,
                              s.get("record_extra", []), executable, dist_info,
                              s.get("root_is_purelib", True), s.get("modes", {}),
                              s.get("dir_entries", []), s.get("metadata", "")))
    write_index(args.out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
