#include "venv_state.hpp"

#include <sys/stat.h>
#include <yaml-cpp/yaml.h>

#include <optional>

#include "kernelspec.hpp"
#include "key.hpp"
#include "store_trust.hpp"

namespace clsi::venv {
namespace {

// What a record that names `key` says about its venv; a record that does not
// parse completely is no record.
struct Recorded {
  std::vector<std::string> requested;
  std::uint64_t dev = 0, ino = 0;  // what bin/python3 resolved to at build time
};

std::optional<Recorded> read_recorded(const std::string& text, const std::string& key) {
  try {
    YAML::Node n = YAML::Load(text);
    if (!n.IsMap() || n["key"].as<std::string>("") != key || !n["requested"].IsSequence())
      return std::nullopt;
    Recorded r;
    for (const auto& q : n["requested"])
      r.requested.push_back(q.as<std::string>());
    r.dev = n["interpreter_dev"].as<std::uint64_t>(0);
    r.ino = n["interpreter_ino"].as<std::uint64_t>(0);
    if (r.ino == 0) return std::nullopt;
    return r;
  } catch (const YAML::Exception&) {
    return std::nullopt;
  }
}

}  // namespace

VenvCheck check_venv(const Store& store, uid_t owner, const std::string& key,
                     const std::vector<std::string>& requested) {
  struct stat st {};
  const std::string record_path = store.record_path(key);
  if (::lstat(record_path.c_str(), &st) != 0) return {VenvState::kAbsent, "not built yet"};
  auto untrusted = [](std::string why) { return VenvCheck{VenvState::kUntrusted, std::move(why)}; };
  auto record = read_trusted_file(record_path, owner, 1 << 20);
  if (!record) return untrusted(record.error());
  auto recorded = read_recorded(*record, key);
  if (!recorded || recorded->requested != requested)
    return untrusted("its record does not name this key and these requirements");
  for (const auto& dir : {store.envs_dir(), store.env_dir(key)}) {
    if (::lstat(dir.c_str(), &st) != 0 || !S_ISDIR(st.st_mode) || !owned_and_private(st, owner))
      return untrusted(dir + " is not a directory only the store's owner can write");
  }
  // Healthy: bin/python3 still resolves to the very file it did when the
  // venv was made. Replacing the interpreter in place (an image upgrade, a
  // package update) gives it a new inode; a wrapper or shim as base_python
  // does not matter, as the venv links the real interpreter.
  std::string py = store.env_dir(key) + "/bin/python3";
  if (::stat(py.c_str(), &st) != 0 || st.st_dev != recorded->dev || st.st_ino != recorded->ino)
    return {VenvState::kUnhealthy, "its interpreter is no longer the one it was made with"};
  // Jupyter starts the cells' kernel from this spec: one that is gone or
  // changed would run them elsewhere (the base interpreter, without the
  // packages), so it must be exactly what the service wrote.
  const std::string venv = store.env_dir(key);
  auto spec = read_trusted_file(kernelspec_path(venv), owner, std::size_t{64} * 1024);
  if (!spec || *spec != kernelspec_json(venv, kernel_display_name(short_key(key))))
    return {VenvState::kUnhealthy, "its kernelspec is missing or is not the one it was made with"};
  return {VenvState::kUsable, {}};
}

}  // namespace clsi::venv
