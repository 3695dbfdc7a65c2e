// Finding and reading the untrusted requirements file: the first present
// name wins; symlinks, FIFOs, directories and oversized files are refused.
#include <catch2/catch.hpp>

#include <fcntl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <chrono>
#include <cstdint>
#include <cstring>
#include <future>
#include <limits>
#include <string>
#include <vector>

#include "requirements_file.hpp"
#include "test_env.hpp"

using clsi::venv::read_requirements_file;

namespace {

const std::vector<std::string> kDefaultNames = {"requirements.vrf", "requirements.txt"};
constexpr std::int64_t kCap = 64 * 1024;

void make_symlink(const std::string& target, const std::string& link) {
  REQUIRE(::symlink(target.c_str(), link.c_str()) == 0);
}

}  // namespace

TEST_CASE("requirements file: absent gives nullopt", "[requirements_file]") {
  testenv::TempDir dir;
  testenv::write_file(dir / "main.qmd", "# a document\n");
  testenv::write_file(dir / "sub/requirements.txt", "requests\n");  // not at the root
  auto r = read_requirements_file(dir.path(), kDefaultNames, kCap);
  REQUIRE(r.ok());
  CHECK_FALSE(r->has_value());
}

TEST_CASE("requirements file: requirements.txt is read when it is the only one",
          "[requirements_file]") {
  testenv::TempDir dir;
  testenv::write_file(dir / "requirements.txt", "requests\nnumpy\n");
  auto r = read_requirements_file(dir.path(), kDefaultNames, kCap);
  REQUIRE(r.ok());
  REQUIRE(r->has_value());
  CHECK((*r)->name == "requirements.txt");
  CHECK((*r)->text == "requests\nnumpy\n");
}

TEST_CASE("requirements file: the first present name wins", "[requirements_file]") {
  testenv::TempDir dir;
  testenv::write_file(dir / "requirements.txt", "from-txt\n");
  testenv::write_file(dir / "requirements.vrf", "from-vrf\n");
  auto r = read_requirements_file(dir.path(), kDefaultNames, kCap);
  REQUIRE(r.ok());
  REQUIRE(r->has_value());
  CHECK((*r)->name == "requirements.vrf");
  CHECK((*r)->text == "from-vrf\n");

  // The configured order decides, not the names.
  auto s = read_requirements_file(dir.path(), {"requirements.txt", "requirements.vrf"}, kCap);
  REQUIRE(s.ok());
  REQUIRE(s->has_value());
  CHECK((*s)->name == "requirements.txt");
  CHECK((*s)->text == "from-txt\n");

  // Names not present are skipped.
  auto t = read_requirements_file(dir.path(), {"nope.txt", "requirements.txt"}, kCap);
  REQUIRE(t.ok());
  REQUIRE(t->has_value());
  CHECK((*t)->name == "requirements.txt");
}

TEST_CASE("requirements file: an empty file is read as empty", "[requirements_file]") {
  testenv::TempDir dir;
  testenv::write_file(dir / "requirements.txt", "");
  auto r = read_requirements_file(dir.path(), kDefaultNames, kCap);
  REQUIRE(r.ok());
  REQUIRE(r->has_value());
  CHECK((*r)->text.empty());
}

TEST_CASE("requirements file: bytes are read verbatim, NULs included", "[requirements_file]") {
  testenv::TempDir dir;
  using namespace std::string_literals;
  std::string content = "requests\0-i http://evil\n\xff\xfe\r\n"s;
  testenv::write_file(dir / "requirements.txt", content);
  auto r = read_requirements_file(dir.path(), kDefaultNames, kCap);
  REQUIRE(r.ok());
  REQUIRE(r->has_value());
  CHECK((*r)->text == content);
}

TEST_CASE("requirements file: a symlink to a regular file is refused", "[requirements_file]") {
  testenv::TempDir dir;
  testenv::write_file(dir / "real.txt", "requests\n");
  make_symlink("real.txt", dir / "requirements.txt");
  auto r = read_requirements_file(dir.path(), kDefaultNames, kCap);
  REQUIRE_FALSE(r.ok());
  CHECK_THAT(r.error(), Catch::StartsWith("./requirements.txt: refused: "));
  CHECK_THAT(r.error(), Catch::Contains("symbolic link"));
}

TEST_CASE("requirements file: a symlink pointing outside the project is refused, unread",
          "[requirements_file]") {
  testenv::TempDir outside;
  testenv::TempDir dir;
  testenv::write_file(outside / "secret", "s3cr3t-token\n");
  for (std::string target : {outside / "secret", std::string("/etc/passwd"),
                             std::string("../../../../../../etc/passwd")}) {
    INFO("target: " << target);
    ::unlink((dir / "requirements.vrf").c_str());
    make_symlink(target, dir / "requirements.vrf");
    auto r = read_requirements_file(dir.path(), kDefaultNames, kCap);
    REQUIRE_FALSE(r.ok());
    CHECK_THAT(r.error(), Catch::StartsWith("./requirements.vrf: refused: "));
    CHECK_THAT(r.error(), Catch::Contains("symbolic link"));
    CHECK_THAT(r.error(), !Catch::Contains("s3cr3t"));
    CHECK_THAT(r.error(), !Catch::Contains("root:"));
  }
}

TEST_CASE("requirements file: a symlink refuses even when a later name is a regular file",
          "[requirements_file]") {
  // The first present name wins; a refused first file is not skipped over.
  testenv::TempDir dir;
  testenv::write_file(dir / "requirements.txt", "requests\n");
  make_symlink("requirements.txt", dir / "requirements.vrf");
  auto r = read_requirements_file(dir.path(), kDefaultNames, kCap);
  REQUIRE_FALSE(r.ok());
  CHECK_THAT(r.error(), Catch::StartsWith("./requirements.vrf: refused: "));
}

TEST_CASE("requirements file: dangling and looping symlinks are refused", "[requirements_file]") {
  testenv::TempDir dir;
  make_symlink("does-not-exist", dir / "requirements.txt");
  auto r = read_requirements_file(dir.path(), kDefaultNames, kCap);
  REQUIRE_FALSE(r.ok());
  CHECK_THAT(r.error(), Catch::Contains("symbolic link"));

  testenv::TempDir loop;
  make_symlink("requirements.txt", loop / "requirements.txt");
  auto s = read_requirements_file(loop.path(), kDefaultNames, kCap);
  REQUIRE_FALSE(s.ok());
  CHECK_THAT(s.error(), Catch::Contains("symbolic link"));
}

TEST_CASE("requirements file: a FIFO is refused without blocking", "[requirements_file]") {
  testenv::TempDir dir;
  std::string fifo = dir / "requirements.txt";
  REQUIRE(::mkfifo(fifo.c_str(), 0600) == 0);
  auto pending = std::async(
      std::launch::async, [&] { return read_requirements_file(dir.path(), kDefaultNames, kCap); });
  if (pending.wait_for(std::chrono::seconds(10)) != std::future_status::ready) {
    // Unblock the reader so the test can end, then fail.
    int fd = ::open(fifo.c_str(), O_WRONLY | O_NONBLOCK);
    if (fd >= 0) ::close(fd);
    pending.wait();
    FAIL("read_requirements_file blocked on a FIFO");
  }
  auto r = pending.get();
  REQUIRE_FALSE(r.ok());
  CHECK_THAT(r.error(), Catch::StartsWith("./requirements.txt: refused: "));
  CHECK_THAT(r.error(), Catch::Contains("named pipe"));
}

TEST_CASE("requirements file: a directory is refused", "[requirements_file]") {
  testenv::TempDir dir;
  testenv::write_file(dir / "requirements.txt/inner.txt", "requests\n");
  auto r = read_requirements_file(dir.path(), kDefaultNames, kCap);
  REQUIRE_FALSE(r.ok());
  CHECK_THAT(r.error(), Catch::StartsWith("./requirements.txt: refused: "));
  CHECK_THAT(r.error(), Catch::Contains("directory"));
}

TEST_CASE("requirements file: a socket is refused", "[requirements_file]") {
  testenv::TempDir dir;
  std::string path = dir / "requirements.txt";
  sockaddr_un addr{};
  addr.sun_family = AF_UNIX;
  if (path.size() >= sizeof(addr.sun_path)) return;  // TMPDIR too long for a socket path
  std::memcpy(addr.sun_path, path.c_str(), path.size() + 1);
  int s = ::socket(AF_UNIX, SOCK_STREAM, 0);
  REQUIRE(s >= 0);
  REQUIRE(::bind(s, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) == 0);
  auto r = read_requirements_file(dir.path(), kDefaultNames, kCap);
  ::close(s);
  REQUIRE_FALSE(r.ok());
  CHECK_THAT(r.error(), Catch::Contains("socket"));
}

TEST_CASE("requirements file: a file larger than the cap is refused", "[requirements_file]") {
  testenv::TempDir dir;
  testenv::write_file(dir / "requirements.txt", std::string(1001, 'a'));
  auto r = read_requirements_file(dir.path(), kDefaultNames, 1000);
  REQUIRE_FALSE(r.ok());
  CHECK_THAT(r.error(), Catch::StartsWith("./requirements.txt: refused: "));
  CHECK_THAT(r.error(), Catch::Contains("caps.max_requirements_bytes"));
  CHECK_THAT(r.error(), Catch::Contains("1000"));

  // Exactly at the cap is fine.
  testenv::write_file(dir / "requirements.txt", std::string(1000, 'a'));
  auto s = read_requirements_file(dir.path(), kDefaultNames, 1000);
  REQUIRE(s.ok());
  REQUIRE(s->has_value());
  CHECK((*s)->text.size() == 1000);
}

TEST_CASE("requirements file: a huge sparse file is refused without reading it",
          "[requirements_file]") {
  testenv::TempDir dir;
  std::string path = dir / "requirements.txt";
  int fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0600);
  REQUIRE(fd >= 0);
  REQUIRE(::ftruncate(fd, std::int64_t{8} << 30) == 0);  // 8 GiB of holes
  ::close(fd);
  auto start = std::chrono::steady_clock::now();
  auto r = read_requirements_file(dir.path(), kDefaultNames, kCap);
  CHECK(std::chrono::steady_clock::now() - start < std::chrono::seconds(5));
  REQUIRE_FALSE(r.ok());
  CHECK_THAT(r.error(), Catch::Contains("caps.max_requirements_bytes"));
}

TEST_CASE("requirements file: a very large configured cap does not allocate it",
          "[requirements_file]") {
  testenv::TempDir dir;
  testenv::write_file(dir / "requirements.txt", "requests\n");
  for (std::int64_t cap : {std::numeric_limits<std::int64_t>::max(), std::int64_t{1} << 40}) {
    auto r = read_requirements_file(dir.path(), kDefaultNames, cap);
    REQUIRE(r.ok());
    REQUIRE(r->has_value());
    CHECK((*r)->text == "requests\n");
  }
}

TEST_CASE("requirements file: a missing compile directory is an error", "[requirements_file]") {
  testenv::TempDir dir;
  auto r = read_requirements_file(dir / "missing", kDefaultNames, kCap);
  REQUIRE_FALSE(r.ok());
  CHECK_THAT(r.error(), Catch::Contains(dir / "missing"));
}

TEST_CASE("requirements file: an unreadable file is an error, not a silent skip",
          "[requirements_file]") {
  if (::geteuid() == 0) return;  // root reads anything
  testenv::TempDir dir;
  testenv::write_file(dir / "requirements.vrf", "requests\n");
  testenv::write_file(dir / "requirements.txt", "numpy\n");
  REQUIRE(::chmod((dir / "requirements.vrf").c_str(), 0) == 0);
  auto r = read_requirements_file(dir.path(), kDefaultNames, kCap);
  REQUIRE_FALSE(r.ok());
  CHECK_THAT(r.error(), Catch::StartsWith("./requirements.vrf: "));
}
