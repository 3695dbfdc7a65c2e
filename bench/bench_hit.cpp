// The cost of a cache hit, in process, through the plugin ABI.
//
// Builds one venv for real (python, pip and a package index made here), then
// measures what a host pays for a compile whose venv is cached:
//   - hit/warm-instance:  pre-compile + post-compile on one plugin instance
//   - hit/fresh-instance: create + pre-compile + post-compile + destroy, as
//                         clsi-runner does (a fresh instance per compile), with
//                         a 3-key plugin.yaml and with the shipped, commented one
//   - create-destroy:     the instance alone (reading plugin.yaml), for scale
// and checks that a hit in a fresh VenvPlugin starts no process (a counting
// process seam). Prints per-call medians in microseconds against the target.
//
//   bench_hit [google-benchmark flags]     the benchmarks, then the summary
//   bench_hit --summary-only               the summary alone (no Google Benchmark)
//   bench_hit --world=DIR ...              set up in DIR (kept), or reuse it
//   bench_hit --world=DIR --profile=MODE:N N hits only, MODE warm, fresh or fresh-full;
//   bench_hit --world=DIR --profile=first  one hit in this new process, dlopen to dlclose
//                                          (first-off: the same with the plugin switched off);
//   for callgrind (which cannot start processes here: no pidfd_open), prepare first:
//       bench_hit --world=/tmp/w --summary-only
//       valgrind --tool=callgrind --instr-atstart=no bench_hit --world=/tmp/w --profile=warm:2000
//
// Exit status: 0 when a hit spawned no process, 1 otherwise (timing targets
// are reported, not enforced: this is a benchmark, not a test).
#include <benchmark/benchmark.h>
#include <sys/stat.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <functional>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "config.hpp"
#include "fake_host.hpp"
#include "service.hpp"
#include "test_env.hpp"
#include "venv_plugin.hpp"

#ifdef CLSI_HAVE_CALLGRIND_H
#include <valgrind/callgrind.h>
#else
#define CALLGRIND_START_INSTRUMENTATION
#define CALLGRIND_STOP_INSTRUMENTATION
#endif

namespace {

using Clock = std::chrono::steady_clock;
constexpr double kTargetMedianUs = 200.0;

// Two top-level requirements, one with a dependency: a realistic small set.
const char* const kPackages = R"([
  {"name": "alpha", "version": "1.0", "requires": ["beta>=2"],
   "files": {"alpha/__init__.py": "import beta\nMESSAGE = 'alpha ' + beta.VERSION\n"}},
  {"name": "beta", "version": "2.1", "files": {"beta/__init__.py": "VERSION = '2.1'\n"}},
  {"name": "gamma", "version": "0.3", "files": {"gamma/__init__.py": "MESSAGE = 'gamma'\n"}}
])";
const char* const kRequirements =
    "# analysis extras\n"
    "alpha>=1.0\n"
    "gamma==0.3\n";

[[noreturn]] void die(const std::string& why) {
  std::fprintf(stderr, "bench_hit: %s\n", why.c_str());
  std::exit(2);
}

// Everything under one directory: a fresh temporary one, or --world=DIR,
// which is set up on first use and reused after (valgrind cannot start
// processes here: it does not know pidfd_open, so profile a prepared world).
struct World {
  std::optional<testenv::TempDir> tmp;
  std::string root, index, venvs, config, project;
  // The shipped, commented plugin.yaml with the same three settings: what an
  // operator's file looks like (clsi-runner parses it for every compile).
  std::string full_config;
  [[nodiscard]] std::string socket() const { return root + "/service.sock"; }

  explicit World(const std::string& dir) {
    if (dir.empty()) {
      tmp.emplace();
      root = tmp->path();
    } else {
      root = dir;
      ::mkdir(root.c_str(), 0755);
    }
    index = root + "/index";
    venvs = root + "/venvs";
    config = root + "/plugin.yaml";
    project = root + "/project";
    full_config = root + "/plugin-full.yaml";
    if (testenv::exists(config)) return;
    testenv::make_index(index, kPackages);
    ::mkdir(project.c_str(), 0755);
    testenv::write_file(project + "/requirements.txt", kRequirements);
    testenv::write_plugin_yaml(
        config, {"enabled: true", "venvs_dir: " + venvs, "index_url: file://" + index + "/simple/",
                 "service:", "  socket: " + socket()});
    std::string full = testenv::read_file(CLSI_SOURCE_DIR "/plugin.yaml");
    auto set = [&](const std::string& key, const std::string& value) {
      auto at = full.find("\n  " + key + ": ");
      if (at == std::string::npos) die("the shipped plugin.yaml has no " + key);
      auto eol = full.find('\n', at + 1);
      full.replace(at, eol - at, "\n  " + key + ": " + value);
    };
    set("enabled", "true");
    set("venvs_dir", venvs);
    set("index_url", "file://" + index + "/simple/");
    if (auto at = full.find("\n    socket: "); at != std::string::npos)
      full.replace(at, full.find('\n', at + 1) - at, "\n    socket: " + socket());
    testenv::write_file(full_config, full);
  }
};

World* g_world = nullptr;

// The world's build service, in this process: the first compile asks it to
// build; hits never talk to it but for the use message after the render.
struct Service {
  std::optional<clsi::venv::BuildService> service;
  std::thread thread;
  explicit Service(const World& w) {
    auto config = clsi::venv::load_config(
        w.config.c_str(), [](const char*) { return static_cast<const char*>(nullptr); });
    if (!config) die(config.error());
    service.emplace(*config, clsi::venv::default_process_runner(), [](std::string_view) {});
    if (auto s = service->start(); !s) die(s.error());
    thread = std::thread([this] { service->run(); });
  }
  ~Service() {
    service->request_stop();
    thread.join();
  }
};

// One compile through the ABI; the FakeCompile is reused, its records cleared.
void hit(testenv::FakeHost& host, testenv::FakeCompile& c) {
  c.output.clear();
  c.env.clear();
  if (host.pre(c) != CLSI_STATUS_OK) die("a hit did not return OK:\n" + c.output);
  if (host.post(c) != CLSI_STATUS_OK) die("post-compile did not return OK");
}

void init_compile(testenv::FakeCompile& c) {
  c.compile_dir = g_world->project;
  c.project_id = "bench-project";
  c.user_id = "bench-user";
  c.allow_python_install = true;
  c.time_left_ms = 240000;
}

// The first compile builds the venv (in the build service; the hook waits
// for it). Everything after it is a hit.
void build_once() {
  testenv::FakeHost host(CLSI_PLUGIN_PATH);
  std::string why;
  if (!host.create(g_world->config, &why)) die("create failed: " + why);
  testenv::FakeCompile c;
  init_compile(c);
  auto t0 = Clock::now();
  auto s = host.pre(c);
  double secs = std::chrono::duration<double>(Clock::now() - t0).count();
  if (s == CLSI_STATUS_OK && c.output.find("reusing environment") != std::string::npos) {
    std::printf("setup: the venv in %s was built before\n", g_world->venvs.c_str());
  } else if (s != CLSI_STATUS_OK || c.output.find("built environment") == std::string::npos) {
    die("the first compile did not build the venv:\n" + c.output);
  } else {
    std::printf("setup: built the venv in %.2f s (first compile, through the ABI)\n", secs);
  }
  host.post(c);
  testenv::FakeCompile second;
  init_compile(second);
  host.pre(second);
  host.post(second);
  if (second.output.find("reusing environment") == std::string::npos)
    die("the second compile was not a hit:\n" + second.output);
}

// A fresh VenvPlugin (empty in-memory probe cache) with a process seam that
// counts: how many processes does a hit start?
int processes_spawned_by_a_fresh_hit() {
  auto config = clsi::venv::load_config(
      g_world->config.c_str(), [](const char*) { return static_cast<const char*>(nullptr); });
  if (!config) die(config.error());
  std::atomic<int> spawned{0};
  auto seams = clsi::venv::Seams::production();
  auto real = seams.runner;
  seams.runner = [&](const clsi::SpawnOptions& o, clsi::Deadline d, const clsi::LineSink& s,
                     const clsi::PollHook& h) {
    ++spawned;
    return real(o, d, s, h);
  };
  std::string output;
  clsi_host_callbacks_v1 cb{
      sizeof(cb),
      nullptr,
      [](void*, clsi_log_level, const char*) {},
      [](void*, const char*, const char*) { return 0; },
      [](void* p, const char* t, size_t n) { static_cast<std::string*>(p)->append(t, n); },
      nullptr,
      nullptr,
      nullptr,
      nullptr};
  clsi::HostServices services(&cb);
  const char* const permissions[] = {CLSI_PERMISSION_PYTHON_INSTALL, nullptr};
  clsi_compile_v1 facts{sizeof(facts), &output, "p",        "u", g_world->project.c_str(), 1,
                        240000,        "bench", permissions};
  clsi::venv::VenvPlugin fresh(*config, services, seams);
  clsi::CompileContext ctx(services, &facts);
  void* state = nullptr;
  if (fresh.pre_compile(ctx, &state) != CLSI_STATUS_OK ||
      output.find("reusing environment") == std::string::npos) {
    die("the counted compile was not a hit:\n" + output);
  }
  fresh.post_compile(ctx, state, {});
  return spawned;
}

// ---- Google Benchmark ------------------------------------------------------

void BM_HitWarmInstance(benchmark::State& state) {
  testenv::FakeHost host(CLSI_PLUGIN_PATH);
  if (!host.create(g_world->config)) die("create failed");
  testenv::FakeCompile c;
  init_compile(c);
  for (auto _ : state)
    hit(host, c);
}

void BM_HitFreshInstance(benchmark::State& state, const std::string* config) {
  testenv::FakeHost host(CLSI_PLUGIN_PATH);
  testenv::FakeCompile c;
  init_compile(c);
  for (auto _ : state) {
    if (!host.create(*config)) die("create failed");  // destroys the previous one
    hit(host, c);
  }
}

void BM_CreateDestroy(benchmark::State& state, const std::string* config) {
  testenv::FakeHost host(CLSI_PLUGIN_PATH);
  for (auto _ : state) {
    if (!host.create(*config)) die("create failed");
  }
}

// ---- Per-call distribution (the figures the targets are checked against) --

struct Stats {
  double p50 = 0, p90 = 0, p99 = 0, min = 0;
  size_t n = 0;
};

Stats sample(const std::function<void()>& once, size_t n) {
  for (int i = 0; i < 50; ++i)
    once();  // warm-up: page cache, allocator, dentries
  std::vector<double> us;
  us.reserve(n);
  for (size_t i = 0; i < n; ++i) {
    auto t0 = Clock::now();
    once();
    us.push_back(std::chrono::duration<double, std::micro>(Clock::now() - t0).count());
  }
  std::sort(us.begin(), us.end());
  auto at = [&](double q) { return us[static_cast<size_t>(q * static_cast<double>(n - 1))]; };
  return {at(0.5), at(0.9), at(0.99), us.front(), n};
}

void print_stats(const char* what, const Stats& s, bool against_target) {
  std::printf("  %-68s median %7.1f us   p90 %7.1f   p99 %7.1f   min %6.1f   (n=%zu)%s\n", what,
              s.p50, s.p90, s.p99, s.min, s.n,
              !against_target            ? ""
              : s.p50 <= kTargetMedianUs ? "   target <= 200 us: MET"
                                         : "   target <= 200 us: MISSED");
}

int summary() {
  std::printf("\n== summary (per-call timings, steady_clock around each call) ==\n");
  testenv::FakeHost warm_host(CLSI_PLUGIN_PATH);
  if (!warm_host.create(g_world->config)) die("create failed");
  testenv::FakeCompile c;
  init_compile(c);
  print_stats("hit, warm instance: pre + post through the ABI",
              sample([&] { hit(warm_host, c); }, 5000), true);
  testenv::FakeHost fresh_host(CLSI_PLUGIN_PATH);
  for (const auto* config : {&g_world->config, &g_world->full_config}) {
    bool full = config == &g_world->full_config;
    print_stats(full ? "hit, fresh instance, shipped plugin.yaml: create+pre+post+destroy"
                     : "hit, fresh instance, 3-key plugin.yaml: create+pre+post+destroy",
                sample(
                    [&] {
                      if (!fresh_host.create(*config)) die("create failed");
                      hit(fresh_host, c);
                    },
                    3000),
                true);
    print_stats(full ? "  of which create+destroy alone (shipped plugin.yaml)"
                     : "  of which create+destroy alone (3-key plugin.yaml)",
                sample(
                    [&] {
                      if (!fresh_host.create(*config)) die("create failed");
                    },
                    3000),
                false);
  }
  int spawned = processes_spawned_by_a_fresh_hit();
  std::printf("  processes started by a hit in a fresh VenvPlugin (counting seam): %d   %s\n",
              spawned, spawned == 0 ? "target 0: MET" : "target 0: MISSED");
  return spawned == 0 ? 0 : 1;
}

// What clsi-runner pays once per compile, in a process that has not yet
// touched the plugin: dlopen, create (the shipped plugin.yaml), pre, post,
// destroy, dlclose. One-time costs (relocation, OpenSSL's initialisation,
// locale and iostream set-up) land here and nowhere else. `on` false: the
// same with OVERLEAF_ENABLE_PROJECT_PYTHON_VENV=false, for the difference.
// Needs a prepared --world (this builds nothing, so it runs under valgrind).
int first_hit_in_a_new_process(bool on) {
  if (testenv::list_dir(g_world->venvs + "/envs").empty())
    die("--profile=first needs a prepared --world: run bench_hit --world=DIR --summary-only first");
  if (!on) ::setenv("OVERLEAF_ENABLE_PROJECT_PYTHON_VENV", "false", 1);
  testenv::FakeCompile c;
  init_compile(c);
  clsi_status pre = CLSI_STATUS_ERROR;
  CALLGRIND_START_INSTRUMENTATION;
  auto t0 = Clock::now();
  {
    testenv::FakeHost host(CLSI_PLUGIN_PATH);
    if (!host.create(g_world->full_config)) die("create failed");
    pre = host.pre(c);
    host.post(c);
  }
  auto t1 = Clock::now();
  CALLGRIND_STOP_INSTRUMENTATION;
  if (on && (pre != CLSI_STATUS_OK || c.output.find("reusing environment") == std::string::npos))
    die("not a hit:\n" + c.output);
  if (!on && pre != CLSI_STATUS_NOTHING_TO_DO) die("the plugin is not off");
  std::printf(
      "first compile in a new process, plugin %s (dlopen..dlclose, shipped plugin.yaml): "
      "%.1f us\n",
      on ? "on, a hit" : "off", std::chrono::duration<double, std::micro>(t1 - t0).count());
  return 0;
}

// N hits with callgrind instrumentation on for exactly those. warm: one
// instance; fresh: a new instance per hit (3-key file); fresh-full: the same
// with the shipped, commented plugin.yaml.
int profile(const std::string& spec) {
  auto colon = spec.find(':');
  std::string mode = spec.substr(0, colon);
  long n = colon == std::string::npos ? 1000 : std::atol(spec.c_str() + colon + 1);
  const std::string& config = mode == "fresh-full" ? g_world->full_config : g_world->config;
  testenv::FakeHost host(CLSI_PLUGIN_PATH);
  if (!host.create(config)) die("create failed");
  testenv::FakeCompile c;
  init_compile(c);
  hit(host, c);
  if (mode == "warm") {
    CALLGRIND_START_INSTRUMENTATION;
    for (long i = 0; i < n; ++i)
      hit(host, c);
    CALLGRIND_STOP_INSTRUMENTATION;
  } else if (mode == "fresh" || mode == "fresh-full") {
    CALLGRIND_START_INSTRUMENTATION;
    for (long i = 0; i < n; ++i) {
      if (!host.create(config)) die("create failed");
      hit(host, c);
    }
    CALLGRIND_STOP_INSTRUMENTATION;
  } else {
    die("--profile takes warm:N, fresh:N or fresh-full:N");
  }
  std::printf("profiled %ld %s hits\n", n, mode.c_str());
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  // The environment must not switch the plugin or move its store.
  ::unsetenv("OVERLEAF_ENABLE_PROJECT_PYTHON_VENV");
  ::unsetenv("PYTHON_VENVS_DIR");
  std::string profile_spec;
  bool summary_only = false;
  std::string world_dir;
  std::vector<char*> rest;
  for (int i = 0; i < argc; ++i) {
    if (std::strncmp(argv[i], "--profile=", 10) == 0)
      profile_spec = argv[i] + 10;
    else if (std::strncmp(argv[i], "--world=", 8) == 0)
      world_dir = argv[i] + 8;
    else if (std::strcmp(argv[i], "--summary-only") == 0)
      summary_only = true;
    else
      rest.push_back(argv[i]);
  }
  World world(world_dir);
  g_world = &world;
  Service service(world);
  if (profile_spec == "first" || profile_spec == "first-off")
    return first_hit_in_a_new_process(profile_spec == "first");
  build_once();
  if (!profile_spec.empty()) return profile(profile_spec);

  if (!summary_only) {
    int bargc = static_cast<int>(rest.size());
    benchmark::Initialize(&bargc, rest.data());
    auto add = [](const char* name, auto fn, auto... args) {
      benchmark::RegisterBenchmark(name, fn, args...)
          ->Unit(benchmark::kMicrosecond)
          ->Repetitions(10)
          ->ReportAggregatesOnly(true);
    };
    add("hit/warm-instance (pre+post, ABI)", BM_HitWarmInstance);
    add("hit/fresh-instance (create+pre+post+destroy, 3-key yaml)", BM_HitFreshInstance,
        &world.config);
    add("hit/fresh-instance (create+pre+post+destroy, shipped yaml)", BM_HitFreshInstance,
        &world.full_config);
    add("create-destroy (3-key yaml)", BM_CreateDestroy, &world.config);
    add("create-destroy (shipped yaml)", BM_CreateDestroy, &world.full_config);
    benchmark::RunSpecifiedBenchmarks();
    benchmark::Shutdown();
  }
  return summary();
}
