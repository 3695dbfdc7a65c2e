// clsi-venvs remove: one venv, by its key or a unique prefix of it; never
// one in use by a compile or being built.
#include "admin_output.hpp"
#include "commands.hpp"
#include "key.hpp"
#include "lock.hpp"

namespace clsi::venv::admin {
namespace {

// A full key or a unique prefix of one.
std::string resolve_key(const Store& store, const std::string& prefix) {
  std::vector<std::string> matches;
  for (const auto& k : store.keys()) {
    if (k.compare(0, prefix.size(), prefix) == 0) matches.push_back(k);
  }
  if (matches.size() == 1) return matches[0];
  if (matches.empty()) throw NotDone("no environment " + prefix + " in " + store.envs_dir());
  throw NotDone(prefix + " matches " + std::to_string(matches.size()) +
                " environments; give more of the key");
}

}  // namespace

int remove(const Config& config, const Common& common, const std::string& key_or_prefix) {
  if (key_or_prefix.empty()) throw NotDone("an empty KEY matches every environment; give a key");
  Store store(config.venvs_dir);
  require_store_owner(store, "remove");
  const std::string key = resolve_key(store, key_or_prefix);
  auto lock = KeyLock::open(store.lock_path(key), true);
  if (!lock) throw NotDone(lock.error());
  if (!lock->try_lock(KeyLock::Mode::kExclusive)) {
    throw NotDone("environment " + short_key(key) +
                  " is in use by a compile or being built; not removed");
  }
  if (auto r = store.remove_env(key); !r) throw NotDone(r.error());
  store.forget_failure(key);
  store.append_event("evict", key);
  if (common.json) {
    print_json({{"command", "remove"}, {"ok", true}, {"removed", key}});
  } else {
    say("removed " + key);
  }
  return kExitDone;
}

}  // namespace clsi::venv::admin
