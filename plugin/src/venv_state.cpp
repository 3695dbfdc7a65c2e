#include "venv_state.hpp"

#include <sys/stat.h>
#include <yaml-cpp/yaml.h>

#include <optional>

#include "probe.hpp"
#include "store_trust.hpp"

namespace clsi::venv {
namespace {

// The requirement lines of a record that names `key`; a record that does not
// parse completely is no record.
std::optional<std::vector<std::string>> recorded_requirements(const std::string& text,
                                                              const std::string& key) {
  try {
    YAML::Node n = YAML::Load(text);
    if (!n.IsMap() || n["key"].as<std::string>("") != key || !n["requested"].IsSequence())
      return std::nullopt;
    std::vector<std::string> out;
    for (const auto& r : n["requested"])
      out.push_back(r.as<std::string>());
    return out;
  } catch (const YAML::Exception&) {
    return std::nullopt;
  }
}

}  // namespace

VenvCheck check_venv(const Store& store, uid_t owner, const std::string& key,
                     const std::vector<std::string>& requested, const std::string& base_python) {
  struct stat st {};
  const std::string record_path = store.record_path(key);
  if (::lstat(record_path.c_str(), &st) != 0) return {VenvState::kAbsent, "not built yet"};
  auto untrusted = [](std::string why) { return VenvCheck{VenvState::kUntrusted, std::move(why)}; };
  auto record = read_trusted_file(record_path, owner, 1 << 20);
  if (!record) return untrusted(record.error());
  auto recorded = recorded_requirements(*record, key);
  if (!recorded || *recorded != requested)
    return untrusted("its record does not name this key and these requirements");
  for (const auto& dir : {store.envs_dir(), store.env_dir(key)}) {
    if (::lstat(dir.c_str(), &st) != 0 || !S_ISDIR(st.st_mode) || !owned_and_private(st, owner))
      return untrusted(dir + " is not a directory only the store's owner can write");
  }
  auto base = identify_interpreter(base_python);
  std::string py = store.env_dir(key) + "/bin/python3";
  if (!base || ::stat(py.c_str(), &st) != 0 || st.st_dev != base->dev || st.st_ino != base->ino)
    return {VenvState::kUnhealthy, "its interpreter is no longer the base interpreter"};
  return {VenvState::kUsable, {}};
}

}  // namespace clsi::venv
