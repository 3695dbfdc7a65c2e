#include "pip_resolve_shim.hpp"

namespace clsi::venv {
namespace {

// Python 3 run as `python -I -c CODE DISTS pip-args...`. Kept small: every
// name it touches in pip (Hashes, check_against_path, _allowed, cli.main;
// network.session.user_agent since pip 19.3) has been there since pip 10;
// without one of them pip runs unwrapped.
//
// pip's User-Agent, sent to the index, is built when its session is: it runs
// `lsb_release -a` (a shell script and four more processes), scans every
// installed distribution for setuptools' version and runs `rustc --version`
// when there is one: 0.1-0.25 s of every resolve, and details of the build
// host the index has no use for. The index is told pip's version, the
// interpreter and the platform instead, in pip's format.
constexpr const char* kShim = R"PY(import json, os, re, sys
dists = sys.argv.pop(1)
sys.argv[0] = "pip"
if sys.path and sys.path[0] in ("", os.getcwd()):
    del sys.path[0]
spared = []
held = {}  # a wheel's path -> the sha256 of the store's distribution of it
from_store = []
if dists:
    try:
        from pip._internal.utils.hashes import Hashes
        _check = Hashes.check_against_path
        _hex = re.compile("[0-9a-f]{64}")
        def _held(hashes):
            for h in getattr(hashes, "_allowed", {}).get("sha256", ()):
                if _hex.fullmatch(h) and os.path.isfile(os.path.join(dists, h, "manifest.json")):
                    return h
            return None
        def check_against_path(self, path):
            h = _held(self)
            if h is None:
                return _check(self, path)
            spared.append(h)
            held[os.path.abspath(path)] = h
        Hashes.check_against_path = check_against_path
    except Exception:
        pass
try:
    import platform
    from pip import __version__ as _pip
    from pip._internal.network import session as _session
    def _user_agent():
        data = {"installer": {"name": "pip", "version": _pip}, "ci": None,
                "python": platform.python_version(),
                "implementation": {"name": platform.python_implementation(),
                                   "version": platform.python_version()}}
        if platform.system():
            data.setdefault("system", {})["name"] = platform.system()
        if platform.release():
            data.setdefault("system", {})["release"] = platform.release()
        if platform.machine():
            data["cpu"] = platform.machine()
        return "pip/%s %s" % (_pip, json.dumps(data, separators=(",", ":"), sort_keys=True))
    _session.user_agent = _user_agent
except Exception:
    pass
try:
    from pip._internal.metadata import select_backend
    _dist_class = select_backend().Distribution
    _from_wheel = _dist_class.from_wheel.__func__
    _read = {}
    def _stored(cls, wheel, name):
        h = held.get(os.path.abspath(getattr(wheel, "location", "") or ""))
        if h is None:
            return None
        lib = os.path.join(dists, h, "lib")
        infos = [d for d in os.listdir(lib) if d.endswith(".dist-info")]
        if len(infos) != 1:
            return None
        stem = infos[0][: -len(".dist-info")].rpartition("-")[0]
        if re.sub(r"[-_.]+", "-", stem).lower() != re.sub(r"[-_.]+", "-", name).lower():
            return None
        dist = cls.from_directory(os.path.join(lib, infos[0]))
        from_store.append(h)
        return dist
    def from_wheel(cls, wheel, name):
        try:
            stored = _stored(cls, wheel, name)
        except Exception:
            stored = None
        if stored is not None:
            return stored
        try:
            st = os.stat(wheel.location)
            key = (cls, wheel.location, name, st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns)
        except Exception:
            return _from_wheel(cls, wheel, name)
        if key not in _read:
            _read[key] = _from_wheel(cls, wheel, name)
        return _read[key]
    _dist_class.from_wheel = classmethod(from_wheel)
except Exception:
    pass
from pip._internal.cli.main import main
if sys.argv[1:] == ["--spare"]:
    # Started ahead (pip_spare.hpp): what a resolve imports, now; then the
    # arguments of one resolve, a JSON list on one line of stdin.
    import importlib
    for _name in @PRELOAD@:
        try:
            importlib.import_module(_name)
        except Exception:
            pass
    print(@READY@, flush=True)
    _request = sys.stdin.buffer.readline()
    try:
        _args = json.loads(_request.decode("utf-8"))
    except ValueError:
        _args = None
    if not isinstance(_args, list) or not all(isinstance(a, str) for a in _args):
        os._exit(2 if _request else 0)
    sys.argv[1:] = _args
code = main()
if spared:
    print("%s: %d wheel(s) whose sha256 the store holds" % (@PREFIX@, len(set(spared))),
          file=sys.stderr)
if from_store:
    print("%s: the metadata of %d of them read from the store" % (@PREFIX@, len(set(from_store))),
          file=sys.stderr)
import logging
logging.shutdown()
sys.stdout.flush()
sys.stderr.flush()
os._exit(code if isinstance(code, int) else 1)
)PY";

// What a resolve imports after pip's main module, imported by a spare before
// it says it is ready (each only if this pip has it).
constexpr const char* kPreload[] = {
    "pip._internal.commands.install",
    "pip._internal.resolution.resolvelib.resolver",
    "pip._internal.resolution.resolvelib.factory",
    "pip._internal.resolution.resolvelib.provider",
    "pip._internal.operations.prepare",
    "pip._internal.index.package_finder",
    "pip._internal.index.collector",
    "pip._internal.models.installation_report",
    "pip._internal.network.download",
    "pip._internal.req.req_file",
    "pip._internal.metadata.importlib",
    "pip._internal.metadata.pkg_resources",
    "pip._vendor.pkg_resources",
    "importlib.metadata",
    "netrc",
};

// A spare's start, run by the base interpreter: the venv, as a build makes
// its own (installer.cpp), then that venv's interpreter running the shim.
constexpr const char* kSpareBoot = R"PY(import os, sys, venv
target, dists, shim = sys.argv[1:4]
venv.main(["--system-site-packages", "--without-pip", target])
python = os.path.join(target, "bin", "python3")
os.execv(python, [python, "-I", "-c", shim, dists, "--spare"])
)PY";

std::string quoted(std::string_view text) {
  std::string q(1, '"');
  q.append(text);
  q.push_back('"');
  return q;
}

// The shim with its placeholders filled in.
std::string shim_code() {
  std::string code = kShim;
  std::string preload = "(";
  for (const char* m : kPreload)
    preload += quoted(m) + ", ";
  preload += ")";
  for (const auto& [marker, value] :
       {std::pair<std::string_view, std::string>{"@PREFIX@", quoted(kSparedLinePrefix)},
        {"@READY@", quoted(kSpareReadyLine)},
        {"@PRELOAD@", preload}}) {
    for (auto at = code.find(marker); at != std::string::npos; at = code.find(marker, at)) {
      code.replace(at, marker.size(), value);
      at += value.size();
    }
  }
  return code;
}

}  // namespace

std::vector<std::string> pip_resolve_launcher(const std::string& dists_dir) {
  return {"-c", shim_code(), dists_dir};
}

std::vector<std::string> pip_spare_launcher(const std::string& venv_dir,
                                            const std::string& dists_dir) {
  return {"-I", "-c", kSpareBoot, venv_dir, dists_dir, shim_code()};
}

std::vector<std::string> pip_launcher() {
  return pip_resolve_launcher("");
}

}  // namespace clsi::venv
