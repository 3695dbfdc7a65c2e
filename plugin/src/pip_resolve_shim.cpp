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
constexpr const char* kShim = R"PY(import os, re, sys
dists = sys.argv.pop(1)
sys.argv[0] = "pip"
if sys.path and sys.path[0] in ("", os.getcwd()):
    del sys.path[0]
spared = []
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
        Hashes.check_against_path = check_against_path
    except Exception:
        pass
try:
    import json, platform
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
    def from_wheel(cls, wheel, name):
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
code = main()
if spared:
    print("%s: %d wheel(s) whose sha256 the store holds" % (PREFIX, len(set(spared))),
          file=sys.stderr)
import logging
logging.shutdown()
sys.stdout.flush()
sys.stderr.flush()
os._exit(code if isinstance(code, int) else 1)
)PY";

}  // namespace

std::vector<std::string> pip_resolve_launcher(const std::string& dists_dir) {
  std::string code = kShim;
  const std::string marker = "PREFIX";
  code.replace(code.find(marker), marker.size(), "\"" + std::string(kSparedLinePrefix) + "\"");
  return {"-c", code, dists_dir};
}

std::vector<std::string> pip_launcher() {
  return pip_resolve_launcher("");
}

}  // namespace clsi::venv
