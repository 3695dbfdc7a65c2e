// What the commands of clsi-venvs share: output (text and JSON) and the
// checks before a change to the store.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

#include <nlohmann/json.hpp>

#include "eviction.hpp"
#include "store.hpp"

namespace clsi::venv::admin {

// Insertion order kept: "key" first, as people read it.
using Json = nlohmann::ordered_json;

// A line on stdout, flushed (a pipe reader sees it at once).
void say(std::string_view line);
// `value` on stdout, indented, then a newline. Text that is not UTF-8 (from
// the store's records) is replaced, never thrown on.
void print_json(const Json& value);
// The JSON the commands print when something asked for did not happen.
Json error_json(std::string_view command, std::string_view error);

// 2025-01-31T12:00:00Z; "-" for 0.
std::string iso_time(std::int64_t unix_seconds);

// complete, building (its exclusive lock is held) or unfinished (a leftover).
std::string state_of(const Store& store, const EnvInfo& env);

// Changes to the store are its owner's: run as anyone else, gc or remove
// could leave files the service cannot use (or refuse to start on). Throws
// NotDone otherwise.
void require_store_owner(const Store& store, const char* command);

}  // namespace clsi::venv::admin
