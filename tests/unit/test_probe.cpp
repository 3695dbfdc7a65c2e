// The interpreter probe runs once per interpreter file, across processes.
#include <fcntl.h>
#include <sys/stat.h>

#include <catch2/catch.hpp>
#include <ctime>

#include "key.hpp"
#include "probe.hpp"
#include "store.hpp"
#include "test_env.hpp"

namespace {

struct ProbeWorld {
  testenv::TempDir tmp;
  clsi::venv::Store store{tmp / "store"};
  std::string python = tmp / "bin/python3";
  int spawned = 0;
  clsi::venv::ProcessRunner runner;
  ProbeWorld() {
    REQUIRE(store.ensure_layout().ok());
    // An interpreter file of our own, so that the test can change it.
    testenv::write_file(python, "#!/bin/sh\nexec /usr/bin/python3 \"$@\"\n");
    ::chmod(python.c_str(), 0755);
    auto real = clsi::venv::default_process_runner();
    runner = [this, real](const clsi::SpawnOptions& o, clsi::Deadline d, const clsi::LineSink& s,
                          const clsi::PollHook& h) {
      ++spawned;
      return real(o, d, s, h);
    };
  }
  clsi::venv::InterpreterProbe probe() { return {store.probes_dir(), store.tmp_dir(), runner}; }
};

}  // namespace

TEST_CASE("probe: a fresh instance reuses the stored result without a process", "[probe]") {
  ProbeWorld w;
  bool probed = false;
  auto first = w.probe().facts(w.python, &probed);
  REQUIRE(first.ok());
  CHECK(probed);
  CHECK(w.spawned == 1);
  CHECK_THAT(first->version, Catch::Contains("cpython"));
  CHECK_FALSE(first->pip_version.empty());

  auto again = w.probe().facts(w.python, &probed);  // as the next compile's instance would
  REQUIRE(again.ok());
  CHECK_FALSE(probed);
  CHECK(w.spawned == 1);
  CHECK(again->version == first->version);
  CHECK(again->pip_version == first->pip_version);
}

TEST_CASE("probe: a changed interpreter file is probed again", "[probe]") {
  ProbeWorld w;
  REQUIRE(w.probe().facts(w.python).ok());
  REQUIRE(w.spawned == 1);
  timespec later[2] = {{std::time(nullptr) + 100, 0}, {std::time(nullptr) + 100, 0}};
  REQUIRE(::utimensat(AT_FDCWD, w.python.c_str(), later, 0) == 0);
  bool probed = false;
  REQUIRE(w.probe().facts(w.python, &probed).ok());
  CHECK(probed);
  CHECK(w.spawned == 2);
}

TEST_CASE("probe: an interpreter that does not exist is a clear error", "[probe]") {
  ProbeWorld w;
  auto f = w.probe().facts(w.tmp / "nope/python3");
  REQUIRE_FALSE(f.ok());
  CHECK_THAT(f.error(), Catch::Contains("nope/python3"));
  CHECK(w.spawned == 0);
}

TEST_CASE("key cache: the same material gives the SHA-256 key, from the cache the second time",
          "[key]") {
  testenv::TempDir tmp;
  clsi::venv::KeyCache cache(tmp.path());
  std::string material = "clsi-python-venv layout 1\nrequirements:\nalpha\n";
  auto key = cache.key_for(material);
  CHECK(key == clsi::venv::sha256_hex(material));
  auto entries = testenv::list_dir(tmp.path());
  REQUIRE(entries.size() == 1);
  CHECK(testenv::read_file(tmp / entries[0]) == key + "\n" + material);
  CHECK(cache.key_for(material) == key);
  // An entry whose material differs (a collision, or tampering) is not trusted.
  testenv::write_file(tmp / entries[0], std::string(64, 'a') + "\nsomething else\n");
  CHECK(cache.key_for(material) == key);
  CHECK(testenv::read_file(tmp / entries[0]) == key + "\n" + material);
  // Different material, different key.
  CHECK(cache.key_for(material + "beta\n") != key);
}
