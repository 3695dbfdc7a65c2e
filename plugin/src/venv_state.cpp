#include "venv_state.hpp"

#include <sys/stat.h>

#include "kernelspec.hpp"
#include "key.hpp"
#include "store_trust.hpp"

namespace clsi::venv {

VenvCheck check_venv(const Store& store, uid_t owner, const std::string& key,
                     const std::vector<std::string>& requested) {
  struct stat st {};
  const std::string record_path = store.record_path(key);
  if (::lstat(record_path.c_str(), &st) != 0) return {VenvState::kAbsent, "not built yet"};
  auto untrusted = [](std::string why) { return VenvCheck{VenvState::kUntrusted, std::move(why)}; };
  auto record = read_trusted_file(record_path, owner, 1 << 20);
  if (!record) return untrusted(record.error());
  auto recorded = parse_record(*record);
  if (!recorded || recorded->key != key || recorded->requested != requested ||
      recorded->interpreter_ino == 0)
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
  if (::stat(py.c_str(), &st) != 0 || st.st_dev != recorded->interpreter_dev ||
      st.st_ino != recorded->interpreter_ino)
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
