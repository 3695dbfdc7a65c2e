// The test kit's fake host: drives a plugin library through the real C ABI
// with the per-compile rules every host shares (clsi::PluginHost and
// clsi::HostCompile), without running any command, and records what the
// plugin does: its environment adjustments, its output.log lines, its
// statuses and its operator log. No test framework is assumed.
//
//   clsi::testkit::FakeHost host("/path/to/my_plugin.so");  // throws if not a plugin
//   REQUIRE(host.create("my-plugin.conf"));                 // on_create ("": no config)
//   clsi::testkit::FakeCompile c;
//   c.compile_dir = dir.path();
//   c.base_env = {"PATH=/usr/bin:/bin"};
//   REQUIRE(host.pre(c) == CLSI_STATUS_OK);                 // on_pre_compile
//   CHECK(c.env["PATH"] == ...);                            // what the command would get
//   host.post(c, 0);                                        // on_post_compile
//
// Part of the installed SDK: find_package(clsi CONFIG) and link clsi::testkit.
#pragma once

#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <vector>

#include "clsi/plugin_host.hpp"

namespace clsi::testkit {

// One compile: fill in the facts, pass it to FakeHost::pre, then post.
struct FakeCompile {
  std::string compile_dir;  // absolute
  std::string project_id = "project-1";
  std::string user_id = "user-1";
  // The python.install permission (CLSI_PERMISSION_PYTHON_INSTALL). Default
  // deny, as in every host: a test grants it, or lists it in permissions.
  bool allow_python_install = false;
  std::vector<std::string> permissions;  // the names the web tier granted
  long long time_left_ms = -1;           // -1: no deadline
  std::vector<std::string> base_env;     // NAME=VALUE the command gets before plugins

  // Recorded by FakeHost::pre (and, for output, post).
  std::map<std::string, std::string> env;  // each variable a plugin changed: its final value
  std::vector<clsi::EnvChange> changes;    // every adjustment, in order, with its plugin
  std::vector<std::string> environment;    // the command's whole environment (NAME=VALUE)
  std::string output;                      // the plugin's output.log lines, each ending in '\n'
  clsi_status pre_status = CLSI_STATUS_ERROR;
  clsi_status post_status = CLSI_STATUS_ERROR;
  std::unique_ptr<clsi::HostCompile> compile;  // the host's side, after pre()
  std::mutex mu;                               // guards output

  // The command's value of NAME after pre(); nullopt when unset.
  [[nodiscard]] std::optional<std::string> command_env(const std::string& name) const;
};

class FakeHost {
 public:
  // Opens the library and checks it as every host does; throws
  // std::runtime_error with the host's sentence when it is not a plugin.
  explicit FakeHost(const std::string& plugin_path);
  ~FakeHost();
  FakeHost(const FakeHost&) = delete;
  FakeHost& operator=(const FakeHost&) = delete;

  // on_create with config_path ("" passes NULL); false with `why` on
  // refusal. A second call destroys the first instance and creates anew.
  bool create(const std::string& config_path, std::string* why = nullptr);
  // on_pre_compile; returns its status and records into `c`.
  clsi_status pre(FakeCompile& c);
  // on_post_compile with the command's result; CLSI_STATUS_ERROR when pre()
  // never ran for `c`.
  clsi_status post(FakeCompile& c, int exit_status = 0, bool timed_out = false);
  // Everything the plugin wrote to the operator's log ("LEVEL: message",
  // LEVEL being the clsi_log_level number).
  [[nodiscard]] std::vector<std::string> logs() const;

 private:
  std::string path_;
  std::unique_ptr<clsi::PluginHost> host_;
  mutable std::mutex mu_;
  std::vector<std::string> logs_;
};

}  // namespace clsi::testkit
