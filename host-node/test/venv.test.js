'use strict';
// A real compile driven from Node: the addon, the python-venv plugin, the
// build service and a local package index built by the test.

const assert = require('node:assert/strict');
const fs = require('node:fs');
const path = require('node:path');
const { test, before, after } = require('node:test');
const { monitorEventLoopDelay } = require('node:perf_hooks');

const { paths, World, PluginHost, PYTHON_INSTALL, renderPython } = require('../test-helpers/world');

let world;
let host;
const logs = [];

before(async () => {
  world = new World();
  await world.startService();
  host = await PluginHost.load([{ path: paths.plugin, config: world.config }], { log: (e) => logs.push(e) });
});

after(async () => {
  if (host) await host.close({ force: true }).catch(() => {});
  if (world) await world.dispose();
});

function request(dir, extra = {}) {
  return {
    projectId: path.basename(dir),
    userId: 'owner',
    compileDir: dir,
    permissions: [PYTHON_INSTALL],
    timeoutMs: 240000,
    ...extra,
  };
}

test('the first compile builds, off the event loop; the render imports the package', async (t) => {
  assert.deepEqual(host.plugins, ['python-venv']);
  const dir = world.project('# analysis deps\nalpha==1.0\n');
  const streamed = [];
  let settled = false;

  // The event loop's delay while the build runs: a timer that should fire
  // every 10 ms, and perf_hooks' histogram of how late the loop was.
  const h = monitorEventLoopDelay({ resolution: 10 });
  let ticks = 0;
  const ticker = setInterval(() => ticks++, 10);
  h.enable();
  const started = Date.now();
  const pending = host.preCompile(
    request(dir, {
      onLine: (plugin, line) => {
        assert.equal(settled, false, 'a line arrived after preCompile settled');
        streamed.push([plugin, line]);
      },
    }),
  );
  const c = await pending;
  settled = true;
  const elapsed = Date.now() - started;
  h.disable();
  clearInterval(ticker);
  const maxMs = h.max / 1e6;
  const figure =
    `event loop delay during a cold build of ${elapsed} ms: ` +
    `max ${maxMs.toFixed(1)} ms, p99 ${(h.percentile(99) / 1e6).toFixed(1)} ms, ` +
    `mean ${(h.mean / 1e6).toFixed(1)} ms (sampled every 10 ms, which the figures include); ` +
    `${ticks} ticks of a 10 ms timer`;
  t.diagnostic(figure);

  try {
    assert.equal(c.status, 'ok', c.lines.join('\n'));
    assert.equal(c.failedPlugin, null);
    assert.deepEqual(c.plugins, [{ name: 'python-venv', status: 'ok' }]);
    assert.ok(c.env.QUARTO_PYTHON.startsWith(path.join(world.venvs, 'envs') + '/'), c.env.QUARTO_PYTHON);
    assert.ok(c.env.JUPYTER_PATH.startsWith(path.join(world.venvs, 'envs') + '/'), c.env.JUPYTER_PATH);
    assert.equal(c.env.PATH, process.env.PATH, 'the base environment is process.env by default');
    const names = c.changes.map((ch) => `${ch.op} ${ch.name} by ${ch.plugin}`).sort();
    assert.deepEqual(names, ['prepend JUPYTER_PATH by python-venv', 'set QUARTO_PYTHON by python-venv']);
    const text = c.lines.join('\n');
    assert.match(text, /no environment for \.\/requirements\.txt yet; asking the build service/);
    assert.match(text, /is ready/);
    // Every line went through onLine as well, before the promise settled.
    assert.deepEqual(
      streamed.map(([, l]) => l),
      c.lines,
    );
    assert.ok(streamed.every(([p]) => p === 'python-venv'));
    assert.ok(ticks > elapsed / 40, `the timer fired only ${ticks} times in ${elapsed} ms`);
    assert.ok(maxMs < 500, `the event loop was blocked for ${maxMs} ms`);

    const r = renderPython(c.env, "import alpha, sys; print('RENDER', alpha.MESSAGE, sys.prefix)", dir);
    assert.equal(r.status, 0, r.stderr);
    assert.match(r.stdout, /RENDER alpha 2\.1 /);
    assert.ok(r.stdout.includes(path.join(world.venvs, 'envs')), r.stdout);
  } finally {
    await c.postCompile({ exitCode: 0, durationMs: 10 });
  }
  assert.equal(world.envDirs().length, 1);
});

test('the second compile of the same requirements reuses the environment', async () => {
  const dir = world.project('ALPHA == 1.0  # the same set\n');
  const c = await host.preCompile(request(dir));
  try {
    assert.equal(c.status, 'ok');
    assert.match(c.lines.join('\n'), /reusing environment [0-9a-f]+ for \.\/requirements\.txt/);
    assert.ok(c.env.QUARTO_PYTHON.startsWith(world.venvs));
    const r = renderPython(c.env, "import alpha; print('RENDER', alpha.MESSAGE)", dir);
    assert.equal(r.status, 0, r.stderr);
    assert.match(r.stdout, /RENDER alpha 2\.1/);
  } finally {
    await c.postCompile({ exitCode: 0 });
  }
  assert.equal(world.envDirs().length, 1);
});

test('a user without python.install is gated: the render falls back, the lines say why', async () => {
  const dir = world.project('gamma\n');
  const c = await host.preCompile(request(dir, { userId: 'anonymous', permissions: [] }));
  try {
    assert.equal(c.status, 'ok', 'falling back never fails the compile');
    assert.deepEqual(c.plugins, [{ name: 'python-venv', status: 'fell-back' }]);
    const text = c.lines.join('\n');
    assert.match(text, /may not install Python packages/);
    assert.match(text, /the render runs on the base interpreter/);
    assert.equal(c.env.QUARTO_PYTHON, undefined);
    assert.deepEqual(c.changes, []);
  } finally {
    await c.postCompile({ exitCode: 0 });
  }
  assert.equal(world.envDirs().length, 1, 'nothing was built for the gated user');
});

test('a project without a requirements file: nothing to do', async () => {
  const dir = world.project(null);
  const c = await host.preCompile(request(dir, { baseEnv: { PATH: '/usr/bin:/bin', HOME: '/nonexistent' } }));
  await c.postCompile();
  assert.deepEqual(c.plugins, [{ name: 'python-venv', status: 'nothing-to-do' }]);
  assert.deepEqual(c.env, { PATH: '/usr/bin:/bin', HOME: '/nonexistent' });
  assert.deepEqual(c.lines, []);
});

test('the plugin switched off in its configuration: nothing to do, the environment unchanged', async () => {
  const config = world.writeConfig(path.join(world.tmp, 'disabled.yaml'), ['enabled: false']);
  const off = await PluginHost.load([{ path: paths.plugin, config }], { log: () => {} });
  try {
    const dir = world.project('alpha==1.0\n');
    const base = { PATH: '/usr/bin:/bin', JUPYTER_PATH: '/srv/jupyter' };
    const c = await off.preCompile(request(dir, { baseEnv: base }));
    await c.postCompile({ exitCode: 0 });
    assert.equal(c.status, 'ok');
    assert.deepEqual(c.plugins, [{ name: 'python-venv', status: 'nothing-to-do' }]);
    assert.deepEqual(c.env, base);
    assert.deepEqual(c.changes, []);
    assert.deepEqual(c.lines, []);
  } finally {
    await off.close();
  }
});

test('JUPYTER_PATH of the base environment is kept behind the venv', async () => {
  const dir = world.project('alpha==1.0\n');
  const c = await host.preCompile(request(dir, { baseEnv: { ...process.env, JUPYTER_PATH: '/srv/jupyter' } }));
  await c.postCompile({ exitCode: 0 });
  assert.match(c.env.JUPYTER_PATH, /^\/.+:\/srv\/jupyter$/);
});

test('the build service unreachable on a new set: falls back and says so', async () => {
  const config = world.writeConfig(path.join(world.tmp, 'nosocket.yaml'), []);
  fs.writeFileSync(config, fs.readFileSync(config, 'utf8').replace(world.socket, path.join(world.tmp, 'nobody.sock')));
  const lonely = await PluginHost.load([{ path: paths.plugin, config }], { log: () => {} });
  try {
    const c = await lonely.preCompile(request(world.project('delta\n')));
    await c.postCompile({ exitCode: 0 });
    assert.equal(c.status, 'ok');
    assert.deepEqual(c.plugins, [{ name: 'python-venv', status: 'fell-back' }]);
    assert.match(c.lines.join('\n'), /the build service is unavailable/);
    assert.equal(c.env.QUARTO_PYTHON, undefined);
  } finally {
    await lonely.close();
  }
});

test('the operator log names the plugin', () => {
  for (const e of logs) {
    assert.ok(['debug', 'info', 'warning', 'error'].includes(e.level));
    assert.equal(typeof e.message, 'string');
  }
});
