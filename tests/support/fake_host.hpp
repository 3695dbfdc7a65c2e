// A fake host: a filled-in callback table that records what the plugin does,
// driving a plugin library through the real C ABI.
#pragma once

#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <vector>

#include "clsi/plugin_loader.hpp"

namespace testenv {

struct FakeCompile {
  std::string compile_dir;
  std::string project_id = "project-1";
  std::string user_id = "user-1";
  bool allow_python_install = true;
  long long time_left_ms = -1;

  // Recorded.
  std::map<std::string, std::string> env;
  std::string output;
  bool in_pre = false;
  void* compile_ptr = nullptr;
  clsi_status pre_status = CLSI_STATUS_ERROR;
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
  // Everything the plugin wrote to the operator's log.
  std::vector<std::string> logs() const;

 private:
  static void on_log(void* host_ptr, clsi_log_level level, const char* message);
  static int on_set_env(void* compile_host_ptr, const char* name, const char* value);
  static void on_append(void* compile_host_ptr, const char* text, size_t len);
  clsi_compile_v1 facts(FakeCompile& c) const;

  std::optional<clsi::PluginLibrary> library_;
  std::optional<clsi::PluginInstance> instance_;
  clsi_host_callbacks_v1 callbacks_{};
  mutable std::mutex mu_;
  std::vector<std::string> logs_;
};

}  // namespace testenv
