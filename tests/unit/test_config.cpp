// plugin.yaml: defaults, every key, errors that name the key and the file,
// and the environment overrides, through the GetEnv seam (never setenv).
#include <sys/stat.h>
#include <unistd.h>

#include <catch2/catch.hpp>

#include <map>
#include <set>
#include <string>
#include <vector>

#include "config.hpp"
#include "test_env.hpp"

using clsi::venv::Config;
using clsi::venv::GetEnv;
using clsi::venv::load_config;

namespace {

// An environment made of a map; records which variables were asked for.
struct FakeEnv {
  std::map<std::string, std::string> vars;
  std::set<std::string> asked;
  GetEnv fn() {
    return [this](const char* name) -> const char* {
      asked.insert(name);
      auto it = vars.find(name);
      return it == vars.end() ? nullptr : it->second.c_str();
    };
  }
};

GetEnv no_env() {
  return [](const char*) -> const char* { return nullptr; };
}

GetEnv env_of(const std::map<std::string, std::string>& vars) {
  // The map is copied into the lambda; pointers into it stay valid for its life.
  return [vars](const char* name) -> const char* {
    auto it = vars.find(name);
    return it == vars.end() ? nullptr : it->second.c_str();
  };
}

void check_defaults(const Config& c) {
  Config d;
  CHECK(c.enabled == false);
  CHECK(c.venvs_dir == "/var/lib/overleaf/data/python-venvs");
  CHECK(c.base_python == "/usr/bin/python3");
  CHECK(c.requirements_files == std::vector<std::string>{"requirements.vrf", "requirements.txt"});
  CHECK(c.index_url == d.index_url);
  CHECK(c.only_binary == true);
  CHECK(c.require_hashes == false);
  CHECK(c.render_reserve_s == 30);
  CHECK(c.retry_failed_after_s == 120);
  CHECK(c.builder == "auto");
  CHECK(c.caps.install_timeout_s == 600);
  CHECK(c.caps.max_venv_mb == 2048);
  CHECK(c.caps.max_packages == 100);
  CHECK(c.caps.max_requirements_bytes == 64 * 1024);
  CHECK(c.caps.max_requirement_lines == 200);
  CHECK(c.caps.max_venv_files == 50000);
  CHECK(c.eviction.max_total_mb == 51200);
  CHECK(c.eviction.gc_after_build == true);
}

// Loads a plugin.yaml whose python_venv section holds `lines`; expects an
// error and returns it.
std::string error_for(const std::vector<std::string>& lines, std::string* path_out = nullptr) {
  testenv::TempDir dir;
  auto path = testenv::write_plugin_yaml(dir / "plugin.yaml", lines);
  if (path_out) *path_out = path;
  auto c = load_config(path.c_str(), no_env());
  INFO("yaml body: " << Catch::Detail::stringify(lines));
  REQUIRE_FALSE(c.ok());
  CHECK_THAT(c.error(), Catch::Contains(path));
  return c.error();
}

}  // namespace

TEST_CASE("config: no file gives the documented defaults", "[config]") {
  for (const char* path : {static_cast<const char*>(nullptr), ""}) {
    auto c = load_config(path, no_env());
    REQUIRE(c.ok());
    check_defaults(*c);
    CHECK(c->source == "(built-in defaults)");
  }
}

TEST_CASE("config: an empty file or an empty section gives the defaults", "[config]") {
  testenv::TempDir dir;
  for (std::string body : {"", "# nothing\n", "{}\n", "python_venv:\n", "python_venv: ~\n",
                           "python_venv:\nother_plugin:\n  x: 1\n"}) {
    testenv::write_file(dir / "plugin.yaml", body);
    auto c = load_config((dir / "plugin.yaml").c_str(), no_env());
    INFO("body: " << body);
    REQUIRE(c.ok());
    check_defaults(*c);
    CHECK(c->source == dir / "plugin.yaml");
  }
}

TEST_CASE("config: every key is read", "[config]") {
  testenv::TempDir dir;
  auto path = testenv::write_plugin_yaml(dir / "plugin.yaml",
                                         {
                                             "enabled: true",
                                             "venvs_dir: /srv/venvs",
                                             "base_python: /opt/python/bin/python3.12",
                                             "requirements_files: [pyproject.vrf, reqs.txt]",
                                             "index_url: https://mirror.internal/simple",
                                             "only_binary: false",
                                             "require_hashes: true",
                                             "render_reserve_s: 45",
                                             "retry_failed_after_s: 0",
                                             "builder: inline",
                                             "caps:",
                                             "  install_timeout_s: 120",
                                             "  max_venv_mb: 512",
                                             "  max_packages: 7",
                                             "  max_requirements_bytes: 4096",
                                             "  max_requirement_lines: 12",
                                             "  max_venv_files: 1234",
                                             "eviction:",
                                             "  max_total_mb: 1000",
                                             "  gc_after_build: false",
                                         });
  auto c = load_config(path.c_str(), no_env());
  INFO((c.ok() ? "" : c.error()));
  REQUIRE(c.ok());
  CHECK(c->enabled == true);
  CHECK(c->venvs_dir == "/srv/venvs");
  CHECK(c->base_python == "/opt/python/bin/python3.12");
  CHECK(c->requirements_files == std::vector<std::string>{"pyproject.vrf", "reqs.txt"});
  CHECK(c->index_url == "https://mirror.internal/simple");
  CHECK(c->only_binary == false);
  CHECK(c->require_hashes == true);
  CHECK(c->render_reserve_s == 45);
  CHECK(c->retry_failed_after_s == 0);
  CHECK(c->builder == "inline");
  CHECK(c->caps.install_timeout_s == 120);
  CHECK(c->caps.max_venv_mb == 512);
  CHECK(c->caps.max_packages == 7);
  CHECK(c->caps.max_requirements_bytes == 4096);
  CHECK(c->caps.max_requirement_lines == 12);
  CHECK(c->caps.max_venv_files == 1234);
  CHECK(c->eviction.max_total_mb == 1000);
  CHECK(c->eviction.gc_after_build == false);
  CHECK(c->source == path);
}

TEST_CASE("config: builder takes auto, inline or an absolute path", "[config]") {
  testenv::TempDir dir;
  for (std::string v : {"auto", "inline", "/usr/local/bin/clsi-venvs"}) {
    auto path = testenv::write_plugin_yaml(dir / "plugin.yaml", {"builder: " + v});
    auto c = load_config(path.c_str(), no_env());
    INFO((c.ok() ? "" : c.error()));
    REQUIRE(c.ok());
    CHECK(c->builder == v);
  }
}

TEST_CASE("config: keys left out keep their defaults", "[config]") {
  testenv::TempDir dir;
  auto path = testenv::write_plugin_yaml(dir / "plugin.yaml",
                                         {"enabled: true", "caps:", "  max_packages: 5"});
  auto c = load_config(path.c_str(), no_env());
  REQUIRE(c.ok());
  CHECK(c->enabled);
  CHECK(c->caps.max_packages == 5);
  CHECK(c->caps.install_timeout_s == 600);
  CHECK(c->caps.max_venv_mb == 2048);
  CHECK(c->eviction.max_total_mb == 51200);
  CHECK(c->venvs_dir == "/var/lib/overleaf/data/python-venvs");
}

TEST_CASE("config: the shipped plugin.yaml loads", "[config]") {
  std::string path = std::string(CLSI_SOURCE_DIR) + "/plugin.yaml";
  if (!testenv::exists(path)) return;
  auto c = load_config(path.c_str(), no_env());
  INFO((c.ok() ? "" : c.error()));
  CHECK(c.ok());
  // caps.max_venv_files is written out, with the built-in default.
  REQUIRE(c.ok());
  CHECK(c->caps.max_venv_files == Config{}.caps.max_venv_files);
  CHECK_THAT(testenv::read_file(path), Catch::Contains("max_venv_files: 50000"));
}

TEST_CASE("config: unknown keys are errors naming the key and the file", "[config]") {
  struct Case {
    std::vector<std::string> lines;
    std::string key;
  };
  std::vector<Case> cases = {
      {{"enabeld: true"}, "python_venv.enabeld"},
      {{"index-url: https://x/simple"}, "python_venv.index-url"},
      {{"caps:", "  max_mb: 5"}, "python_venv.caps.max_mb"},
      {{"caps:", "  max_packages: 5", "  install_timeout: 5"}, "python_venv.caps.install_timeout"},
      {{"eviction:", "  max_total_gb: 5"}, "python_venv.eviction.max_total_gb"},
  };
  for (const auto& c : cases) {
    auto e = error_for(c.lines);
    CHECK_THAT(e, Catch::Contains(c.key));
    CHECK_THAT(e, Catch::Contains("unknown key"));
  }
}

TEST_CASE("config: values of the wrong type are errors naming the key and the file", "[config]") {
  struct Case {
    std::vector<std::string> lines;
    std::string key;
  };
  std::vector<Case> cases = {
      {{"enabled: maybe"}, "python_venv.enabled"},
      {{"enabled: 1"}, "python_venv.enabled"},
      {{"enabled: [true]"}, "python_venv.enabled"},
      {{"enabled:"}, "python_venv.enabled"},
      {{"only_binary: sometimes"}, "python_venv.only_binary"},
      {{"require_hashes: {a: b}"}, "python_venv.require_hashes"},
      {{"venvs_dir: [/a, /b]"}, "python_venv.venvs_dir"},
      {{"venvs_dir: \"\""}, "python_venv.venvs_dir"},
      {{"base_python: {path: /usr/bin/python3}"}, "python_venv.base_python"},
      {{"index_url: [https://x/simple]"}, "python_venv.index_url"},
      {{"requirements_files: requirements.txt"}, "python_venv.requirements_files"},
      {{"requirements_files: [[a]]"}, "python_venv.requirements_files"},
      {{"requirements_files: {a: b}"}, "python_venv.requirements_files"},
      {{"render_reserve_s: soon"}, "python_venv.render_reserve_s"},
      {{"render_reserve_s: -1"}, "python_venv.render_reserve_s"},
      {{"caps: 5"}, "python_venv.caps"},
      {{"caps: [1, 2]"}, "python_venv.caps"},
      {{"caps:", "  install_timeout_s: ten"}, "python_venv.caps.install_timeout_s"},
      {{"caps:", "  install_timeout_s: 0"}, "python_venv.caps.install_timeout_s"},
      {{"caps:", "  install_timeout_s: 1.5"}, "python_venv.caps.install_timeout_s"},
      {{"caps:", "  install_timeout_s: 99999999999"}, "python_venv.caps.install_timeout_s"},
      {{"caps:", "  max_venv_mb: [1]"}, "python_venv.caps.max_venv_mb"},
      {{"caps:", "  max_venv_mb: 2GB"}, "python_venv.caps.max_venv_mb"},
      {{"caps:", "  max_packages: many"}, "python_venv.caps.max_packages"},
      {{"caps:", "  max_packages: 0"}, "python_venv.caps.max_packages"},
      {{"caps:", "  max_requirements_bytes: 0x100"}, "python_venv.caps.max_requirements_bytes"},
      {{"caps:", "  max_requirement_lines: -3"}, "python_venv.caps.max_requirement_lines"},
      {{"caps:", "  max_venv_files: 0"}, "python_venv.caps.max_venv_files"},
      {{"caps:", "  max_venv_files: 10k"}, "python_venv.caps.max_venv_files"},
      {{"caps:", "  max_venv_files: [1]"}, "python_venv.caps.max_venv_files"},
      {{"caps:", "  max_venv_files: 99999999999999999999"}, "python_venv.caps.max_venv_files"},
      {{"eviction: yes"}, "python_venv.eviction"},
      {{"eviction:", "  max_total_mb: lots"}, "python_venv.eviction.max_total_mb"},
      {{"eviction:", "  max_total_mb: -1"}, "python_venv.eviction.max_total_mb"},
      {{"eviction:", "  gc_after_build: sometimes"}, "python_venv.eviction.gc_after_build"},
      {{"retry_failed_after_s: -5"}, "python_venv.retry_failed_after_s"},
      {{"retry_failed_after_s: [1]"}, "python_venv.retry_failed_after_s"},
      {{"builder: [inline]"}, "python_venv.builder"},
  };
  for (const auto& c : cases) {
    auto e = error_for(c.lines);
    CHECK_THAT(e, Catch::Contains(c.key));
  }
}

TEST_CASE("config: invalid values are errors naming the key and the file", "[config]") {
  struct Case {
    std::vector<std::string> lines;
    std::string key;
  };
  std::vector<Case> cases = {
      {{"venvs_dir: relative/dir"}, "python_venv.venvs_dir"},
      {{"base_python: python3"}, "python_venv.base_python"},
      {{"builder: bin/clsi-venvs"}, "python_venv.builder"},
      {{"index_url: mirror.internal/simple"}, "python_venv.index_url"},
      {{"index_url: ftp://mirror/simple"}, "python_venv.index_url"},
      {{"requirements_files: []"}, "python_venv.requirements_files"},
      {{"requirements_files: [../etc/passwd]"}, "python_venv.requirements_files"},
      {{"requirements_files: [sub/requirements.txt]"}, "python_venv.requirements_files"},
      {{"requirements_files: [\"..\"]"}, "python_venv.requirements_files"},
      {{"requirements_files: [\"\"]"}, "python_venv.requirements_files"},
  };
  for (const auto& c : cases) {
    auto e = error_for(c.lines);
    CHECK_THAT(e, Catch::Contains(c.key));
  }
}

TEST_CASE("config: a file that is not a mapping or not YAML is an error naming the file",
          "[config]") {
  testenv::TempDir dir;
  for (std::string body : {"python_venv: [1, 2]\n", "python_venv: 5\n", "- a\n- b\n",
                           "python_venv:\n  enabled: [unclosed\n", "python_venv: {\n"}) {
    testenv::write_file(dir / "plugin.yaml", body);
    auto c = load_config((dir / "plugin.yaml").c_str(), no_env());
    INFO("body: " << body);
    REQUIRE_FALSE(c.ok());
    CHECK_THAT(c.error(), Catch::Contains(dir / "plugin.yaml"));
  }
}

TEST_CASE("config: a missing file is an error naming the file", "[config]") {
  testenv::TempDir dir;
  auto path = dir / "no-such-plugin.yaml";
  auto c = load_config(path.c_str(), no_env());
  REQUIRE_FALSE(c.ok());
  CHECK_THAT(c.error(), Catch::Contains(path));
  CHECK_THAT(c.error(), Catch::Contains("no such file"));
}

TEST_CASE("config: a file that cannot be read says why", "[config]") {
  testenv::TempDir dir;
  SECTION("a directory") {
    auto c = load_config(dir.path().c_str(), no_env());
    REQUIRE_FALSE(c.ok());
    CHECK_THAT(c.error(), Catch::Contains(dir.path()) && Catch::Contains("is a directory"));
  }
  SECTION("under a path that is not a directory") {
    testenv::write_file(dir / "file", "x\n");
    auto c = load_config((dir / "file/plugin.yaml").c_str(), no_env());
    REQUIRE_FALSE(c.ok());
    CHECK_THAT(c.error(), Catch::Contains("Not a directory"));
  }
  SECTION("not readable") {
    // Root reads any file (test_cli.cpp tries this as a second user).
    if (::geteuid() == 0) return;
    auto path = testenv::write_plugin_yaml(dir / "plugin.yaml", {"enabled: true"});
    REQUIRE(::chmod(path.c_str(), 0) == 0);
    auto c = load_config(path.c_str(), no_env());
    REQUIRE_FALSE(c.ok());
    CHECK_THAT(c.error(), Catch::Contains(path) && Catch::Contains("Permission denied") &&
                              Catch::Contains("mode 0000"));
  }
}

TEST_CASE("config: sections without python_venv are an error naming what the file has",
          "[config]") {
  testenv::TempDir dir;
  struct Case {
    std::string body;
    std::string found;  // the sections the message lists
    std::string typo;   // the one it suggests is python_venv; "": none
  };
  for (const auto& c : std::vector<Case>{
           {"pythonvenv:\n  enabled: true\n", "pythonvenv", "pythonvenv"},
           {"python-venv:\n  enabled: true\n", "python-venv", "python-venv"},
           {"Python_Venv:\n  enabled: true\n", "Python_Venv", "Python_Venv"},
           {"python_venvs:\n  enabled: true\n", "python_venvs", "python_venvs"},
           {"pyhton_venv:\n  enabled: true\n", "pyhton_venv", "pyhton_venv"},
           {"enabled: true\nvenvs_dir: /srv/venvs\n", "enabled, venvs_dir", ""},
           {"other_plugin:\n  x: 1\nproject_bin:\n  dir: bin\n", "other_plugin, project_bin", ""},
       }) {
    INFO("body: " << c.body);
    testenv::write_file(dir / "plugin.yaml", c.body);
    auto r = load_config((dir / "plugin.yaml").c_str(), no_env());
    REQUIRE_FALSE(r.ok());
    CHECK_THAT(r.error(), Catch::Contains(dir / "plugin.yaml"));
    CHECK_THAT(r.error(), Catch::Contains("no python_venv section"));
    CHECK_THAT(r.error(), Catch::Contains("(the file has: " + c.found + ")"));
    if (c.typo.empty()) {
      CHECK_THAT(r.error(), !Catch::Contains("did you mean"));
    } else {
      CHECK_THAT(r.error(), Catch::Contains("did you mean python_venv instead of " + c.typo + "?"));
    }
  }
}

TEST_CASE("config: OVERLEAF_ENABLE_PROJECT_PYTHON_VENV overrides the file", "[config]") {
  testenv::TempDir dir;
  auto on = testenv::write_plugin_yaml(dir / "on.yaml", {"enabled: true"});
  auto off = testenv::write_plugin_yaml(dir / "off.yaml", {"enabled: false"});
  struct Case {
    std::string value;
    bool enabled;
  };
  for (const auto& c : std::vector<Case>{{"true", true},
                                         {"false", false},
                                         {"1", true},
                                         {"0", false},
                                         {"TRUE", true},
                                         {"False", false}}) {
    INFO("OVERLEAF_ENABLE_PROJECT_PYTHON_VENV=" << c.value);
    auto env = env_of({{"OVERLEAF_ENABLE_PROJECT_PYTHON_VENV", c.value}});
    for (const char* path : {on.c_str(), off.c_str(), static_cast<const char*>(nullptr)}) {
      auto cfg = load_config(path, env);
      REQUIRE(cfg.ok());
      CHECK(cfg->enabled == c.enabled);
    }
  }
  // Unset: the file decides.
  CHECK(load_config(on.c_str(), no_env())->enabled == true);
  CHECK(load_config(off.c_str(), no_env())->enabled == false);
}

TEST_CASE("config: an invalid OVERLEAF_ENABLE_PROJECT_PYTHON_VENV is an error naming it",
          "[config]") {
  testenv::TempDir dir;
  auto on = testenv::write_plugin_yaml(dir / "plugin.yaml", {"enabled: true"});
  for (std::string value : {"maybe", "2", "enable", "tru", " true"}) {
    INFO("value: '" << value << "'");
    for (const char* path : {on.c_str(), static_cast<const char*>(nullptr)}) {
      auto c = load_config(path, env_of({{"OVERLEAF_ENABLE_PROJECT_PYTHON_VENV", value}}));
      REQUIRE_FALSE(c.ok());
      CHECK_THAT(c.error(), Catch::Contains("OVERLEAF_ENABLE_PROJECT_PYTHON_VENV"));
      CHECK_THAT(c.error(), Catch::Contains(value));
    }
  }
}

TEST_CASE("config: PYTHON_VENVS_DIR overrides venvs_dir", "[config]") {
  testenv::TempDir dir;
  auto path = testenv::write_plugin_yaml(dir / "plugin.yaml", {"venvs_dir: /from/the/file"});
  auto c = load_config(path.c_str(), env_of({{"PYTHON_VENVS_DIR", "/from/the/env"}}));
  REQUIRE(c.ok());
  CHECK(c->venvs_dir == "/from/the/env");

  auto d = load_config(nullptr, env_of({{"PYTHON_VENVS_DIR", "/from/the/env"}}));
  REQUIRE(d.ok());
  CHECK(d->venvs_dir == "/from/the/env");

  auto f = load_config(path.c_str(), no_env());
  REQUIRE(f.ok());
  CHECK(f->venvs_dir == "/from/the/file");

  // It is validated like the key it overrides, and the error names it.
  auto bad = load_config(path.c_str(), env_of({{"PYTHON_VENVS_DIR", "relative/venvs"}}));
  REQUIRE_FALSE(bad.ok());
  CHECK_THAT(bad.error(), Catch::Contains("PYTHON_VENVS_DIR"));
  CHECK_THAT(bad.error(), Catch::Contains("relative/venvs"));
  CHECK_THAT(bad.error(), Catch::Contains("python_venv.venvs_dir"));
}

TEST_CASE("config: both overrides at once, and only through the GetEnv seam", "[config]") {
  testenv::TempDir dir;
  auto path = testenv::write_plugin_yaml(
      dir / "plugin.yaml", {"enabled: false", "venvs_dir: /file", "caps:", "  max_packages: 3"});
  FakeEnv env;
  env.vars = {{"OVERLEAF_ENABLE_PROJECT_PYTHON_VENV", "1"},
              {"PYTHON_VENVS_DIR", "/env"},
              {"PIP_INDEX_URL", "http://evil/simple"}};
  auto c = load_config(path.c_str(), env.fn());
  REQUIRE(c.ok());
  CHECK(c->enabled);
  CHECK(c->venvs_dir == "/env");
  CHECK(c->caps.max_packages == 3);
  CHECK(c->index_url == Config{}.index_url);  // PIP_* is not a config source
  CHECK(env.asked.count("OVERLEAF_ENABLE_PROJECT_PYTHON_VENV") == 1);
  CHECK(env.asked.count("PYTHON_VENVS_DIR") == 1);
}

TEST_CASE("config: empty override variables are ignored", "[config]") {
  testenv::TempDir dir;
  auto path = testenv::write_plugin_yaml(dir / "plugin.yaml", {"enabled: true"});
  auto c =
      load_config(path.c_str(),
                  env_of({{"OVERLEAF_ENABLE_PROJECT_PYTHON_VENV", ""}, {"PYTHON_VENVS_DIR", ""}}));
  REQUIRE(c.ok());
  CHECK(c->enabled);
  CHECK(c->venvs_dir == "/var/lib/overleaf/data/python-venvs");
}

TEST_CASE("config: an integer too large for its key says so", "[config]") {
  testenv::TempDir dir;
  auto path =
      testenv::write_plugin_yaml(dir / "plugin.yaml", {"caps:", "  max_packages: 99999999999"});
  auto c =
      clsi::venv::load_config(path.c_str(), [](const char*) -> const char* { return nullptr; });
  REQUIRE_FALSE(c.ok());
  CHECK_THAT(c.error(), Catch::Contains("python_venv.caps.max_packages: must be at most"));
  auto huge = testenv::write_plugin_yaml(dir / "huge.yaml",
                                         {"caps:", "  max_venv_mb: 99999999999999999999999"});
  auto h =
      clsi::venv::load_config(huge.c_str(), [](const char*) -> const char* { return nullptr; });
  REQUIRE_FALSE(h.ok());
  CHECK_THAT(h.error(), Catch::Contains("out of range"));
}

TEST_CASE("config: the service section is read and checked", "[config][service]") {
  testenv::TempDir dir;
  auto none = [](const char*) -> const char* { return nullptr; };
  auto path = testenv::write_plugin_yaml(
      dir / "plugin.yaml", {"service:", "  socket: /run/x/sock", "  allowed_uids: [33, 1000]",
                            "  allowed_gids: [4]", "  max_parallel_builds: 5",
                            "  connect_timeout_ms: 250", "eviction:", "  gc_interval_s: 60"});
  auto c = clsi::venv::load_config(path.c_str(), none);
  REQUIRE(c.ok());
  CHECK(c->service.socket == "/run/x/sock");
  CHECK(c->service.allowed_uids == std::vector<std::uint32_t>{33, 1000});
  CHECK(c->service.allowed_gids == std::vector<std::uint32_t>{4});
  CHECK(c->service.max_parallel_builds == 5);
  CHECK(c->service.connect_timeout_ms == 250);
  CHECK(c->eviction.gc_interval_s == 60);

  for (const auto& [lines, key] : std::vector<std::pair<std::vector<std::string>, std::string>>{
           {{"service:", "  socket: run/sock"}, "python_venv.service.socket"},
           {{"service:", "  allowed_uids: 33"}, "python_venv.service.allowed_uids"},
           {{"service:", "  allowed_uids: [root]"}, "python_venv.service.allowed_uids"},
           {{"service:", "  allowed_gids: [-1]"}, "python_venv.service.allowed_gids"},
           {{"service:", "  max_parallel_builds: 0"}, "python_venv.service.max_parallel_builds"},
           {{"service:", "  sockets: /x"}, "python_venv.service.sockets"}}) {
    auto p = testenv::write_plugin_yaml(dir / "bad.yaml", lines);
    auto bad = clsi::venv::load_config(p.c_str(), none);
    INFO(lines[1]);
    REQUIRE_FALSE(bad.ok());
    CHECK_THAT(bad.error(), Catch::Contains(key));
  }
}
