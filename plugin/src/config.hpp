// plugin.yaml, section python_venv: every key, its default, and the
// environment variables that override it.
#pragma once

#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "expected.hpp"

namespace clsi::venv {

struct Caps {
  int install_timeout_s = 600;      // the whole build: venv + pip
  std::int64_t max_venv_mb = 2048;  // one venv on disk
  int max_packages = 100;           // distributions installed, dependencies included
  std::int64_t max_requirements_bytes = std::int64_t{64} * 1024;  // size of the requirements file
  int max_requirement_lines = 200;      // requirement lines (comments and blanks excluded)
  std::int64_t max_venv_files = 50000;  // files, directories and links in one venv
};

struct Eviction {
  std::int64_t max_total_mb = 51200;  // budget of the whole store: venvs, pip cache, logs, ...
  bool gc_after_build = true;         // evict after a build when over budget
  int gc_interval_s = 3600;           // the service's scheduled eviction
  // Before a build the service makes room, or refuses the build, when the
  // store's volume has less free space than this (0: no check).
  std::int64_t min_free_mb = 1024;
  // Venvs not used for this long are evicted whatever the budget (0: never).
  std::int64_t unused_for_s = 0;
  // pip's download cache is pruned, oldest files first, down to this.
  std::int64_t max_pip_cache_mb = 5120;
};

// The build service, `clsi-venvs serve`: the store's only writer.
struct Service {
  std::string socket = "/run/clsi-venvs/socket";
  std::vector<std::uint32_t> allowed_uids;  // peers that may connect (SO_PEERCRED),
  std::vector<std::uint32_t> allowed_gids;  // besides the service's own uid
  int max_parallel_builds = 2;
  // The group of the compile hosts. When set (>= 0), locks/ and the lock
  // files are readable by it alone: only compile hosts can hold a lease, so a
  // render cannot pin a venv against eviction and rebuilds. -1: anyone who
  // can read the store can (docs/security.md).
  std::int64_t lease_gid = -1;
  // How long a compile host waits to connect before saying the service is down.
  int connect_timeout_ms = 2000;
  // Prometheus metrics: GET /metrics on this address ("off": none), and/or
  // the same text written to this file every metrics_interval_s ("": none).
  std::string metrics_address = "127.0.0.1:9477";
  std::string metrics_textfile;
  int metrics_interval_s = 30;
  // A pip started ahead, with its modules imported, waits for the next
  // build's resolve (pip_spare.hpp): about 50 MB held while it waits.
  bool prestart_pip = true;
};

struct Config {
  bool enabled = false;
  std::string venvs_dir = "/var/lib/overleaf/data/python-venvs";
  std::string base_python = "/usr/bin/python3";
  std::vector<std::string> requirements_files = {"requirements.vrf", "requirements.txt"};
  std::string index_url = "https://pypi.org/simple";
  bool only_binary = true;
  bool require_hashes = false;
  // Seconds the compile keeps for the render after a build; the build gets
  // the rest of the compile's time (within caps.install_timeout_s).
  int render_reserve_s = 30;
  // A failed build of a key is not retried for this long (0: always retry).
  int retry_failed_after_s = 120;
  // Kept so existing files still load; it has no effect: builds happen only
  // in the build service (Service).
  std::string builder = "auto";
  Caps caps;
  Eviction eviction;
  Service service;
  std::string source;  // the file it was read from, for messages
  std::string path;    // its absolute path; "" for built-in defaults
};

// Looks up an environment variable; nullptr when unset. A seam for tests.
using GetEnv = std::function<const char*(const char*)>;

// Reads `path` (nullptr or "": defaults only), then applies
// OVERLEAF_ENABLE_PROJECT_PYTHON_VENV and PYTHON_VENVS_DIR. Unknown keys and
// values of the wrong type are errors naming the key and the file; a file
// that cannot be read says why (missing, a directory, permissions); a file
// with sections but none named python_venv is an error naming the sections
// it has (and the one that looks like a typo of python_venv); an invalid
// override names the variable. An empty file, or an empty or null
// python_venv section, gives the defaults.
Expected<Config> load_config(const char* path, const GetEnv& getenv);

}  // namespace clsi::venv
