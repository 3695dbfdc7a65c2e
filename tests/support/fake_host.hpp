// A fake host for plugin tests: drives a plugin library through the real C
// ABI with the same per-compile rules as every host (clsi::PluginHost and
// clsi::HostCompile), recording what the plugin does.
#pragma once

#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <vector>

#include "clsi/plugin_host.hpp"

namespace testenv {

struct FakeCompile {
  std::string compile_dir;
  std::string project_id = "project-1";
  std::string user_id = "user-1";
  bool allow_python_install = true;      // the python.install permission
  std::vector<std::string> permissions;  // more permissions
  long long time_left_ms = -1;
  std::vector<std::string> base_env;  // NAME=VALUE the command would get

  // Recorded.
  std::map<std::string, std::string> env;  // what the plugins set (final values)
  std::vector<clsi::EnvChange> changes;
  std::string output;  // the plugins' lines, each ending in '\n'
  clsi_status pre_status = CLSI_STATUS_ERROR;
  std::unique_ptr<clsi::HostCompile> compile;
  std::mutex mu;
};

class FakeHost {
 public:
  explicit FakeHost(const std::string& plugin_path);
  ~FakeHost();

  // on_create; false with `why` on refusal.
  bool create(const std::string& config_path, std::string* why = nullptr);
  clsi_status pre(FakeCompile& c);
  clsi_status post(FakeCompile& c, int exit_status = 0, bool timed_out = false);
  // Everything the plugin wrote to the operator's log ("LEVEL: message").
  std::vector<std::string> logs() const;

 private:
  std::string path_;
  std::unique_ptr<clsi::PluginHost> host_;
  mutable std::mutex mu_;
  std::vector<std::string> logs_;
};

}  // namespace testenv
