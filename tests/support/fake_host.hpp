// The fake host of the project's tests is the SDK's test kit
// (host-api/testkit, installed as clsi/testkit/fake_host.hpp), under the
// names the tests have always used. One difference: the kit denies
// python.install by default, as every host does; these tests grant it.
#pragma once

#include "clsi/testkit/fake_host.hpp"

namespace testenv {

struct FakeCompile : clsi::testkit::FakeCompile {
  FakeCompile() { allow_python_install = true; }
};

using clsi::testkit::FakeHost;

}  // namespace testenv
