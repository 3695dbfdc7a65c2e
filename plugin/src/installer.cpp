#include "installer.hpp"

#include <fcntl.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <ctime>
#include <map>
#include <set>

#include "clsi/errno_text.hpp"
#include "clsi/unique_fd.hpp"
#include "dist_info.hpp"
#include "dist_install.hpp"
#include "index_client.hpp"
#include "isolation.hpp"
#include "key.hpp"
#include "local_wheel.hpp"
#include "pip_messages.hpp"
#include "pip_report.hpp"
#include "pip_resolve_shim.hpp"

namespace clsi::venv {
namespace {

std::string describe(const RunOutcome& r, const std::string& what,
                     const std::string& deadline_reason) {
  if (r.spawn_failed) return what + " could not start: " + r.spawn_error;
  if (r.timed_out) return what + " did not finish within " + deadline_reason;
  if (!r.stopped_because.empty()) return r.stopped_because;
  return what + " failed (exit status " + std::to_string(Child::shell_status(r.wait_status)) + ")";
}

// A run that ended for reasons outside the requirements: it did not start,
// or something outside killed it (the OOM killer, an operator).
bool outside_fault(const RunOutcome& r) {
  if (r.spawn_failed) return true;
  return !r.timed_out && r.stopped_because.empty() && WIFSIGNALED(r.wait_status);
}

// "host[:port]" of an http:// URL; "" for any other scheme.
std::string http_host(const std::string& url) {
  constexpr std::string_view kHttp = "http://";
  if (url.compare(0, kHttp.size(), kHttp) != 0) return {};
  std::string rest = url.substr(kHttp.size());
  rest = rest.substr(0, rest.find_first_of("/?#"));
  if (auto at = rest.rfind('@'); at != std::string::npos) rest = rest.substr(at + 1);
  return rest;
}

// How often the user hears from a build while pip says nothing they see.
constexpr auto kProgressInterval = std::chrono::seconds(10);
// At most this many packages are listed one per line.
constexpr std::size_t kMaxListed = 200;

// pip's report, read without following a symlink or blocking, bounded.
Expected<std::string> read_report(const std::string& path) {
  UniqueFd fd(::open(path.c_str(), O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC | O_NOCTTY));
  struct stat st {};
  if (!fd || ::fstat(fd.get(), &st) != 0 || !S_ISREG(st.st_mode))
    return Error{"pip wrote no report of its resolve"};
  std::string text;
  char buf[16384];
  for (;;) {
    ssize_t n = ::read(fd.get(), buf, sizeof buf);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) return Error{"cannot read pip's report: " + std::string(clsi::errno_text(errno))};
    if (n == 0) return text;
    text.append(buf, static_cast<std::size_t>(n));
    if (text.size() > kMaxReportBytes) return Error{"pip's report is larger than 16 MiB"};
  }
}

}  // namespace

// pip's words for a fault of the service: the index or the disk, not the
// project's requirements. pip still ends such a run with "no matching
// distribution", so these are looked for in every line. Any OSError of pip's
// own is one: a requirement line names no file for it to open.
bool service_trouble(std::string_view line) {
  for (std::string_view s : {"No space left on device",
                             "[Errno 28]",
                             "Disk quota exceeded",
                             "[Errno 122]",
                             "Permission denied",
                             "[Errno 13]",
                             "Read-only file system",
                             "[Errno 30]",
                             "Could not fetch URL",
                             "NewConnectionError",
                             "Connection refused",
                             "Max retries exceeded",
                             "Temporary failure in name resolution",
                             "Name or service not known",
                             "Read timed out",
                             "ConnectTimeoutError",
                             "SSLError",
                             "Connection reset by peer",
                             "HTTP error 5",
                             "Input/output error",
                             "Too many open files",
                             "Could not install packages due to an OSError"}) {
    if (line.find(s) != std::string_view::npos) return true;
  }
  return false;
}

BuildResult Installer::build(const BuildRequest& req, const LineSink& log,
                             const LineSink& detail) const {
  BuildResult result;
  auto started = std::chrono::steady_clock::now();
  std::string venv = store_.env_dir(req.key);
  bool trouble = false;  // pip reported a fault of the index, the network or the disk
  auto fail_because = [&](std::string why, bool service_fault) {
    (void)store_.remove_env(req.key);
    result.ok = false;
    result.failure = std::move(why);
    result.service_fault = service_fault;
    return result;
  };
  auto fail = [&](std::string why) { return fail_because(std::move(why), false); };
  auto fail_service = [&](std::string why) { return fail_because(std::move(why), true); };
  auto fail_run = [&](std::string why, const RunOutcome& run) {
    return fail_because(std::move(why), trouble || outside_fault(run));
  };

  // What the user sees: the service's words, and when nothing was said for
  // a while, how long pip has been at it.
  auto last_said = std::chrono::steady_clock::now();
  auto tell = [&](const std::string& line) {
    log(line);
    last_said = std::chrono::steady_clock::now();
  };
  auto progress = [&](const std::string& phase, const PipOutput& out,
                      std::chrono::steady_clock::time_point since) {
    auto now = std::chrono::steady_clock::now();
    if (now - last_said < kProgressInterval) return;
    auto secs = std::chrono::duration_cast<std::chrono::seconds>(now - since).count();
    std::string text = "still " + phase + " after " + std::to_string(secs) + " s";
    if (!out.activity().empty()) text += " (" + out.activity() + ")";
    tell(note(text));
  };

  // Distinct packages: caps.max_packages holds before anything runs (the
  // compile refuses such a file itself; a request is checked again here).
  {
    std::set<std::string> names;
    for (const auto& r : req.requirements)
      names.insert(r.name);
    if (static_cast<int>(names.size()) > config_.caps.max_packages) {
      return fail("the requirements name " + std::to_string(names.size()) +
                  " packages, over caps.max_packages (" +
                  std::to_string(config_.caps.max_packages) + ")");
    }
  }

  auto work = PrivateWorkdir::create(store_.tmp_dir(), "build-" + req.key.substr(0, 12));
  if (!work) return fail_service(work.error());
  // pip reads the canonical lines in this order: its "line N" is written[N-1].
  const std::vector<Requirement>& written = req.requirements;
  std::string req_file = work->root() + "/requirements.txt";
  {
    std::string content;
    for (const auto& r : written)
      content += r.canonical + "\n";
    auto w = write_file_atomically(req_file, content);
    if (!w) return fail_service(w.error());
  }

  SpawnOptions base;
  base.env = isolated_environment(*work);
  base.cwd = work->cwd();
  auto to_detail = [&](std::string_view line) {
    if (detail) detail("  " + std::string(line));
  };
  auto stream = [&](std::string_view line) {
    to_detail(line);
    trouble = trouble || service_trouble(line);
  };

  // 1. The venv. With the base's pip importable, the venv needs none of its own.
  bool own_pip = req.python.pip_version.empty();
  SpawnOptions mk = base;
  mk.executable = req.python.real_path;
  mk.args = {"-I", "-m", "venv", "--system-site-packages"};
  if (!own_pip) mk.args.emplace_back("--without-pip");
  mk.args.push_back(venv);
  if (own_pip)
    tell(note("the base interpreter has no pip module; the venv gets its own pip (slower)"));
  auto r = runner_(mk, req.deadline, stream, {});
  if (!r.ok()) return fail_service(describe(r, "creating the venv", req.deadline_reason));
  // What venv made, before pip runs: after it, no wheel may have replaced or
  // added the venv's interpreter, activation scripts or pyvenv.cfg.
  struct stat made {};
  if (::stat((venv + "/bin/python3").c_str(), &made) != 0)
    return fail_service("the new venv has no bin/python3: " + std::string(clsi::errno_text(errno)));
  auto created = snapshot_venv(venv);
  if (!created) return fail_service(created.error());

  // 2. pip, from the files the service wrote. The download cache lives on
  // the volume: safe to share, because only the pinned index (and with
  // only_binary, only wheels) can fill it.
  // pip's own arguments, from its command on.
  auto pip_args = [&](const std::vector<std::string>& extra, const std::string& file,
                      const char* verb) {
    std::vector<std::string> args = {verb,
                                     "--isolated",
                                     "--no-input",
                                     "--disable-pip-version-check",
                                     "--no-color",
                                     "--progress-bar",
                                     "off",
                                     "--cache-dir",
                                     store_.pip_cache_dir(),
                                     "--index-url",
                                     config_.index_url};
    // pip caches downloads only from https:// or trusted hosts; a plain-http
    // mirror has no TLS to check, and the operator chose it.
    if (auto host = http_host(config_.index_url); !host.empty()) {
      args.insert(args.end(), {"--trusted-host", host});
    }
    if (std::string_view(verb) == "install") args.emplace_back("--no-warn-script-location");
    if (config_.only_binary) args.emplace_back("--only-binary=:all:");
    args.insert(args.end(), extra.begin(), extra.end());
    args.insert(args.end(), {"-r", file});
    return args;
  };
  auto pip_command = [&](const std::vector<std::string>& extra, const std::string& file,
                         const char* verb = "install",
                         const std::vector<std::string>& launcher = pip_launcher()) {
    SpawnOptions pip = base;
    pip.executable = venv + "/bin/python3";
    pip.args = {"-I"};
    pip.args.insert(pip.args.end(), launcher.begin(), launcher.end());
    auto own = pip_args(extra, file, verb);
    pip.args.insert(pip.args.end(), own.begin(), own.end());
    return pip;
  };
  auto pip_sink = [&](PipOutput& out) {
    return [&](std::string_view line) {
      stream(line);
      out.add(line);
    };
  };
  // pip's "-r <our file> (line N)" is the requirement on that line.
  auto humanize = [&](std::string line) {
    const std::string ref = "-r " + req_file + " (line ";
    for (auto at = line.find(ref); at != std::string::npos; at = line.find(ref, at + 1)) {
      auto close = line.find(')', at + ref.size());
      if (close == std::string::npos) break;
      int n = std::atoi(line.c_str() + at + ref.size());
      std::string what = n >= 1 && static_cast<std::size_t>(n) <= written.size()
                             ? written[static_cast<std::size_t>(n) - 1].canonical
                             : std::string("a requirement");
      line.replace(at, close + 1 - at, what);
    }
    return line;
  };
  // A pip run that failed: its problems with the user's lines when pip's
  // words say what they are, else pip's own ERROR lines.
  // A wheel whose bytes are not those the resolve chose: the index changed.
  auto served_other_bytes = [&](const std::string& names) {
    return fail_service("the index served " + (names.empty() ? "a file" : names) +
                        " with another sha256 than pip resolved moments before; nothing "
                        "of it was kept, and the next build resolves again");
  };
  auto pip_failed = [&](const std::string& what, const RunOutcome& run,
                        const PipOutput& out) -> BuildResult {
    std::string why = describe(run, what, req.deadline_reason);
    const PipFailure& f = out.failure();
    const bool ended_itself = !run.spawn_failed && !run.timed_out && run.stopped_because.empty() &&
                              WIFEXITED(run.wait_status);
    if (ended_itself && !trouble) {
      if (f.hash_mismatch) {
        std::string names;
        for (const auto& n : f.hash_mismatch_names)
          names += (names.empty() ? "" : ", ") + n;
        return served_other_bytes(names);
      }
      ExplainContext context;
      context.written = written;
      IndexClient index(config_.index_url, req.python.real_path, *work, runner_, req.deadline);
      context.project = [&](const std::string& name) { return index.project(name); };
      context.projects = [&] { return index.projects(); };
      context.only_binary = config_.only_binary;
      context.python_version = req.python.version_short;
      auto problems = explain_failure(f, context);
      if (!problems.empty()) {
        auto words = summarize_problems(problems);
        result.problems = std::move(problems);
        result.summary = words.summary;
        return fail(words.full);
      }
    }
    if (ended_itself) {
      for (const auto& e : f.errors)
        tell("  " + humanize(e));
      if (!f.errors.empty()) why += ": " + humanize(f.errors.front());
    }
    return fail_run(why, run);
  };

  const bool resolve_first = pip_resolves_first(req.python.pip_version);
  std::vector<ResolvedDistribution> chosen;
  if (resolve_first) {
    // 2a. One resolve: what would be installed, dependencies included, each
    // with its URL and sha256. The caps are checked on it, before anything
    // is installed.
    tell(note("resolving " + std::to_string(written.size()) +
              " requirement(s) with pip (nothing is installed yet)"));
    const std::string report_file = work->root() + "/report.json";
    PipOutput resolving;
    auto since = std::chrono::steady_clock::now();
    PollHook tick = [&]() -> std::string {
      progress("resolving", resolving, since);
      return {};
    };
    std::vector<std::string> resolve_args = {"--dry-run", "--report", report_file};
    if (config_.require_hashes) resolve_args.emplace_back("--require-hashes");
    // Started through pip_resolve_shim.hpp: a wheel the store holds is not
    // hashed again. By a pip started ahead when one is ready.
    std::optional<RunOutcome> ahead;
    if (resolve_ahead_) {
      ahead = resolve_ahead_(req.python, pip_args(resolve_args, req_file, "install"), req.deadline,
                             pip_sink(resolving), tick, to_detail);
    }
    r = ahead ? std::move(*ahead)
              : runner_(pip_command(resolve_args, req_file, "install",
                                    pip_resolve_launcher(store_.dists_dir())),
                        req.deadline, pip_sink(resolving), tick);
    if (!r.ok()) return pip_failed("resolving the requirements", r, resolving);
    auto report_text = read_report(report_file);
    if (!report_text) return fail_service(report_text.error());
    bool of_distribution = false;  // a chosen wheel's own metadata: the requirements'
    auto resolved = parse_pip_report(*report_text, &of_distribution);
    if (!resolved) {
      return of_distribution ? fail(resolved.error()) : fail_service(resolved.error());
    }
    // One line per package: what the resolve chose, and what the base
    // interpreter already has.
    std::map<std::string, std::vector<std::string>> needed_by;
    for (const auto& d : *resolved)
      for (const auto& n : d.requires_names)
        needed_by[n].push_back(d.name);
    tell(note("pip resolved " + std::to_string(resolved->size()) + " package(s) to install" +
              (resolved->empty() ? "" : ":")));
    std::size_t shown = 0;
    for (const auto& d : *resolved) {
      if (++shown > kMaxListed) {
        tell("  ... and " + std::to_string(resolved->size() - kMaxListed) + " more");
        break;
      }
      std::string line = "  " + d.name + " " + d.version;
      auto by = needed_by.find(normalize_name(d.name));
      if (!d.requested && by != needed_by.end()) {
        std::string parents;
        for (const auto& p : by->second)
          parents += (parents.empty() ? "" : ", ") + p;
        line += " (for " + parents + ")";
      }
      tell(line);
    }
    for (const auto& [name, version] : resolving.already_satisfied()) {
      std::string line = "  " + name;
      line.append(" ").append(version).append(" (already in the base interpreter)");
      tell(line);
    }
    if (static_cast<int>(resolved->size()) > config_.caps.max_packages) {
      return fail("the requirements would install " + std::to_string(resolved->size()) +
                  " packages, over caps.max_packages (" +
                  std::to_string(config_.caps.max_packages) + ")");
    }
    chosen = std::move(*resolved);
    // pip names a distribution after the requirement that asked for it.
    for (auto& d : chosen) {
      const std::string norm = normalize_name(d.name);
      if (d.requested) {
        for (const auto& q : written)
          if (normalize_name(q.name) == norm && d.install_name.empty()) d.install_name = q.name;
      }
      for (const auto& parent : chosen) {
        for (std::size_t i = 0; d.install_name.empty() && i < parent.requires_names.size(); ++i)
          if (parent.requires_names[i] == norm) d.install_name = parent.requires_spelled[i];
      }
    }
  } else {
    tell(
        note("pip " + req.python.pip_version +
             " cannot resolve without installing; caps.max_packages is checked after the install"));
  }

  const std::int64_t cap_bytes = config_.caps.max_venv_mb * 1024 * 1024;
  const std::int64_t cap_files = config_.caps.max_venv_files;
  const std::string files_cap =
      "caps.max_venv_files (" + std::to_string(config_.caps.max_venv_files) + " files)";
  std::vector<std::string> dist_hashes;
  std::optional<TreeUsage> linked;  // what the linker placed, when it knows
  if (resolve_first && !chosen.empty()) {
    // 2b. Exactly what was resolved, from the store of installed
    // distributions: what it lacks is downloaded by pip (--no-deps: no second
    // resolve; --require-hashes: a file that changed since is refused),
    // unpacked and compiled once, then every distribution is linked into the
    // venv (dist_install.hpp).
    PipOutput quiet;
    auto since = std::chrono::steady_clock::now();
    const char* phase = "downloading";
    PollHook tick = [&]() -> std::string {
      progress(phase, quiet, since);
      return {};
    };
    DistInstaller::Setup setup{&config_,     &store_,
                               runner_,      req.python,
                               req.deadline, req.deadline_reason,
                               base,         [&](std::string_view l) { tell(std::string(l)); },
                               stream,       tick};
    DistInstaller dists(std::move(setup), chosen);
    const auto& missing = dists.missing();
    tell(note("installing " + std::to_string(chosen.size()) + " package(s): " +
              std::to_string(chosen.size() - missing.size()) + " already in the store" +
              (missing.empty() ? std::string()
                               : ", " + std::to_string(missing.size()) +
                                     " to download, each checked against the sha256 it was "
                                     "resolved with")));
    if (!missing.empty()) {
      const std::string wheels = work->root() + "/wheels";
      // A file:// index's wheels are copied and checked here; the others
      // are pip download's.
      std::map<std::string, std::string> fetched;
      std::vector<ResolvedDistribution> remote;
      const bool local_index = local_path_of_url(config_.index_url).has_value();
      for (const auto& d : missing) {
        auto path = local_index ? local_path_of_url(d.url) : std::nullopt;
        if (!path) {
          remote.push_back(d);
          continue;
        }
        if (fetched.empty() && ::mkdir(wheels.c_str(), 0700) != 0)
          return fail_service("cannot create " + wheels + ": " + clsi::errno_text(errno));
        auto copy = copy_local_wheel(*path, wheels + "/" + d.sha256 + ".whl", d.sha256);
        if (!copy)
          return fail_service("cannot take " + d.name + " from the index: " + copy.error());
        if (copy->mismatch) return served_other_bytes(d.name);
        to_detail("copied " + d.name + " " + d.version + " from " + *path + ", sha256 checked");
        fetched.emplace(d.sha256, copy->path);
      }
      if (!remote.empty()) {
        const std::string pinned = work->root() + "/pinned.txt";
        if (auto w = write_file_atomically(pinned, pinned_requirements(remote)); !w)
          return fail_service(w.error());
        PipOutput downloading;
        r = runner_(pip_command({"--no-deps", "--require-hashes", "--dest", wheels}, pinned,
                                "download", pip_launcher()),
                    req.deadline, pip_sink(downloading), tick);
        if (!r.ok()) return pip_failed("downloading the wheels", r, downloading);
      }
      phase = "unpacking and byte-compiling";
      since = std::chrono::steady_clock::now();
      if (auto e = dists.add_downloaded(wheels, work->root(), fetched))
        return fail_because(e->why, e->service_fault);
    }
    auto site = find_site_packages(venv, req.python.version_short);
    if (!site) return fail_service(site.error());
    if (auto e = dists.link(venv, *site)) return fail_because(e->why, e->service_fault);
    const auto& st = dists.link_stats();
    tell(note("linked " + std::to_string(st.linked + st.reflinked + st.copied) +
              " file(s) from the store into the venv, wrote " + std::to_string(st.written)));
    if (st.bytes_known) linked = TreeUsage{st.bytes, st.files + st.directories, false};
    dist_hashes = dists.dist_hashes();
  } else if (!resolve_first) {
    // 2b. pip too old for a resolve: it installs, watching the venv's size
    // and file count while it runs (one walk of the tree, at most once a
    // second).
    auto next_measure = std::chrono::steady_clock::now();
    PipOutput installing;
    auto since = std::chrono::steady_clock::now();
    PollHook watch_size = [&]() -> std::string {
      progress("installing", installing, since);
      auto now = std::chrono::steady_clock::now();
      if (now < next_measure) return {};
      next_measure = now + std::chrono::seconds(1);
      auto usage = measure_tree(venv, cap_files);
      if (!usage) return "cannot measure the venv during the install: " + usage.error();
      if (usage->over) return "the venv grew past " + files_cap + " during the install";
      if (usage->bytes > cap_bytes) {
        return "the venv grew past caps.max_venv_mb (" + std::to_string(config_.caps.max_venv_mb) +
               " MB) during the install";
      }
      return {};
    };
    tell(note("installing the requirements"));
    std::vector<std::string> extra;
    if (config_.require_hashes) extra.emplace_back("--require-hashes");
    r = runner_(pip_command(extra, req_file, "install", pip_launcher()), req.deadline,
                pip_sink(installing), watch_size);
    if (!r.ok()) return pip_failed("pip install", r, installing);
  }

  // 3. What got installed, read from the dist-info directories: no
  // interpreter of the venv starts once pip has installed anything (a
  // wheel's .pth would run in it, and bin/python3 may be a wheel's). Then
  // the venv is checked against what venv made, and measured (a linked one:
  // what venv made, walked, and what the linker counted, not a walk of the
  // tens of thousands of links it made).
  auto contents = inspect_venv(venv, *created, req.python.version_short, cap_files,
                               linked ? &*linked : nullptr);
  if (!contents) return fail(contents.error());
  if (contents->usage.over) return fail("the venv holds more files than " + files_cap);
  std::vector<std::string> installed = installed_list(contents->distributions);

  std::int64_t size = contents->usage.bytes;
  if (size > cap_bytes) {
    return fail("the venv is " + std::to_string(size / (std::int64_t{1024} * 1024)) +
                " MB, over caps.max_venv_mb (" + std::to_string(config_.caps.max_venv_mb) + " MB)");
  }
  if (static_cast<int>(installed.size()) > config_.caps.max_packages) {
    return fail("pip installed " + std::to_string(installed.size()) +
                " packages, over caps.max_packages (" + std::to_string(config_.caps.max_packages) +
                ")");
  }

  result.ok = true;
  Record& rec = result.record;
  rec.key = req.key;
  for (const auto& q : req.requirements)
    rec.requested.push_back(q.canonical);
  rec.installed = std::move(installed);
  rec.python = req.python.version;
  rec.python_path = req.python.real_path;
  rec.pip = req.python.pip_version;
  rec.index_url = redact_credentials(config_.index_url);  // records are world-readable
  rec.only_binary = config_.only_binary;
  rec.built_at = static_cast<std::int64_t>(std::time(nullptr));
  rec.build_seconds =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - started).count();
  rec.size_bytes = size;
  rec.dists = std::move(dist_hashes);
  rec.interpreter_dev = made.st_dev;
  rec.interpreter_ino = made.st_ino;
  return result;
}

}  // namespace clsi::venv
