#!/usr/bin/env python3
"""Summaries for the bench scripts: medians, percentiles, ratios.

  stats.py table FILE                 FILE: lines "SERIES MICROSECONDS"
  stats.py ratio FILE A B TARGET      median(A) / median(B), against "<= TARGET"
  stats.py speedup FILE SLOW FAST     median(SLOW) / median(FAST)
  stats.py stages TRACE               durations of the processes in an strace -f -ttt
                                      -e trace=execve log, by role (venv, pip, ...)
"""
import re
import statistics
import sys


def load(path):
    series = {}
    with open(path) as f:
        for line in f:
            parts = line.split()
            if len(parts) == 2:
                series.setdefault(parts[0], []).append(float(parts[1]))
    return series


def pct(values, q):
    v = sorted(values)
    return v[min(len(v) - 1, int(q * (len(v) - 1) + 0.5))]


def fmt(us):
    if us >= 1e6:
        return "%.2f s" % (us / 1e6)
    return "%.2f ms" % (us / 1e3)


def table(path):
    series = load(path)
    width = max(len(k) for k in series)
    print("  %-*s %5s %12s %12s %12s %12s" % (width, "series", "n", "median", "p90", "min", "max"))
    for name, v in series.items():
        print("  %-*s %5d %12s %12s %12s %12s" % (width, name, len(v), fmt(statistics.median(v)),
                                                   fmt(pct(v, 0.9)), fmt(min(v)), fmt(max(v))))


def ratio(path, a, b, target):
    s = load(path)
    r = statistics.median(s[a]) / statistics.median(s[b])
    if target == "-":
        print("  ratio median(%s) / median(%s) = %.3f   (for scale; no target)" % (a, b, r))
        return
    verdict = "MET" if r <= float(target) else "MISSED"
    print("  ratio median(%s) / median(%s) = %.3f   target <= %s: %s" % (a, b, r, target, verdict))


def speedup(path, slow, fast):
    s = load(path)
    r = statistics.median(s[slow]) / statistics.median(s[fast])
    print("  speed-up median(%s) / median(%s) = %.2fx (saves %s per build)"
          % (slow, fast, r, fmt(statistics.median(s[slow]) - statistics.median(s[fast]))))


LINE = re.compile(r"^(\d+)\s+(\d+\.\d+)\s+(.*)$")


def role(argv):
    a = " ".join(argv)
    if not argv:
        return None
    if argv[0].rsplit("/", 1)[-1] in ("bash", "sh", "timeout"):
        return "the seed's two commands (bash -c)"
    if "clsi-runner" in argv[0]:
        return "clsi-runner (whole compile)"
    if "clsi-venvs" in argv[0]:
        return "clsi-venvs build (whole build)"
    if "-m venv" in a:
        return "venv creation" + (" (with pip)" if "--without-pip" not in a else " (--without-pip)")
    if "ensurepip" in a:
        return "  of which ensurepip (pip into the venv)"
    if "--no-index" in a and "pip" in a:
        return "    of which ensurepip's pip install of pip"
    if "pip" in a and "--dry-run" in a:
        return "pip resolve (--dry-run)"
    if "pip" in a and "install" in a:
        return "pip install"
    if "importlib.metadata" in a:
        return "list installed packages"
    if "platform" in a and "sys.version" in a:
        return "interpreter probe"
    if argv[0] == "/bin/true":
        return "the compile's command (/bin/true) starts"
    return None


def stages(path):
    started, argvs, rows = {}, {}, []
    with open(path) as f:
        for line in f:
            m = LINE.match(line)
            if not m:
                continue
            pid, t, rest = m.group(1), float(m.group(2)), m.group(3)
            if rest.startswith("execve(") and " = -1 " not in rest:
                argv = re.findall(r'"((?:[^"\\]|\\.)*)"', rest.split("], 0x")[0])[1:]
                started[pid], argvs[pid] = t, argv
            elif rest.startswith("+++ exited") or rest.startswith("+++ killed"):
                if pid in started and argvs[pid] and argvs[pid][0] != "/bin/true":
                    r = role(argvs[pid])
                    if r:
                        rows.append((started[pid], r, t - started[pid]))
    for pid, t in started.items():  # the compile's command: its start is what counts
        if argvs[pid] and argvs[pid][0] == "/bin/true":
            rows.append((t, role(argvs[pid]), 0.0))
    rows.sort()
    t0 = rows[0][0] if rows else 0
    for start, r, d in rows:
        if r.endswith("starts"):
            print("  +%6.2f s  %s" % (start - t0, r))
        else:
            print("  +%6.2f s  %-42s %7.2f s" % (start - t0, r, d))
    build_end = [s + d for s, r, d in rows if r.startswith("clsi-venvs")]
    cmd = [s for s, r, d in rows if r.endswith("starts")]
    if build_end and cmd:
        print("  the hook returned %.2f s after clsi-venvs exited (it polls the key's lock: "
              "20, 40, then every 50 ms)" % (cmd[0] - build_end[0]))


def main():
    cmd = sys.argv[1]
    if cmd == "table":
        table(sys.argv[2])
    elif cmd == "ratio":
        ratio(*sys.argv[2:6])
    elif cmd == "speedup":
        speedup(*sys.argv[2:5])
    elif cmd == "stages":
        stages(sys.argv[2])
    else:
        sys.exit(__doc__)


if __name__ == "__main__":
    main()
