// The python-venv plugin driven through the C ABI by the fake host, and
// directly with a counting process seam.
#include <sys/stat.h>
#include <catch2/catch.hpp>

#include <atomic>

#include "fake_host.hpp"
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
// even in a fresh plugin instance (clsi-runner makes one per compile).
TEST_CASE("plugin: a cache hit spawns no process, even in a fresh instance", "[plugin][hit]") {
  PluginWorld w;
  testenv::make_index(w.tmp / "idx", R"([{"name": "gamma", "version": "0.3",
      "files": {"gamma/__init__.py": "MESSAGE = 'gamma here'\n"}}])");
  testenv::write_plugin_yaml(w.config, {"enabled: true", "venvs_dir: " + w.venvs,
                                        "index_url: file://" + w.tmp / "idx/simple/"});
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
  std::vector<std::string> output;
  clsi_host_callbacks_v1 cb{sizeof(cb), nullptr, [](void*, clsi_log_level, const char*) {},
                            [](void*, const char*, const char*) { return 0; },
                            [](void* p, const char* t, size_t n) {
                              static_cast<std::vector<std::string>*>(p)->emplace_back(t, n);
                            }};
  clsi::HostServices host(&cb);
  clsi_compile_v1 facts{sizeof(facts), &output, "p", "u", w.dir.c_str(), 1, -1};

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
  CHECK(spawned >= 1);  // at least the interpreter probe (the build runs in clsi-venvs)
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
  // Every key is written out, so an operator sees all of them.
  auto text = testenv::read_file(CLSI_SOURCE_DIR "/plugin.yaml");
  for (const char* key :
       {"enabled:", "venvs_dir:", "base_python:", "requirements_files:", "index_url:",
        "only_binary:", "require_hashes:", "render_reserve_s:", "install_timeout_s:",
        "max_venv_mb:", "max_packages:", "max_requirements_bytes:", "max_requirement_lines:",
        "max_total_mb:", "retry_failed_after_s:", "builder:", "gc_after_build:"}) {
    CHECK_THAT(text, Contains(key));
  }
}
