// clsi-venvs: the store's build service and admin command.
//
//   clsi-venvs list   --config YAML [--json]
//   clsi-venvs gc     --config YAML [--max-total-mb N] [--dry-run]
//   clsi-venvs warm   --config YAML FILE
//   clsi-venvs remove --config YAML KEY
//   clsi-venvs stats  --config YAML [--json | --prometheus]
//   clsi-venvs serve  --config YAML            the build service: the store's only writer
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <sys/eventfd.h>
#include <sys/signalfd.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <ctime>
#include <iostream>
#include <map>
#include <memory>
#include <sstream>
#include <string>
#include <vector>

#include "builder.hpp"
#include "clsi/errno_text.hpp"
#include "clsi/unique_fd.hpp"
#include "config.hpp"
#include "eviction.hpp"
#include "key.hpp"
#include "lock.hpp"
#include "probe.hpp"
#include "requirements_file.hpp"
#include "service.hpp"
#include "service_client.hpp"
#include "store_trust.hpp"

using namespace clsi::venv;

namespace {

const char* const kUsage =
    "usage: clsi-venvs list   --config YAML [--json]\n"
    "       clsi-venvs gc     --config YAML [--max-total-mb N] [--dry-run]\n"
    "       clsi-venvs warm   --config YAML FILE\n"
    "       clsi-venvs remove --config YAML KEY\n"
    "       clsi-venvs stats  --config YAML [--json | --prometheus]\n"
    "       clsi-venvs serve  --config YAML\n";

struct Args {
  std::string command;
  std::string config;
  std::string venvs_dir;
  bool json = false;
  bool prometheus = false;
  bool dry_run = false;
  bool help = false;  // -h or --help: print the usage, do nothing else
  long long max_total_mb = -1;
  std::vector<std::string> positional;
};

// A command line this command does not take. main() says why, prints the
// usage and returns 2; thrown rather than exit()ing from where it is found.
struct UsageError {
  std::string why;
};

[[noreturn]] void usage_error(const std::string& why) {
  throw UsageError{why};
}

Args parse(int argc, char** argv) {
  Args a;
  if (argc < 2) usage_error("no command");
  a.command = argv[1];
  for (int i = 2; i < argc; ++i) {
    std::string s = argv[i];
    auto value = [&]() -> std::string {
      if (i + 1 >= argc) usage_error(s + " needs a value");
      return argv[++i];
    };
    auto number = [&](const std::string& v) {
      char* end = nullptr;
      long long n = std::strtoll(v.c_str(), &end, 10);
      if (v.empty() || *end != '\0' || n < 0) {
        std::string why = s + " takes a whole number, not '";
        why += v;
        why += '\'';
        usage_error(why);
      }
      return n;
    };
    if (s == "--config")
      a.config = value();
    else if (s == "--venvs-dir")
      a.venvs_dir = value();
    else if (s == "--json")
      a.json = true;
    else if (s == "--prometheus")
      a.prometheus = true;
    else if (s == "--dry-run")
      a.dry_run = true;
    else if (s == "--max-total-mb")
      a.max_total_mb = number(value());
    else if (s == "-h" || s == "--help") {
      a.help = true;
      return a;
    } else if (!s.empty() && s[0] == '-')
      usage_error("unknown option " + s);
    else
      a.positional.push_back(s);
  }
  if (a.config.empty()) usage_error("--config YAML is required");
  return a;
}

std::string json_string(const std::string& s) {
  std::string out = "\"";
  for (unsigned char c : s) {
    if (c == '"' || c == '\\') {
      out += '\\';
      out += static_cast<char>(c);
    } else if (c < 0x20) {
      char buf[8];
      (void)std::snprintf(buf, sizeof buf, "\\u%04x", c);  // fits: 6 characters
      out += buf;
    } else {
      out += static_cast<char>(c);
    }
  }
  return out + "\"";
}

std::string iso_time(std::int64_t t) {
  return format_utc(t, "%Y-%m-%dT%H:%M:%SZ");
}

void say(std::string_view line) {
  std::cout << line << '\n' << std::flush;
}

// Complete, being built (exclusive lock held), or unfinished (a leftover).
std::string state_of(const Store& store, const EnvInfo& e) {
  if (e.complete) return "complete";
  auto lock = KeyLock::open(store.lock_path(e.key), false);
  if (lock && !lock->try_lock(KeyLock::Mode::kExclusive)) return "building";
  return "unfinished";
}

int cmd_list(const Config& config, const Args& a) {
  Store store(config.venvs_dir);
  auto envs = scan_envs(store, true);
  std::sort(envs.begin(), envs.end(),
            [](const EnvInfo& x, const EnvInfo& y) { return x.last_used > y.last_used; });
  if (a.json) {
    std::cout << "[";
    for (std::size_t i = 0; i < envs.size(); ++i) {
      const auto& e = envs[i];
      std::cout << (i ? ",\n " : "\n ") << "{\"key\": " << json_string(e.key)
                << ", \"state\": " << json_string(state_of(store, e))
                << ", \"size_bytes\": " << e.size_bytes
                << ", \"last_used\": " << json_string(iso_time(e.last_used))
                << ", \"built_at\": " << json_string(iso_time(e.record ? e.record->built_at : 0))
                << ", \"build_seconds\": " << (e.record ? e.record->build_seconds : 0)
                << ", \"requirements\": [";
      if (e.record) {
        for (std::size_t k = 0; k < e.record->requested.size(); ++k) {
          std::cout << (k ? ", " : "") << json_string(e.record->requested[k]);
        }
      }
      std::cout << "], \"installed\": [";
      if (e.record) {
        for (std::size_t k = 0; k < e.record->installed.size(); ++k) {
          std::cout << (k ? ", " : "") << json_string(e.record->installed[k]);
        }
      }
      std::cout << "]}";
    }
    std::cout << (envs.empty() ? "]\n" : "\n]\n");
    return 0;
  }
  std::printf("%-12s  %-10s  %10s  %-20s  %-20s  %s\n", "KEY", "STATE", "SIZE", "LAST USED",
              "BUILT", "REQUIREMENTS");
  std::int64_t total = 0;
  for (const auto& e : envs) {
    std::string reqs;
    if (e.record) {
      for (const auto& r : e.record->requested)
        reqs += (reqs.empty() ? "" : " ") + r;
    }
    std::printf("%-12s  %-10s  %10s  %-20s  %-20s  %s\n", short_key(e.key).c_str(),
                state_of(store, e).c_str(), human_size(e.size_bytes).c_str(),
                iso_time(e.last_used).c_str(), iso_time(e.record ? e.record->built_at : 0).c_str(),
                reqs.c_str());
    total += e.size_bytes;
  }
  std::printf("%zu environment(s), %s in %s\n", envs.size(), human_size(total).c_str(),
              store.envs_dir().c_str());
  return 0;
}

// Changes to the store are its owner's: run as anyone else, gc or remove
// could leave files the service cannot use (or refuse to start on).
void require_store_owner(const Store& store, const char* command) {
  auto owner = store_owner(store.root());
  if (!owner) throw std::runtime_error(owner.error());
  if (*owner != ::geteuid()) {
    throw std::runtime_error(std::string(command) + " changes the store, so it runs only as " +
                             "the store's owner (uid " + std::to_string(*owner) +
                             ", the build service's user), e.g. with sudo -u or setpriv");
  }
}

int cmd_gc(const Config& config, const Args& a) {
  Store store(config.venvs_dir);
  if (!a.dry_run) require_store_owner(store, "gc");
  std::int64_t budget_mb = a.max_total_mb >= 0 ? a.max_total_mb : config.eviction.max_total_mb;
  auto report = collect_garbage(store, budget_mb * 1024 * 1024, a.dry_run);
  for (const auto& line : report.lines)
    say(line);
  if (!a.dry_run) {
    for (const auto& key : report.removed)
      store.append_event("evict", key);
  }
  return 0;
}

// Resolves a full key or a unique prefix of one.
std::string resolve_key(const Store& store, const std::string& prefix) {
  std::vector<std::string> matches;
  for (const auto& k : store.keys()) {
    if (k.compare(0, prefix.size(), prefix) == 0) matches.push_back(k);
  }
  if (matches.size() == 1) return matches[0];
  if (matches.empty())
    throw std::runtime_error("no environment " + prefix + " in " + store.envs_dir());
  throw std::runtime_error(prefix + " matches " + std::to_string(matches.size()) +
                           " environments; give more of the key");
}

int cmd_remove(const Config& config, const Args& a) {
  if (a.positional.size() != 1) usage_error("remove takes one KEY");
  Store store(config.venvs_dir);
  require_store_owner(store, "remove");
  std::string key = resolve_key(store, a.positional[0]);
  auto lock = KeyLock::open(store.lock_path(key), true);
  if (!lock) throw std::runtime_error(lock.error());
  if (!lock->try_lock(KeyLock::Mode::kExclusive)) {
    (void)std::fprintf(
        stderr, "clsi-venvs: environment %s is in use by a compile or being built; not removed\n",
        short_key(key).c_str());
    return 1;
  }
  if (auto r = store.remove_env(key); !r) throw std::runtime_error(r.error());
  store.forget_failure(key);
  store.append_event("evict", key);
  say("removed " + key);
  return 0;
}

// Builds ahead of demand, through the build service like any compile, so
// whoever runs it leaves nothing in the store that the service does not own.
int cmd_warm(const Config& config, const Args& a) {
  if (a.positional.size() != 1) usage_error("warm takes one requirements FILE");
  std::string path = a.positional[0];
  auto slash = path.rfind('/');
  std::string dir = slash == std::string::npos ? "." : path.substr(0, slash == 0 ? 1 : slash);
  std::string name = slash == std::string::npos ? path : path.substr(slash + 1);
  auto file = read_requirements_file(dir, {name}, config.caps.max_requirements_bytes);
  if (!file) throw std::runtime_error(file.error());
  if (!file->has_value()) throw std::runtime_error(path + ": no such file");
  auto parsed =
      parse_requirements((*file)->text, {config.require_hashes, config.caps.max_requirement_lines});
  if (!parsed.refusals.empty()) {
    for (const auto& r : parsed.refusals)
      std::cerr << format_refusal(name, r) << '\n';
    throw std::runtime_error(std::to_string(parsed.refusals.size()) + " line(s) of " + name +
                             " were refused");
  }
  if (parsed.requirements.empty()) throw std::runtime_error(name + " lists no packages");
  protocol::BuildRequest request;
  for (const auto& r : parsed.requirements)
    request.requirements.push_back(r.canonical);
  request.project_id = "clsi-venvs warm";
  auto deadline =
      std::chrono::steady_clock::now() + std::chrono::seconds(config.caps.install_timeout_s + 60);
  auto answer = request_build(config, request, deadline,
                              [](const std::string& line) { std::cout << line << std::flush; });
  if (answer.unreachable) {
    throw std::runtime_error("the build service at " + config.service.socket +
                             " is unavailable: " + answer.reason);
  }
  if (answer.timed_out) throw std::runtime_error("the build did not finish in time");
  if (!answer.ok) {
    throw std::runtime_error("environment " + short_key(answer.key) +
                             " could not be built: " + answer.reason);
  }
  Store store(config.venvs_dir);
  say("environment " + short_key(answer.key) + " is ready: " + store.env_dir(answer.key));
  return 0;
}

// The build service, until SIGTERM, SIGINT or SIGHUP.
int cmd_serve(const Config& config, const Args& /*a*/) {
  sigset_t stop;
  sigemptyset(&stop);
  for (int sig : {SIGTERM, SIGINT, SIGHUP})
    sigaddset(&stop, sig);
  ::pthread_sigmask(SIG_BLOCK, &stop, nullptr);  // before any thread starts: all inherit it
  (void)::signal(SIGPIPE, SIG_IGN);  // fails only for a signal number that does not exist
  // The signal thread waits for a stop signal (blocked, so it is read from a
  // descriptor) and for the service to have returned, whichever comes first:
  // nothing has to be sent to the thread to end its wait.
  clsi::UniqueFd stop_signals(::signalfd(-1, &stop, SFD_CLOEXEC));
  if (!stop_signals) {
    (void)std::fprintf(stderr, "clsi-venvs serve: signalfd: %s\n", clsi::errno_text(errno).c_str());
    return 1;
  }
  clsi::UniqueFd returned(::eventfd(0, EFD_CLOEXEC));
  if (!returned) {
    (void)std::fprintf(stderr, "clsi-venvs serve: eventfd: %s\n", clsi::errno_text(errno).c_str());
    return 1;
  }
  BuildService service(config, default_process_runner(), [](std::string_view line) {
    std::cerr << "clsi-venvs serve: " << line << '\n' << std::flush;
  });
  if (auto s = service.start(); !s) {
    (void)std::fprintf(stderr, "clsi-venvs serve: %s\n", s.error().c_str());
    return 1;
  }
  std::thread signals([&] {
    pollfd fds[2] = {{stop_signals.get(), POLLIN, 0}, {returned.get(), POLLIN, 0}};
    while (::poll(fds, 2, -1) < 0 && errno == EINTR) {
    }
    service.request_stop();  // nothing more once the service has returned
  });
  service.run();
  std::uint64_t one = 1;
  (void)!::write(returned.get(), &one, sizeof one);  // the signal thread's wait ends
  signals.join();
  return 0;
}

struct Percentiles {
  double p50 = 0, p90 = 0, p99 = 0, max = 0;
};

Percentiles percentiles(std::vector<double> v) {
  Percentiles p;
  if (v.empty()) return p;
  std::sort(v.begin(), v.end());
  auto at = [&](double q) {
    auto idx = static_cast<std::size_t>(std::ceil(q * static_cast<double>(v.size()))) - 1;
    return v[std::min(idx, v.size() - 1)];
  };
  p.p50 = at(0.5);
  p.p90 = at(0.9);
  p.p99 = at(0.99);
  p.max = v.back();
  return p;
}

int cmd_stats(const Config& config, const Args& a) {
  Store store(config.venvs_dir);
  std::map<std::string, long long> counts = {
      {"hit", 0}, {"miss", 0}, {"build", 0}, {"failure", 0}, {"evict", 0}};
  std::vector<double> build_seconds;
  // Opened without following a symlink or blocking on a FIFO in its place;
  // only a regular file is read.
  std::unique_ptr<FILE, int (*)(FILE*)> events(nullptr, &std::fclose);
  const int fd =
      ::open(store.events_path().c_str(), O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC);
  struct stat st {};
  if (fd >= 0 && ::fstat(fd, &st) == 0 && S_ISREG(st.st_mode)) events.reset(::fdopen(fd, "r"));
  if (!events && fd >= 0) ::close(fd);
  char* raw = nullptr;
  std::size_t cap = 0;
  while (events && ::getline(&raw, &cap, events.get()) > 0) {
    std::istringstream ls(raw);
    long long t = 0;
    std::string kind, key;
    double value = 0;
    if (!(ls >> t >> kind >> key >> value)) continue;
    ++counts[kind];
    if (kind == "build") build_seconds.push_back(value);
  }
  std::free(raw);
  auto p = percentiles(build_seconds);
  auto usage = store_usage(store);
  if (a.prometheus) {
    auto metric = [](const char* name, const char* type, const char* help) {
      std::printf("# HELP %s %s\n# TYPE %s %s\n", name, help, name, type);
    };
    metric("clsi_venv_cache_hits_total", "counter", "Compiles that reused a complete venv.");
    std::printf("clsi_venv_cache_hits_total %lld\n", counts["hit"]);
    metric("clsi_venv_cache_misses_total", "counter", "Compiles that found no usable venv.");
    std::printf("clsi_venv_cache_misses_total %lld\n", counts["miss"]);
    metric("clsi_venv_builds_total", "counter", "Venv builds that succeeded.");
    std::printf("clsi_venv_builds_total %lld\n", counts["build"]);
    metric("clsi_venv_build_failures_total", "counter", "Venv builds that failed.");
    std::printf("clsi_venv_build_failures_total %lld\n", counts["failure"]);
    metric("clsi_venv_evictions_total", "counter", "Venvs removed by gc or remove.");
    std::printf("clsi_venv_evictions_total %lld\n", counts["evict"]);
    metric("clsi_venv_build_seconds", "summary", "Duration of successful builds.");
    std::printf("clsi_venv_build_seconds{quantile=\"0.5\"} %.3f\n", p.p50);
    std::printf("clsi_venv_build_seconds{quantile=\"0.9\"} %.3f\n", p.p90);
    std::printf("clsi_venv_build_seconds{quantile=\"0.99\"} %.3f\n", p.p99);
    double sum = 0;
    for (double s : build_seconds)
      sum += s;
    std::printf("clsi_venv_build_seconds_sum %.3f\nclsi_venv_build_seconds_count %zu\n", sum,
                build_seconds.size());
    metric("clsi_venv_store_bytes", "gauge", "Disk used by venvs, as measured at build time.");
    std::printf("clsi_venv_store_bytes %lld\n", static_cast<long long>(usage.total_bytes));
    metric("clsi_venv_store_venvs", "gauge", "Venvs in the store.");
    std::printf("clsi_venv_store_venvs %zu\n", usage.count);
    return 0;
  }
  if (a.json) {
    std::printf(
        "{\"hits\": %lld, \"misses\": %lld, \"builds\": %lld, \"failures\": %lld, \"evictions\": "
        "%lld,\n"
        " \"build_seconds\": {\"p50\": %.3f, \"p90\": %.3f, \"p99\": %.3f, \"max\": %.3f},\n"
        " \"store_bytes\": %lld, \"venvs\": %zu}\n",
        counts["hit"], counts["miss"], counts["build"], counts["failure"], counts["evict"], p.p50,
        p.p90, p.p99, p.max, static_cast<long long>(usage.total_bytes), usage.count);
    return 0;
  }
  long long lookups = counts["hit"] + counts["miss"];
  std::printf("hits        %lld\nmisses      %lld\nhit ratio   %s\n", counts["hit"], counts["miss"],
              lookups ? (std::to_string(100 * counts["hit"] / lookups) + "%").c_str() : "-");
  std::printf("builds      %lld\nfailures    %lld\nevictions   %lld\n", counts["build"],
              counts["failure"], counts["evict"]);
  std::printf("build time  p50 %.1f s, p90 %.1f s, p99 %.1f s, max %.1f s\n", p.p50, p.p90, p.p99,
              p.max);
  std::printf("disk        %s in %zu venv(s)\n", human_size(usage.total_bytes).c_str(),
              usage.count);
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  ::umask(022);  // whatever this command creates, compile hosts can read
  try {
    Args a = parse(argc, argv);
    if (a.help) {
      (void)std::fputs(kUsage, stdout);
      return 0;
    }
    auto config = load_config(a.config.c_str(), [](const char* n) -> const char* {
      return std::getenv(n);  // NOLINT(concurrency-mt-unsafe): no thread has started yet
    });
    if (!config) {
      (void)std::fprintf(stderr, "clsi-venvs: %s\n", config.error().c_str());
      return 2;
    }
    if (!a.venvs_dir.empty()) config->venvs_dir = a.venvs_dir;
    try {
      if (a.command == "list") return cmd_list(*config, a);
      if (a.command == "gc") return cmd_gc(*config, a);
      if (a.command == "warm") return cmd_warm(*config, a);
      if (a.command == "remove") return cmd_remove(*config, a);
      if (a.command == "stats") return cmd_stats(*config, a);
      if (a.command == "serve") return cmd_serve(*config, a);
    } catch (const std::exception& e) {
      (void)std::fprintf(stderr, "clsi-venvs %s: %s\n", a.command.c_str(), e.what());
      return 1;
    }
    usage_error("unknown command '" + a.command + "'");
  } catch (const UsageError& e) {
    (void)std::fprintf(stderr, "clsi-venvs: %s\n%s", e.why.c_str(), kUsage);
    return 2;
  }
}
