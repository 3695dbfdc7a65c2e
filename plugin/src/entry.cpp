// The plugin's one exported symbol.
#include "clsi/plugin_glue.hpp"
#include "venv_plugin.hpp"

CLSI_DEFINE_PLUGIN_ENTRY(clsi::venv::VenvPlugin, "python-venv", "0.1.0")
