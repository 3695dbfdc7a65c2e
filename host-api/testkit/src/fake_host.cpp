#include "clsi/testkit/fake_host.hpp"

#include <chrono>
#include <stdexcept>
#include <utility>

namespace clsi::testkit {

std::optional<std::string> FakeCompile::command_env(const std::string& name) const {
  const std::string prefix = name + "=";
  for (const auto& kv : environment) {
    if (kv.compare(0, prefix.size(), prefix) == 0) return kv.substr(prefix.size());
  }
  return std::nullopt;
}

FakeHost::FakeHost(const std::string& plugin_path) : path_(plugin_path) {
  std::string why;
  if (!clsi::PluginLibrary::open(plugin_path, why)) throw std::runtime_error(why);
}

FakeHost::~FakeHost() {
  host_.reset();
}

bool FakeHost::create(const std::string& config_path, std::string* why) {
  std::string w;
  host_.reset();
  host_ = clsi::PluginHost::load(
      {{path_, config_path, false}},
      [this](std::string_view, clsi_log_level level, std::string_view, std::string_view message) {
        std::lock_guard lock(mu_);
        logs_.push_back(std::to_string(level) + ": " + std::string(message));
      },
      w);
  if (why) *why = w;
  return host_ != nullptr;
}

clsi_status FakeHost::pre(FakeCompile& c) {
  if (!host_) throw std::logic_error("FakeHost::pre before a successful create()");
  clsi::CompileRequest r;
  r.project_id = c.project_id;
  r.user_id = c.user_id;
  r.compile_dir = c.compile_dir;
  r.permissions = c.permissions;
  if (c.allow_python_install) r.permissions.emplace_back(CLSI_PERMISSION_PYTHON_INSTALL);
  if (c.time_left_ms >= 0)
    r.deadline = std::chrono::steady_clock::now() + std::chrono::milliseconds(c.time_left_ms);
  r.base_env = c.base_env;
  c.compile = std::make_unique<clsi::HostCompile>(*host_, std::move(r),
                                                  [&c](std::string_view, std::string_view line) {
                                                    std::lock_guard lock(c.mu);
                                                    c.output.append(line);
                                                    c.output.push_back('\n');
                                                  });
  auto result = c.compile->pre_compile();
  c.pre_status = result.statuses.empty() ? CLSI_STATUS_NOTHING_TO_DO : result.statuses.back();
  c.changes = c.compile->env_changes();
  c.environment = c.compile->environment();
  c.env.clear();
  for (const auto& ch : c.changes) {
    if (auto value = c.command_env(ch.name)) c.env[ch.name] = *value;
  }
  return c.pre_status;
}

clsi_status FakeHost::post(FakeCompile& c, int exit_status, bool timed_out) {
  if (!c.compile) return CLSI_STATUS_ERROR;
  auto statuses = c.compile->post_compile({exit_status, timed_out, 10});
  c.post_status = statuses.empty() ? CLSI_STATUS_ERROR : statuses.front();
  return c.post_status;
}

std::vector<std::string> FakeHost::logs() const {
  std::lock_guard lock(mu_);
  return logs_;
}

}  // namespace clsi::testkit
