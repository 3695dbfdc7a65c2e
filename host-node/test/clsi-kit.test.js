'use strict';
// The CLSI integration kit around a stand-in runner shaped like the CLSI's
// LocalCommandRunner: run(projectId, command, directory, image, timeout,
// environment, compileGroup, callback), the command spawned with
// { ...process.env, ...environment } in the compile directory.

const assert = require('node:assert/strict');
const { spawn } = require('node:child_process');
const fs = require('node:fs');
const path = require('node:path');
const { test, before, after } = require('node:test');

const { paths, World, tempDir, removeDir, sleep } = require('../test-helpers/world');
const { ClsiPluginKit, outcomeOf } = require('../clsi');

let tmp;
let dirs = 0;
before(() => {
  tmp = tempDir();
});
after(() => removeDir(tmp));

function compileDir() {
  const d = path.join(tmp, `compile-${++dirs}`);
  fs.mkdirSync(d);
  return d;
}
const readMarker = (dir) => {
  const f = path.join(dir, 'post.marker');
  return fs.existsSync(f) ? fs.readFileSync(f, 'utf8').trim() : null;
};

// A LocalCommandRunner look-alike that records its calls.
function standInRunner() {
  const calls = [];
  const procs = new Map();
  return {
    calls,
    canRunSyncTeXInOutputDir: () => true,
    run(projectId, command, directory, image, timeout, environment, compileGroup, callback) {
      calls.push({ projectId, command, directory, image, timeout, environment, compileGroup });
      if (command[0] === 'throw') throw new Error('the runner threw');
      const proc = spawn(command[0], command.slice(1), {
        cwd: directory,
        env: { ...process.env, ...environment },
        stdio: ['ignore', 'pipe', 'pipe'],
      });
      procs.set(projectId, proc);
      let stdout = '';
      let stderr = '';
      proc.stdout.on('data', (d) => (stdout += d));
      proc.stderr.on('data', (d) => (stderr += d));
      const timer = setTimeout(() => proc.kill('SIGKILL'), timeout);
      proc.on('close', (code, signal) => {
        clearTimeout(timer);
        procs.delete(projectId);
        let err = null;
        if (signal === 'SIGKILL') {
          err = new Error('timedout');
          err.timedout = true;
        } else if (signal === 'SIGTERM') {
          err = new Error('terminated');
          err.terminated = true;
        }
        callback(err, { stdout, stderr, exitCode: code === null ? 128 : code });
      });
    },
    kill(projectId, callback) {
      const p = procs.get(projectId);
      if (p) p.kill('SIGTERM');
      callback(null);
    },
  };
}

const run = (r, ...args) =>
  new Promise((resolve) => r.run(...args, (err, output) => resolve({ err, output })));

test('the command gets the plugins environment; post-compile gets its exit status', async () => {
  const kit = await ClsiPluginKit.create({ plugins: [{ path: paths.fixture('env_setter') }], log: () => {} });
  try {
    const inner = standInRunner();
    const runner = kit.wrapRunner(inner);
    assert.equal(runner.canRunSyncTeXInOutputDir(), true, 'other methods pass through');
    const dir = compileDir();
    const { err, output } = await run(runner, 'p1', ['sh', '-c', 'echo "var=$FIXTURE_VAR"; exit 3'], dir, 'img', 60000, { TEXMFVAR: '/tmp/x' }, 'standard');
    assert.equal(err, null);
    assert.equal(output.exitCode, 3);
    assert.deepEqual(inner.calls[0].environment, { TEXMFVAR: '/tmp/x', FIXTURE_VAR: 'from-plugin' });
    assert.equal(inner.calls[0].compileGroup, 'standard');
    assert.match(output.stdout, /^fixture: pre-compile\nvar=from-plugin\n/);
    assert.match(output.stdout, /fixture: post-compile exit=3 timed_out=0/);
    assert.equal(readMarker(dir), '3 0');
  } finally {
    await kit.close();
  }
});

test('post-compile runs when the runner throws, times out or the render fails', async () => {
  const kit = await ClsiPluginKit.create({ plugins: [{ path: paths.fixture('env_setter') }], log: () => {} });
  try {
    const runner = kit.wrapRunner(standInRunner());
    const a = compileDir();
    const thrown = await run(runner, 'p2', ['throw'], a, 'img', 60000, {}, 'standard');
    assert.match(thrown.err.message, /the runner threw/);
    assert.equal(readMarker(a), '1 0');

    const b = compileDir();
    const slow = await run(runner, 'p3', ['sleep', '10'], b, 'img', 200, {}, 'standard');
    assert.equal(slow.err.timedout, true);
    assert.equal(readMarker(b), '128 1');

    const c = compileDir();
    const failed = await run(runner, 'p4', ['sh', '-c', 'exit 1'], c, 'img', 60000, {}, 'standard');
    assert.equal(failed.output.exitCode, 1);
    assert.equal(readMarker(c), '1 0');
  } finally {
    await kit.close();
  }
});

test('a plugin that fails hard: the command does not run, the error names it', async () => {
  process.env.FIXTURE_MODE = 'pre-error';
  const kit = await ClsiPluginKit.create({ plugins: [{ path: paths.fixture('env_setter') }], log: () => {} });
  try {
    const inner = standInRunner();
    const { err } = await run(kit.wrapRunner(inner), 'p5', ['true'], compileDir(), 'img', 60000, {}, 'standard');
    assert.equal(err.pluginFailed, 'env-setter');
    assert.equal(inner.calls.length, 0);
  } finally {
    delete process.env.FIXTURE_MODE;
    await kit.close();
  }
});

test('kill() during pre-compile cancels the hooks and the command never runs', async () => {
  const kit = await ClsiPluginKit.create({ plugins: [{ path: paths.fixture('node_waiter') }], log: () => {} });
  try {
    const inner = standInRunner();
    const runner = kit.wrapRunner(inner);
    const t0 = Date.now();
    const pending = kit.runWithCompile({ projectId: 'wait-60000' }, () =>
      run(runner, 'p6', ['true'], compileDir(), 'img', 120000, {}, 'standard'),
    );
    await sleep(100);
    runner.kill('p6', () => {});
    const { err } = await pending;
    assert.ok(Date.now() - t0 < 5000);
    assert.equal(err.terminated, true);
    assert.equal(inner.calls.length, 0);
  } finally {
    await kit.close();
  }
});

test('the host unusable: the command runs without plugins', async () => {
  const kit = await ClsiPluginKit.create({ plugins: [{ path: paths.fixture('env_setter') }], log: () => {} });
  await kit.close();
  const inner = standInRunner();
  const { err, output } = await run(kit.wrapRunner(inner), 'p7', ['sh', '-c', 'echo ran'], compileDir(), 'img', 60000, { A: '1' }, 'standard');
  assert.equal(err, null);
  assert.equal(output.stdout, 'ran\n');
  assert.deepEqual(inner.calls[0].environment, { A: '1' });
});

test('outcomeOf reads the shapes CLSI runners report', () => {
  assert.deepEqual(outcomeOf(null, { exitCode: 0 }), { exitCode: 0, timedOut: false });
  assert.deepEqual(outcomeOf(Object.assign(new Error('x'), { timedout: true }), {}), { exitCode: 124, timedOut: true });
  assert.deepEqual(outcomeOf(Object.assign(new Error('x'), { code: 2 }), undefined), { exitCode: 2, timedOut: false });
  assert.deepEqual(outcomeOf(new Error('x'), undefined), { exitCode: 1, timedOut: false });
});

test('python-venv through the kit: allowPythonInstall from the web tier, the render imports the package', async () => {
  const world = new World();
  await world.startService();
  const kit = await ClsiPluginKit.create({ plugins: [{ path: paths.plugin, config: world.config }], log: () => {} });
  try {
    const runner = kit.wrapRunner(standInRunner());
    const render = ['sh', '-c', '"${QUARTO_PYTHON:-/usr/bin/python3}" -c "import gamma; print(\'RENDER\', gamma.MESSAGE)"'];
    const owner = await kit.runWithCompile({ userId: 'owner', allowPythonInstall: true }, () =>
      run(runner, 'proj-1', render, world.project('gamma\n'), 'img', 240000, {}, 'standard'),
    );
    assert.equal(owner.err, null, owner.output && owner.output.stderr);
    assert.equal(owner.output.exitCode, 0, owner.output.stderr);
    assert.match(owner.output.stdout, /asking the build service/);
    assert.match(owner.output.stdout, /RENDER gamma here/);

    // Link sharing: no permission, the render falls back and fails to import.
    kit.setCompileFacts(path.join(world.tmp, 'project-2'), { userId: 'anon', allowPythonInstall: false });
    const anon = await run(runner, 'proj-2', render, world.project('gamma\n'), 'img', 240000, {}, 'standard');
    assert.match(anon.output.stdout, /may not install Python packages/);
    assert.notEqual(anon.output.exitCode, 0);
  } finally {
    await kit.close();
    await world.dispose();
  }
});
