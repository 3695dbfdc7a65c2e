// The python-venv plugin driven through the C ABI by the fake host, and
// directly with a counting process seam.
#include <sys/stat.h>
#include <catch2/catch.hpp>
#include <cstddef>

#include <atomic>
#include <chrono>
#include <filesystem>
#include <map>
#include <new>
#include <optional>
#include <thread>

#include "fake_host.hpp"
#include "lock.hpp"
#include "service.hpp"
#include "test_env.hpp"
#include "venv_plugin.hpp"

using Catch::Contains;

namespace {

struct PluginWorld {
  testenv::TempDir tmp;
  std::string venvs = tmp / "venvs";
  std::string config = tmp / "plugin.yaml";
  std::string dir = tmp / "project";
  PluginWorld(std::vector<std::string> extra = {}) {
    std::vector<std::string> lines = {"enabled: true", "venvs_dir: " + venvs,
                                      "index_url: file://" + tmp / "no-index/simple/"};
    lines.insert(lines.end(), extra.begin(), extra.end());
    testenv::write_plugin_yaml(config, lines);
    ::mkdir(dir.c_str(), 0755);
  }
};

}  // namespace

TEST_CASE("plugin: disabled means nothing to do and no output", "[plugin]") {
  PluginWorld w({"enabled: false"});
  testenv::write_plugin_yaml(w.config, {"enabled: false", "venvs_dir: " + w.venvs});
  testenv::write_file(w.dir + "/requirements.txt", "alpha\n");
  testenv::FakeHost host(CLSI_PLUGIN_PATH);
  REQUIRE(host.create(w.config));
  testenv::FakeCompile c;
  c.compile_dir = w.dir;
  CHECK(host.pre(c) == CLSI_STATUS_NOTHING_TO_DO);
  CHECK(host.post(c) == CLSI_STATUS_NOTHING_TO_DO);
  CHECK(c.output.empty());
  CHECK(c.env.empty());
  CHECK_FALSE(testenv::exists(w.venvs));
}

TEST_CASE("plugin: no requirements file means nothing to do", "[plugin]") {
  PluginWorld w;
  testenv::FakeHost host(CLSI_PLUGIN_PATH);
  REQUIRE(host.create(w.config));
  testenv::FakeCompile c;
  c.compile_dir = w.dir;
  CHECK(host.pre(c) == CLSI_STATUS_NOTHING_TO_DO);
  CHECK(c.env.empty());
  CHECK_FALSE(testenv::exists(w.venvs));
}

TEST_CASE("plugin: refused lines are annotated and nothing is installed", "[plugin]") {
  PluginWorld w;
  testenv::write_file(w.dir + "/requirements.txt",
                      "numpy\n--index-url http://evil.example/simple\nfoo @ https://x/y.whl\n");
  testenv::FakeHost host(CLSI_PLUGIN_PATH);
  REQUIRE(host.create(w.config));
  testenv::FakeCompile c;
  c.compile_dir = w.dir;
  CHECK(host.pre(c) == CLSI_STATUS_FELL_BACK);
  CHECK_THAT(c.output, Contains("./requirements.txt:2: refused: the option '--index-url'"));
  CHECK_THAT(c.output, Contains("./requirements.txt:3: refused: a URL"));
  CHECK_THAT(c.output, Contains("base interpreter"));
  CHECK(c.env.empty());
  CHECK_FALSE(testenv::exists(w.venvs));
  CHECK(host.post(c) == CLSI_STATUS_NOTHING_TO_DO);
}

TEST_CASE("plugin: a user who may not install is told so and the store is untouched", "[plugin]") {
  PluginWorld w;
  testenv::write_file(w.dir + "/requirements.txt", "alpha\n");
  testenv::FakeHost host(CLSI_PLUGIN_PATH);
  REQUIRE(host.create(w.config));
  testenv::FakeCompile c;
  c.compile_dir = w.dir;
  c.allow_python_install = false;
  CHECK(host.pre(c) == CLSI_STATUS_FELL_BACK);
  CHECK_THAT(c.output, Contains("may not install Python packages"));
  CHECK(c.env.empty());
  CHECK_FALSE(testenv::exists(w.venvs));
}

TEST_CASE("plugin: an invalid configuration refuses to start, naming key and file", "[plugin]") {
  PluginWorld w;
  testenv::write_plugin_yaml(w.config, {"enabled: true", "caps:", "  max_venv_gb: 3"});
  testenv::FakeHost host(CLSI_PLUGIN_PATH);
  CHECK_FALSE(host.create(w.config));
  auto logs = host.logs();
  REQUIRE_FALSE(logs.empty());
  CHECK_THAT(logs.back(), Contains("python_venv.caps.max_venv_gb"));
  CHECK_THAT(logs.back(), Contains(w.config));
}

// A cache hit must not start any process: not pip, not an interpreter probe,
// even in a fresh plugin instance (clsi-runner makes one per compile). The
// build itself happens in the build service, run here in-process.
TEST_CASE("plugin: a cache hit spawns no process, even in a fresh instance", "[plugin][hit]") {
  PluginWorld w;
  testenv::make_index(w.tmp / "idx", R"([{"name": "gamma", "version": "0.3",
      "files": {"gamma/__init__.py": "MESSAGE = 'gamma here'\n"}}])");
  testenv::write_plugin_yaml(w.config, {"enabled: true", "venvs_dir: " + w.venvs,
                                        "index_url: file://" + w.tmp / "idx/simple/",
                                        "service:", "  socket: " + w.tmp / "sock"});
  testenv::write_file(w.dir + "/requirements.txt", "gamma\n");
  auto config = clsi::venv::load_config(w.config.c_str(), [](const char*) { return nullptr; });
  REQUIRE(config.ok());

  std::atomic<int> spawned{0};
  auto seams = clsi::venv::Seams::production();
  auto real = seams.runner;
  seams.runner = [&](const clsi::SpawnOptions& o, clsi::Deadline d, const clsi::LineSink& s,
                     const clsi::PollHook& h) {
    ++spawned;
    return real(o, d, s, h);
  };
  clsi::venv::BuildService service(*config, seams.runner, [](std::string_view) {});
  REQUIRE(service.start().ok());
  std::thread serving([&] { service.run(); });
  struct Stop {
    clsi::venv::BuildService& s;
    std::thread& t;
    ~Stop() {
      s.request_stop();
      t.join();
    }
  } stop{service, serving};

  // A host built against ABI 1.0: its structs end before the 1.1 fields, so
  // this is also the 1.1 plugin in a 1.0 host (set_env only, no permissions).
  std::vector<std::string> output;
  clsi_host_callbacks_v1 cb{};
  cb.struct_size = offsetof(clsi_host_callbacks_v1, adjust_env_callback);
  cb.log_callback = [](void*, clsi_log_level, const char*) {};
  cb.set_env_callback = [](void*, const char*, const char*) { return 0; };
  cb.append_output_callback = [](void* p, const char* t, size_t n) {
    static_cast<std::vector<std::string>*>(p)->emplace_back(t, n);
  };
  // Fields a 1.0 host never wrote: garbage the plugin must not read.
  cb.adjust_env_callback = reinterpret_cast<decltype(cb.adjust_env_callback)>(0x1);
  cb.get_env_callback = reinterpret_cast<decltype(cb.get_env_callback)>(0x1);
  cb.cancelled_callback = reinterpret_cast<decltype(cb.cancelled_callback)>(0x1);
  cb.compile_log_callback = reinterpret_cast<decltype(cb.compile_log_callback)>(0x1);
  clsi::HostServices host(&cb);
  clsi_compile_v1 facts{};
  facts.struct_size = offsetof(clsi_compile_v1, compile_id);
  facts.compile_host_ptr = &output;
  facts.project_id = "p";
  facts.user_id = "u";
  facts.compile_dir = w.dir.c_str();
  facts.allow_python_install = 1;
  facts.time_left_ms = -1;
  facts.compile_id = reinterpret_cast<const char*>(0x1);
  facts.permissions = reinterpret_cast<const char* const*>(0x1);

  {
    clsi::venv::VenvPlugin cold(*config, host, seams);
    clsi::CompileContext ctx(host, &facts);
    void* state = nullptr;
    REQUIRE(cold.pre_compile(ctx, &state) == CLSI_STATUS_OK);
    cold.post_compile(ctx, state, {});
  }
  INFO([&] {
    std::string all;
    for (auto& l : output)
      all += l;
    return all;
  }());
  CHECK(spawned >= 2);  // the probe and the build, in the service
  spawned = 0;
  output.clear();
  clsi::venv::VenvPlugin fresh(*config, host, seams);
  clsi::CompileContext ctx(host, &facts);
  void* state = nullptr;
  REQUIRE(fresh.pre_compile(ctx, &state) == CLSI_STATUS_OK);
  CHECK(fresh.post_compile(ctx, state, {}) == CLSI_STATUS_OK);
  CHECK(spawned == 0);
  REQUIRE(output.size() == 1);
  CHECK_THAT(output[0], Contains("reusing environment"));
}

TEST_CASE("plugin: the shipped plugin.yaml documents exactly the built-in defaults",
          "[plugin][config]") {
  auto none = [](const char*) -> const char* { return nullptr; };
  auto shipped = clsi::venv::load_config(CLSI_SOURCE_DIR "/plugin.yaml", none);
  REQUIRE(shipped.ok());
  auto defaults = clsi::venv::load_config(nullptr, none);
  REQUIRE(defaults.ok());
  const auto& a = *shipped;
  const auto& b = *defaults;
  CHECK(a.enabled == b.enabled);
  CHECK(a.venvs_dir == b.venvs_dir);
  CHECK(a.base_python == b.base_python);
  CHECK(a.requirements_files == b.requirements_files);
  CHECK(a.index_url == b.index_url);
  CHECK(a.only_binary == b.only_binary);
  CHECK(a.require_hashes == b.require_hashes);
  CHECK(a.render_reserve_s == b.render_reserve_s);
  CHECK(a.retry_failed_after_s == b.retry_failed_after_s);
  CHECK(a.builder == b.builder);
  CHECK(a.eviction.gc_after_build == b.eviction.gc_after_build);
  CHECK(a.caps.install_timeout_s == b.caps.install_timeout_s);
  CHECK(a.caps.max_venv_mb == b.caps.max_venv_mb);
  CHECK(a.caps.max_packages == b.caps.max_packages);
  CHECK(a.caps.max_requirements_bytes == b.caps.max_requirements_bytes);
  CHECK(a.caps.max_requirement_lines == b.caps.max_requirement_lines);
  CHECK(a.eviction.max_total_mb == b.eviction.max_total_mb);
  CHECK(a.eviction.gc_interval_s == b.eviction.gc_interval_s);
  CHECK(a.service.socket == b.service.socket);
  CHECK(a.service.allowed_uids == b.service.allowed_uids);
  CHECK(a.service.allowed_gids == b.service.allowed_gids);
  CHECK(a.service.max_parallel_builds == b.service.max_parallel_builds);
  CHECK(a.service.connect_timeout_ms == b.service.connect_timeout_ms);
  CHECK(a.service.lease_gid == b.service.lease_gid);
  CHECK(a.service.prestart_pip == b.service.prestart_pip);
  // Every key is written out, so an operator sees all of them.
  auto text = testenv::read_file(CLSI_SOURCE_DIR "/plugin.yaml");
  for (const char* key : {"enabled:",
                          "venvs_dir:",
                          "base_python:",
                          "requirements_files:",
                          "index_url:",
                          "only_binary:",
                          "require_hashes:",
                          "render_reserve_s:",
                          "install_timeout_s:",
                          "max_venv_mb:",
                          "max_packages:",
                          "max_requirements_bytes:",
                          "max_requirement_lines:",
                          "max_total_mb:",
                          "retry_failed_after_s:",
                          "builder:",
                          "gc_after_build:",
                          "gc_interval_s:",
                          "socket:",
                          "allowed_uids:",
                          "allowed_gids:",
                          "max_parallel_builds:",
                          "connect_timeout_ms:",
                          "lease_gid:",
                          "prestart_pip:"}) {
    CHECK_THAT(text, Contains(key));
  }
}

// gamma built by an in-process build service, through a fake host that
// stays loaded: the venv of w.dir's requirements.txt (gamma) is in the store.
struct GammaBuilt {
  struct Serving {  // the service's thread, stopped and joined however the test ends
    clsi::venv::BuildService& service;
    std::thread thread{[this] { service.run(); }};
    ~Serving() {
      service.request_stop();
      thread.join();
    }
  };
  PluginWorld w;
  std::optional<clsi::venv::BuildService> service;
  std::optional<Serving> serving;
  testenv::FakeHost host{CLSI_PLUGIN_PATH};

  GammaBuilt() {
    testenv::make_index(w.tmp / "idx", R"([{"name": "gamma", "version": "0.3",
        "files": {"gamma/__init__.py": "MESSAGE = 'gamma here'\n"}}])");
    testenv::write_plugin_yaml(w.config, {"enabled: true", "venvs_dir: " + w.venvs,
                                          "index_url: file://" + w.tmp / "idx/simple/",
                                          "service:", "  socket: " + w.tmp / "sock"});
    testenv::write_file(w.dir + "/requirements.txt", "gamma\n");
    auto config = clsi::venv::load_config(w.config.c_str(), [](const char*) { return nullptr; });
    REQUIRE(config.ok());
    service.emplace(*config, clsi::venv::default_process_runner(), [](std::string_view) {});
    REQUIRE(service->start().ok());
    serving.emplace(*service);
    REQUIRE(host.create(w.config));
    testenv::FakeCompile c;
    c.compile_dir = w.dir;
    REQUIRE(host.pre(c) == CLSI_STATUS_OK);
    host.post(c);
  }
};

// A hit is used only when the store's owner wrote the record for exactly
// these requirements and nobody else can have changed record or venv.
TEST_CASE("plugin: a record or venv others could have changed is not used, but rebuilt",
          "[plugin][trust]") {
  GammaBuilt g;
  auto& w = g.w;
  auto& host = g.host;
  auto envs = testenv::list_dir(w.venvs + "/envs");
  REQUIRE(envs.size() == 2);  // <key> and <key>.complete
  const std::string key = envs[0];
  const std::string record = w.venvs + "/envs/" + key + ".complete";
  const std::string venv = w.venvs + "/envs/" + key;

  std::string expect;
  SECTION("a record owned by another user") {
    REQUIRE(::chown(record.c_str(), 65534, 65534) == 0);
    expect = "not owned by the store's owner";
  }
  SECTION("a record others can write") {
    REQUIRE(::chmod(record.c_str(), 0666) == 0);
    expect = "writable by others";
  }
  SECTION("a venv directory others can write") {
    REQUIRE(::chmod(venv.c_str(), 0777) == 0);
    expect = "only the store's owner can write";
  }
  SECTION("a record naming other requirements") {
    auto text = testenv::read_file(record);
    auto at = text.find("\"gamma\"");
    REQUIRE(at != std::string::npos);
    text.replace(at, 7, "\"gamma==9\"");
    testenv::write_file(record, text);
    expect = "does not name this key and these requirements";
  }
  // The compile host does not use it; the service, asked, builds it anew.
  testenv::FakeCompile c;
  c.compile_dir = w.dir;
  CHECK(host.pre(c) == CLSI_STATUS_OK);
  INFO(c.output);
  CHECK_THAT(c.output, !Contains("reusing environment"));
  CHECK_THAT(c.output, Contains("rebuilding it"));
  CHECK_THAT(c.output, Contains("is ready"));
  bool warned = false;
  for (const auto& l : host.logs())
    warned = warned || l.find(expect) != std::string::npos;
  CHECK(warned);
  host.post(c);
}

// A throw at any step of pre-compile, bad_alloc included, is a fallback with
// a line, never a failed compile (CLSI_STATUS_ERROR) and never half an env.
TEST_CASE("plugin: a completion record is JSON, and one in YAML from before is still a hit",
          "[plugin][hit][record]") {
  GammaBuilt g;
  auto& w = g.w;
  auto& host = g.host;
  auto envs = testenv::list_dir(w.venvs + "/envs");
  REQUIRE(envs.size() == 2);
  clsi::venv::Store store(w.venvs);
  const std::string key = envs[0];
  const std::string path = store.record_path(key);
  auto written = store.read_record(key);
  REQUIRE(written);
  CHECK(testenv::read_file(path).front() == '{');
  CHECK(written->key == key);
  CHECK(written->requested == std::vector<std::string>{"gamma"});
  CHECK(written->installed == std::vector<std::string>{"gamma==0.3"});
  CHECK(written->dists.size() == 1);
  CHECK(written->interpreter_ino != 0);

  SECTION("JSON") {}
  SECTION("the same record in the YAML a service wrote before") {
    const auto& r = *written;
    std::string yaml =
        "key: " + r.key + "\npython: \"" + r.python + "\"\npython_path: \"" + r.python_path +
        "\"\npip: \"" + r.pip + "\"\nindex_url: \"" + r.index_url +
        "\"\nonly_binary: true\nbuilt_at: " + std::to_string(r.built_at) +
        "\nbuild_seconds: 0.5\nsize_bytes: " + std::to_string(r.size_bytes) +
        "\ninterpreter_dev: " + std::to_string(r.interpreter_dev) +
        "\ninterpreter_ino: " + std::to_string(r.interpreter_ino) +
        "\nrequested:\n  - \"gamma\"\ninstalled:\n  - \"gamma==0.3\"\ndists:\n  - \"" + r.dists[0] +
        "\"\n";
    testenv::write_file(path, yaml);
    auto read = store.read_record(key);
    REQUIRE(read);
    CHECK(read->requested == r.requested);
    CHECK(read->installed == r.installed);
    CHECK(read->dists == r.dists);
    CHECK(read->interpreter_dev == r.interpreter_dev);
    CHECK(read->interpreter_ino == r.interpreter_ino);
  }
  testenv::FakeCompile c;
  c.compile_dir = w.dir;
  CHECK(host.pre(c) == CLSI_STATUS_OK);
  INFO(c.output);
  CHECK_THAT(c.output, Contains("reusing environment"));
  host.post(c);
  // Neither text nor anything else is a record: no requirements list.
  CHECK_FALSE(clsi::venv::parse_record("{\"key\": \"" + key + "\"}"));
  CHECK_FALSE(clsi::venv::parse_record("{\"requested\": [1]}"));
  CHECK_FALSE(clsi::venv::parse_record("key: x\nrequested: gamma\n"));
  CHECK_FALSE(clsi::venv::parse_record("{not json"));
  CHECK_FALSE(clsi::venv::parse_record(""));
}

TEST_CASE("plugin: an exception at any step of pre-compile falls back", "[plugin][faults]") {
  PluginWorld w;
  testenv::write_file(w.dir + "/requirements.txt", "gamma\n");
  auto config = clsi::venv::load_config(w.config.c_str(), [](const char*) { return nullptr; });
  REQUIRE(config.ok());
  const std::string at = GENERATE("read", "parse", "gate", "key", "service");
  const bool bad_alloc = GENERATE(false, true);
  auto seams = clsi::venv::Seams::production();
  seams.step = [&](const char* step) {
    if (at != step) return;
    if (bad_alloc) throw std::bad_alloc();
    throw std::runtime_error(std::string("injected at ") + step);
  };
  std::vector<std::string> output;
  std::map<std::string, std::string> env;
  struct Sinks {
    std::vector<std::string>* out;
    std::map<std::string, std::string>* env;
  } sinks{&output, &env};
  clsi_host_callbacks_v1 cb{
      sizeof(cb),
      nullptr,
      [](void*, clsi_log_level, const char*) {},
      [](void* p, const char* n, const char* v) {
        (*static_cast<Sinks*>(p)->env)[n] = v;
        return 0;
      },
      [](void* p, const char* t, size_t n) { static_cast<Sinks*>(p)->out->emplace_back(t, n); },
      nullptr,
      nullptr,
      nullptr,
      nullptr};  // a host without the 1.1 callbacks
  clsi::HostServices host(&cb);
  const char* const permissions[] = {CLSI_PERMISSION_PYTHON_INSTALL, nullptr};
  clsi_compile_v1 facts{sizeof(facts), &sinks, "p", "u", w.dir.c_str(), 1, -1, "c1", permissions};
  clsi::venv::VenvPlugin plugin(*config, host, seams);
  clsi::CompileContext ctx(host, &facts);
  void* state = nullptr;
  INFO("throw at " << at << (bad_alloc ? " (bad_alloc)" : ""));
  CHECK(plugin.pre_compile(ctx, &state) == CLSI_STATUS_FELL_BACK);
  // The fallback's outcome is kept for post-compile, which tells the build
  // service (its metrics count it) and releases it; no venv was used.
  REQUIRE(state != nullptr);
  clsi_compile_result_v1 result{sizeof(result), 0, 0, 0};
  CHECK(plugin.post_compile(ctx, state, result) == CLSI_STATUS_NOTHING_TO_DO);
  CHECK(env.empty());
  std::string all;
  for (const auto& l : output)
    all += l;
  CHECK_THAT(all, Contains("failed unexpectedly"));
  CHECK_THAT(all, Contains("base interpreter"));
}

// One plugin instance, many compiles at once on threads of one process, as a
// Node host runs them: every compile gets its own key's venv, each key is
// built once, and nothing of one compile leaks into another.
TEST_CASE("plugin: many compiles of one instance at once, on threads", "[plugin][concurrency]") {
#if defined(__SANITIZE_ADDRESS__)
  // GCC 12's AddressSanitizer is not fork-safe: a child forked (for pip) while
  // another of the many threads here holds its allocator's lock deadlocks
  // before exec. glibc's malloc is; this test runs in the normal and the
  // ThreadSanitizer passes.
  WARN("skipped under AddressSanitizer (fork from a busy multithreaded process)");
  return;
#endif
  PluginWorld w;
  testenv::make_index(w.tmp / "idx", R"([
    {"name": "gamma", "version": "0.3", "files": {"gamma/__init__.py": "X = 1\n"}},
    {"name": "delta", "version": "1.0", "files": {"delta/__init__.py": "X = 2\n"}}])");
  testenv::write_plugin_yaml(w.config, {"enabled: true", "venvs_dir: " + w.venvs,
                                        "index_url: file://" + w.tmp / "idx/simple/",
                                        "service:", "  socket: " + w.tmp / "sock"});
  auto config = clsi::venv::load_config(w.config.c_str(), [](const char*) { return nullptr; });
  REQUIRE(config.ok());
  clsi::venv::BuildService service(*config, clsi::venv::default_process_runner(),
                                   [](std::string_view) {});
  REQUIRE(service.start().ok());
  std::thread serving([&] { service.run(); });
  struct Stop {
    clsi::venv::BuildService& s;
    std::thread& t;
    ~Stop() {
      s.request_stop();
      t.join();
    }
  } stop{service, serving};

  const std::vector<std::string> sets = {"gamma\n", "delta\n", "gamma\ndelta\n", "gamma>=0.1\n"};
  constexpr int kCompiles = 16;
  std::vector<std::string> dirs;
  for (int i = 0; i < kCompiles; ++i) {
    std::string dir = w.tmp / ("p" + std::to_string(i));
    testenv::write_file(dir + "/requirements.txt", sets[i % sets.size()]);
    dirs.push_back(dir);
  }
  testenv::FakeHost host(CLSI_PLUGIN_PATH);
  REQUIRE(host.create(w.config));
  std::vector<std::unique_ptr<testenv::FakeCompile>> compiles;
  for (int i = 0; i < kCompiles; ++i) {
    compiles.push_back(std::make_unique<testenv::FakeCompile>());
    compiles.back()->compile_dir = dirs[i];
    compiles.back()->project_id = "project-" + std::to_string(i);
  }
  std::vector<std::thread> threads;
  for (int i = 0; i < kCompiles; ++i) {
    threads.emplace_back([&, i] {
      host.pre(*compiles[i]);
      host.post(*compiles[i]);
    });
  }
  for (auto& t : threads)
    t.join();
  std::map<std::string, std::string> python_of_set;
  for (int i = 0; i < kCompiles; ++i) {
    auto& c = *compiles[i];
    INFO(c.output);
    REQUIRE(c.pre_status == CLSI_STATUS_OK);
    const std::string& py = c.env["QUARTO_PYTHON"];
    CHECK_THAT(py, Contains(w.venvs + "/envs/"));
    CHECK_THAT(c.env["JUPYTER_PATH"], Contains(py.substr(0, py.size() - 12)));  // same venv
    auto [it, fresh] = python_of_set.emplace(sets[i % sets.size()], py);
    CHECK(it->second == py);  // one venv per requirements set
  }
  CHECK(python_of_set.size() == sets.size());
  CHECK(testenv::count_occurrences(testenv::read_file(w.venvs + "/events.log"), " build ") ==
        static_cast<int>(sets.size()));
}

// After a build, before the waiting compile takes its lease, someone else
// may hold the key's lock exclusively for a moment (in the service: a second
// job queued for the key checking the venv under it, an eviction pass that
// saw it unfinished looking again): the compile waits for its lease, and is
// not refused the venv.
TEST_CASE("plugin: a compile told its venv is ready waits out a brief exclusive hold of its lock",
          "[plugin][concurrency]") {
  PluginWorld w;
  testenv::make_index(w.tmp / "idx", R"([
    {"name": "gamma", "version": "0.3", "files": {"gamma/__init__.py": "X = 1\n"}}])");
  testenv::write_plugin_yaml(w.config, {"enabled: true", "venvs_dir: " + w.venvs,
                                        "index_url: file://" + w.tmp / "idx/simple/",
                                        "service:", "  socket: " + w.tmp / "sock"});
  testenv::write_file(w.dir + "/requirements.txt", "gamma\n");
  auto config = clsi::venv::load_config(w.config.c_str(), [](const char*) { return nullptr; });
  REQUIRE(config.ok());
  auto seams = clsi::venv::Seams::production();
  clsi::venv::BuildService service(*config, seams.runner, [](std::string_view) {});
  REQUIRE(service.start().ok());
  std::thread serving([&] { service.run(); });
  struct Stop {
    clsi::venv::BuildService& s;
    std::thread& t;
    ~Stop() {
      s.request_stop();
      t.join();
    }
  } stop{service, serving};

  // Once the service has said `ready`: the key's lock, exclusively, for
  // half a second, on another thread.
  std::optional<std::thread> holder;
  std::atomic<bool> held{false};
  std::atomic<bool> released{false};
  seams.step = [&](const char* step) {
    if (std::string_view(step) != "ready") return;
    std::string path;
    for (const auto& e : std::filesystem::directory_iterator(w.venvs + "/locks"))
      if (e.path().extension() == ".lock") path = e.path();
    auto lock = clsi::venv::KeyLock::open(path, false);
    if (!lock || !lock->lock_until(clsi::venv::KeyLock::Mode::kExclusive,
                                   std::chrono::steady_clock::now() + std::chrono::seconds(10)))
      return;
    held = true;
    holder.emplace([&released, l = std::move(*lock)]() mutable {
      std::this_thread::sleep_for(std::chrono::milliseconds(500));
      released = true;
      l.unlock();
    });
  };
  std::vector<std::string> output;
  std::map<std::string, std::string> env;
  struct Sinks {
    std::vector<std::string>* out;
    std::map<std::string, std::string>* env;
  } sinks{&output, &env};
  clsi_host_callbacks_v1 cb{
      sizeof(cb),
      nullptr,
      [](void*, clsi_log_level, const char*) {},
      [](void* p, const char* n, const char* v) {
        (*static_cast<Sinks*>(p)->env)[n] = v;
        return 0;
      },
      [](void* p, const char* t, size_t n) { static_cast<Sinks*>(p)->out->emplace_back(t, n); },
      nullptr,
      nullptr,
      nullptr,
      nullptr};
  clsi::HostServices host(&cb);
  const char* const permissions[] = {CLSI_PERMISSION_PYTHON_INSTALL, nullptr};
  clsi_compile_v1 facts{sizeof(facts), &sinks, "p", "u", w.dir.c_str(), 1, -1, "c1", permissions};
  clsi::venv::VenvPlugin plugin(*config, host, seams);
  clsi::CompileContext ctx(host, &facts);
  void* state = nullptr;
  const auto status = plugin.pre_compile(ctx, &state);
  const bool released_before_lease = released.load();
  clsi_compile_result_v1 result{sizeof(result), 0, 0, 0};
  plugin.post_compile(ctx, state, result);
  if (holder) holder->join();
  std::string all;
  for (const auto& l : output)
    all += l;
  INFO(all);
  REQUIRE(held);
  CHECK(released_before_lease);  // the compile's shared lease came after the hold
  REQUIRE(status == CLSI_STATUS_OK);
  CHECK_THAT(all, Contains("is ready"));
  CHECK_THAT(env["QUARTO_PYTHON"], Contains(w.venvs + "/envs/"));
}
