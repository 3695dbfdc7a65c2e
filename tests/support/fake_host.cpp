#include "fake_host.hpp"

#include <stdexcept>

namespace testenv {

FakeHost::FakeHost(const std::string& plugin_path) {
  std::string why;
  library_ = clsi::PluginLibrary::open(plugin_path, why);
  if (!library_) throw std::runtime_error(why);
  callbacks_ = {sizeof(clsi_host_callbacks_v1), this, &on_log, &on_set_env, &on_append};
}

FakeHost::~FakeHost() {
  instance_.reset();
}

bool FakeHost::create(const std::string& config_path, std::string* why) {
  std::string w;
  instance_.reset();
  auto inst = clsi::PluginInstance::create(*library_, &callbacks_,
                                           config_path.empty() ? nullptr : config_path.c_str(), w);
  if (inst) instance_.emplace(std::move(*inst));
  if (why) *why = w;
  return instance_.has_value();
}

clsi_compile_v1 FakeHost::facts(FakeCompile& c) const {
  return {sizeof(clsi_compile_v1), &c,
          c.project_id.c_str(),    c.user_id.c_str(),
          c.compile_dir.c_str(),   c.allow_python_install ? 1 : 0,
          c.time_left_ms};
}

clsi_status FakeHost::pre(FakeCompile& c) {
  auto f = facts(c);
  c.in_pre = true;
  c.pre_status = instance_->pre_compile(f, &c.compile_ptr);
  c.in_pre = false;
  return c.pre_status;
}

clsi_status FakeHost::post(FakeCompile& c, int exit_status, bool timed_out) {
  auto f = facts(c);
  clsi_compile_result_v1 r{sizeof(clsi_compile_result_v1), exit_status, timed_out ? 1 : 0, 10};
  return instance_->post_compile(f, c.compile_ptr, r);
}

std::vector<std::string> FakeHost::logs() const {
  std::lock_guard lock(mu_);
  return logs_;
}

void FakeHost::on_log(void* host_ptr, clsi_log_level level, const char* message) {
  auto* self = static_cast<FakeHost*>(host_ptr);
  std::lock_guard lock(self->mu_);
  self->logs_.push_back(std::to_string(level) + ": " + (message ? message : ""));
}

int FakeHost::on_set_env(void* compile_host_ptr, const char* name, const char* value) {
  auto* c = static_cast<FakeCompile*>(compile_host_ptr);
  std::lock_guard lock(c->mu);
  if (!c->in_pre) return -1;
  c->env[name] = value;
  return 0;
}

void FakeHost::on_append(void* compile_host_ptr, const char* text, size_t len) {
  auto* c = static_cast<FakeCompile*>(compile_host_ptr);
  std::lock_guard lock(c->mu);
  c->output.append(text, len);
}

}  // namespace testenv
