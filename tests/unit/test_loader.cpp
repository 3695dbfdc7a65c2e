// The host-side loader against real and deliberately broken plugin libraries.
#include <catch2/catch.hpp>

#include "clsi/plugin_loader.hpp"
#include "fake_host.hpp"
#include "test_env.hpp"

namespace {

std::string fixture(const std::string& name) {
  return std::string(CLSI_FIXTURE_DIR) + "/fixture_" + name + ".so";
}

std::string refusal_for(const std::string& path) {
  std::string why;
  auto lib = clsi::PluginLibrary::open(path, why);
  CHECK_FALSE(lib.has_value());
  return why;
}

}  // namespace

TEST_CASE("loader accepts the python-venv plugin and reads its table", "[loader]") {
  std::string why;
  auto lib = clsi::PluginLibrary::open(CLSI_PLUGIN_PATH, why);
  REQUIRE(lib.has_value());
  CHECK(why.empty());
  CHECK(lib->name() == "python-venv");
  CHECK(lib->table().abi_major == CLSI_PLUGIN_ABI_MAJOR);
  CHECK(lib->table().struct_size >= sizeof(clsi_plugin_v1));
}

TEST_CASE("loader refuses a path that does not exist, naming it", "[loader]") {
  auto why = refusal_for("/nonexistent/dir/plugin.so");
  CHECK_THAT(why, Catch::Contains("/nonexistent/dir/plugin.so"));
  CHECK_THAT(why, Catch::Contains("cannot load"));
}

TEST_CASE("loader refuses a file that is not a shared object", "[loader]") {
  testenv::TempDir dir;
  testenv::write_file(dir / "fake.so", "this is not an ELF file\n");
  auto why = refusal_for(dir / "fake.so");
  CHECK_THAT(why, Catch::Contains(dir / "fake.so"));
}

TEST_CASE("loader refuses a library without the entry symbol", "[loader]") {
  auto why = refusal_for(fixture("no_entry"));
  CHECK_THAT(why, Catch::Contains("not a clsi plugin"));
  CHECK_THAT(why, Catch::Contains("clsi_plugin_entry_v1"));
  CHECK_THAT(why, Catch::Contains("fixture_no_entry.so"));
}

TEST_CASE("loader refuses a plugin built for another ABI major", "[loader]") {
  auto why = refusal_for(fixture("wrong_abi"));
  CHECK_THAT(why, Catch::Contains("built for ABI 2.0"));
}

TEST_CASE("loader reports an entry point's refusal", "[loader]") {
  auto why = refusal_for(fixture("refuses"));
  CHECK_THAT(why, Catch::Contains("fixture refuses every host"));
}

TEST_CASE("loader refuses a plugin table that is too small", "[loader]") {
  auto why = refusal_for(fixture("small_table"));
  CHECK_THAT(why, Catch::Contains("8 bytes"));
}

TEST_CASE("a create hook that throws becomes a refusal with the message logged", "[loader][glue]") {
  testenv::FakeHost host(fixture("create_fails"));
  std::string why;
  CHECK_FALSE(host.create("", &why));
  CHECK_THAT(why, Catch::Contains("failed to start"));
  auto logs = host.logs();
  REQUIRE(logs.size() == 1);
  CHECK_THAT(logs[0], Catch::Contains("fixture: configuration is unusable"));
}

TEST_CASE("exceptions in hooks become ERROR, never cross the ABI", "[glue]") {
  testenv::TempDir dir;
  ::setenv("FIXTURE_MODE", "pre-throw", 1);
  testenv::FakeHost host(fixture("env_setter"));
  REQUIRE(host.create(""));
  testenv::FakeCompile c;
  c.compile_dir = dir.path();
  CHECK(host.pre(c) == CLSI_STATUS_ERROR);
  ::unsetenv("FIXTURE_MODE");
  bool logged = false;
  for (const auto& l : host.logs())
    logged |= l.find("pre-compile threw") != std::string::npos;
  CHECK(logged);
}

TEST_CASE("set_env is legal in pre-compile only", "[glue]") {
  testenv::TempDir dir;
  testenv::FakeHost host(fixture("env_setter"));
  REQUIRE(host.create(""));
  testenv::FakeCompile c;
  c.compile_dir = dir.path();
  REQUIRE(host.pre(c) == CLSI_STATUS_OK);
  CHECK(c.env.at("FIXTURE_VAR") == "from-plugin");
  CHECK(host.post(c, 3) == CLSI_STATUS_OK);
  CHECK_THAT(c.output, Catch::Contains("exit=3"));
  CHECK_THAT(c.output, Catch::Contains("set_env_refused=yes"));
  CHECK(c.env.count("LATE_VAR") == 0);
}
