// A file:// index's wheels, taken by the service itself (local_wheel.hpp).
#include "local_wheel.hpp"

#include <sys/stat.h>
#include <unistd.h>

#include <catch2/catch.hpp>

#include "digest.hpp"
#include "test_env.hpp"

using namespace clsi::venv;

TEST_CASE("a file: URL is a local path only when it names one, percent-decoded", "[local-wheel]") {
  CHECK(local_path_of_url("file:///srv/index/files/a-1.0-py3-none-any.whl") ==
        "/srv/index/files/a-1.0-py3-none-any.whl");
  CHECK(local_path_of_url("file://localhost/srv/a.whl") == "/srv/a.whl");
  CHECK(local_path_of_url("file:///srv/a-1.0%2Blocal-py3-none-any.whl") ==
        "/srv/a-1.0+local-py3-none-any.whl");
  CHECK(local_path_of_url("file:///srv/with%20space.whl") == "/srv/with space.whl");
  CHECK_FALSE(local_path_of_url("https://example.org/a.whl"));
  CHECK_FALSE(local_path_of_url("file://otherhost/srv/a.whl"));
  CHECK_FALSE(local_path_of_url("file://localhostile/srv/a.whl"));
  CHECK_FALSE(local_path_of_url("file:relative/a.whl"));
  CHECK_FALSE(local_path_of_url("file:///srv/a.whl#sha256=00"));
  CHECK_FALSE(local_path_of_url("file:///srv/a.whl?x=1"));
  CHECK_FALSE(local_path_of_url("file:///srv/a%00.whl"));
  CHECK_FALSE(local_path_of_url("file:///srv/a%2"));
  CHECK_FALSE(local_path_of_url("file:///srv/a%zz.whl"));
}

TEST_CASE("a local wheel is copied and kept only with the sha256 the resolve chose",
          "[local-wheel]") {
  testenv::TempDir tmp;
  const std::string from = tmp / "index.whl";
  std::string bytes(3 * 1024 * 1024 + 17, '\0');
  for (std::size_t i = 0; i < bytes.size(); ++i)
    bytes[i] = static_cast<char>(i * 31 % 251);
  testenv::write_file(from, bytes);
  auto sha = file_sha256_hex(from);
  REQUIRE(sha);

  auto good = copy_local_wheel(from, tmp / "good.whl", *sha);
  REQUIRE(good);
  CHECK_FALSE(good->mismatch);
  CHECK(good->path == tmp / "good.whl");
  CHECK(testenv::read_file(tmp / "good.whl") == bytes);

  // Other bytes than resolved: refused, and nothing of them is left.
  auto bad = copy_local_wheel(from, tmp / "bad.whl", std::string(64, '0'));
  REQUIRE(bad);
  CHECK(bad->mismatch);
  CHECK(bad->path.empty());
  CHECK_FALSE(testenv::exists(tmp / "bad.whl"));

  // Never over what is there; never a directory or a missing file.
  auto again = copy_local_wheel(from, tmp / "good.whl", *sha);
  REQUIRE_FALSE(again);
  CHECK_THAT(again.error(), Catch::Contains("cannot write"));
  auto dir = copy_local_wheel(tmp.path(), tmp / "dir.whl", *sha);
  REQUIRE_FALSE(dir);
  CHECK_THAT(dir.error(), Catch::Contains("is not a regular file"));
  CHECK_FALSE(copy_local_wheel(tmp / "missing.whl", tmp / "m.whl", *sha));
}
