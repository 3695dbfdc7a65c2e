'use strict';
// What the tests share: where the build tree is, and a "world" of a package
// index (built by examples/tools/mkindex.py, no network), a venv store, the
// build service `clsi-venvs serve` for it, and projects.
//
// CLSI_BUILD_DIR picks the build tree (default: <repo>/build); the addon is
// taken from its lib/ unless CLSI_NODE_ADDON says otherwise.

const assert = require('node:assert/strict');
const { spawn, spawnSync } = require('node:child_process');
const fs = require('node:fs');
const net = require('node:net');
const os = require('node:os');
const path = require('node:path');

const root = path.resolve(__dirname, '..', '..');
const buildDir = path.resolve(process.env.CLSI_BUILD_DIR || path.join(root, 'build'));
if (!process.env.CLSI_NODE_ADDON) process.env.CLSI_NODE_ADDON = path.join(buildDir, 'lib');

// The plugin reads these from the process environment: the tests decide.
for (const v of ['PYTHON_VENVS_DIR', 'OVERLEAF_ENABLE_PROJECT_PYTHON_VENV', 'QUARTO_PYTHON']) {
  delete process.env[v];
}

const paths = {
  root,
  buildDir,
  plugin: path.join(buildDir, 'lib', 'clsi_python_venv.so'),
  venvsCommand: path.join(buildDir, 'bin', 'clsi-venvs'),
  runner: path.join(buildDir, 'bin', 'clsi-runner'),
  fixture: (name) => path.join(buildDir, 'lib', 'fixtures', `fixture_${name}.so`),
};

const { PluginHost, PYTHON_INSTALL } = require('..');

// Packages no test machine has seen: alpha depends on beta; gamma and delta
// stand alone.
const PACKAGES = [
  {
    name: 'alpha',
    version: '1.0',
    requires: ['beta>=2'],
    files: { 'alpha/__init__.py': "import beta\nMESSAGE = 'alpha ' + beta.VERSION\n" },
  },
  { name: 'beta', version: '2.1', files: { 'beta/__init__.py': "VERSION = '2.1'\n" } },
  { name: 'gamma', version: '0.3', files: { 'gamma/__init__.py': "MESSAGE = 'gamma here'\n" } },
  { name: 'delta', version: '4.0', files: { 'delta/__init__.py': "MESSAGE = 'delta here'\n" } },
];

function tempDir(prefix = 'clsi-node-test-') {
  return fs.mkdtempSync(path.join(process.env.TMPDIR || os.tmpdir(), prefix));
}

function removeDir(dir) {
  if (process.env.CLSI_KEEP_TEST_DIRS) return;
  fs.rmSync(dir, { recursive: true, force: true });
}

function canConnect(socket) {
  return new Promise((resolve) => {
    const c = net.connect(socket);
    c.once('connect', () => {
      c.destroy();
      resolve(true);
    });
    c.once('error', () => resolve(false));
  });
}

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

class World {
  constructor(packages = PACKAGES) {
    this.tmp = tempDir();
    this.index = path.join(this.tmp, 'index');
    this.venvs = path.join(this.tmp, 'venvs');
    this.config = path.join(this.tmp, 'plugin.yaml');
    this.socket = path.join(this.tmp, 'service.sock');
    this.serviceLog = path.join(this.tmp, 'service.log');
    this.projects = 0;
    const spec = path.join(this.tmp, 'index.spec.json');
    fs.writeFileSync(spec, JSON.stringify(packages));
    const r = spawnSync('/usr/bin/python3', [path.join(root, 'examples/tools/mkindex.py'), this.index, '--spec', spec], {
      encoding: 'utf8',
    });
    assert.equal(r.status, 0, `mkindex.py failed: ${r.stdout}${r.stderr}`);
  }

  // A plugin.yaml for this world's store, index and service; `lines` are
  // more keys of python_venv: (e.g. 'enabled: false').
  writeConfig(file = this.config, lines = []) {
    const body = [];
    if (!lines.some((l) => l.startsWith('enabled:'))) body.push('enabled: true');
    body.push(`venvs_dir: ${this.venvs}`, `index_url: file://${this.index}/simple/`);
    body.push('service:', `  socket: ${this.socket}`, '  max_parallel_builds: 2');
    body.push(...lines);
    fs.writeFileSync(file, `python_venv:\n${body.map((l) => `  ${l}`).join('\n')}\n`);
    return file;
  }

  async startService() {
    this.writeConfig();
    const log = fs.openSync(this.serviceLog, 'a');
    this.service = spawn(paths.venvsCommand, ['serve', '--config', this.config], {
      stdio: ['ignore', log, log],
      detached: true, // a process group of its own, as the C++ tests start it
    });
    fs.closeSync(log);
    const exited = new Promise((resolve) => this.service.once('exit', resolve));
    this.serviceExited = exited;
    const until = Date.now() + 15000;
    for (;;) {
      if (await canConnect(this.socket)) return;
      if (this.service.exitCode !== null || Date.now() > until) {
        throw new Error(`clsi-venvs serve did not start: ${fs.readFileSync(this.serviceLog, 'utf8')}`);
      }
      await sleep(20);
    }
  }

  async stopService() {
    if (!this.service || this.service.exitCode !== null) return;
    try {
      process.kill(-this.service.pid, 'SIGTERM');
    } catch {
      return;
    }
    const killed = await Promise.race([this.serviceExited.then(() => false), sleep(10000).then(() => true)]);
    if (killed) {
      try {
        process.kill(-this.service.pid, 'SIGKILL');
      } catch {}
      await this.serviceExited;
    }
  }

  project(requirements, fileName = 'requirements.txt') {
    const dir = path.join(this.tmp, `project-${++this.projects}`);
    fs.mkdirSync(dir);
    if (requirements !== null) fs.writeFileSync(path.join(dir, fileName), requirements);
    return dir;
  }

  envDirs() {
    const dir = path.join(this.venvs, 'envs');
    if (!fs.existsSync(dir)) return [];
    return fs.readdirSync(dir).filter((e) => !e.includes('.'));
  }

  async dispose() {
    await this.stopService();
    removeDir(this.tmp);
  }
}

// Runs python code the way a render would: $QUARTO_PYTHON (else the base
// interpreter) with the compile's environment.
function renderPython(env, code, cwd) {
  const python = env.QUARTO_PYTHON || '/usr/bin/python3';
  return spawnSync(python, ['-c', code], { env, cwd, encoding: 'utf8' });
}

module.exports = { paths, World, PluginHost, PYTHON_INSTALL, tempDir, removeDir, renderPython, sleep };
