#include "admin_output.hpp"

#include <unistd.h>

#include <iostream>

#include "commands.hpp"
#include "lock.hpp"
#include "store_trust.hpp"

namespace clsi::venv::admin {

void say(std::string_view line) {
  std::cout << line << '\n' << std::flush;
}

void print_json(const Json& value) {
  std::cout << value.dump(2, ' ', false, Json::error_handler_t::replace) << '\n' << std::flush;
}

Json error_json(std::string_view command, std::string_view error) {
  return Json{{"command", command}, {"ok", false}, {"error", error}};
}

std::string iso_time(std::int64_t unix_seconds) {
  return format_utc(unix_seconds, "%Y-%m-%dT%H:%M:%SZ");
}

std::string state_of(const Store& store, const EnvInfo& env) {
  if (env.complete) return "complete";
  auto lock = KeyLock::open(store.lock_path(env.key), false);
  if (lock && !lock->try_lock(KeyLock::Mode::kExclusive)) return "building";
  return "unfinished";
}

void require_store_owner(const Store& store, const char* command) {
  auto owner = store_owner(store.root());
  if (!owner) throw NotDone(owner.error());
  if (*owner != ::geteuid()) {
    throw NotDone(std::string(command) + " changes the store, so it runs only as " +
                  "the store's owner (uid " + std::to_string(*owner) +
                  ", the build service's user), e.g. with sudo -u or setpriv");
  }
}

}  // namespace clsi::venv::admin
