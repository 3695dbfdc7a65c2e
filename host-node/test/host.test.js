'use strict';
// The addon with small plugins (tests/fixtures and host-node/test/fixtures):
// loading and refusing, the compile's phases, post-compile in every case,
// cancellation and deadlines, threads, close().

const assert = require('node:assert/strict');
const fs = require('node:fs');
const path = require('node:path');
const v8 = require('node:v8');
const vm = require('node:vm');
const { test, before, after } = require('node:test');

const { paths, PluginHost, tempDir, removeDir, sleep } = require('../test-helpers/world');

v8.setFlagsFromString('--expose-gc');
const gc = vm.runInNewContext('gc');

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

const marker = (dir) => path.join(dir, 'post.marker');
const readMarker = (dir) => (fs.existsSync(marker(dir)) ? fs.readFileSync(marker(dir), 'utf8').trim() : null);

async function until(what, fn, ms = 5000) {
  const end = Date.now() + ms;
  while (!fn()) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await sleep(10);
  }
}

const quiet = { log: () => {} };

test('a required plugin whose create fails: load rejects and says why', async () => {
  await assert.rejects(PluginHost.load([{ path: paths.fixture('create_fails') }], quiet), (err) => {
    assert.equal(err.code, 'ERR_CLSI_PLUGIN_LOAD');
    assert.match(err.message, /plugin create-fails \(.*fixture_create_fails\.so\) failed to start/);
    assert.match(err.message, /fixture: configuration is unusable/);
    return true;
  });
});

test('a required plugin that is missing: load rejects and names the file', async () => {
  const missing = path.join(tmp, 'no-such-plugin.so');
  await assert.rejects(PluginHost.load([{ path: missing }], quiet), (err) => {
    assert.equal(err.code, 'ERR_CLSI_PLUGIN_LOAD');
    assert.ok(err.message.includes(`cannot load plugin ${missing}`), err.message);
    assert.match(err.message, /No such file/);
    return true;
  });
});

test('a required plugin built for another ABI: load rejects and says which', async () => {
  await assert.rejects(PluginHost.load([{ path: paths.fixture('wrong_abi') }], quiet), (err) => {
    assert.match(err.message, /refusing plugin .*fixture_wrong_abi\.so: it was built for ABI 2\.0, this host speaks ABI 1\.1/);
    return true;
  });
});

test('a library that is not a plugin: load rejects', async () => {
  await assert.rejects(PluginHost.load([{ path: paths.fixture('no_entry') }], quiet), /it is not a clsi plugin/);
});

test('optional plugins that fail are skipped with a warning; the rest load', async () => {
  const logs = [];
  const host = await PluginHost.load(
    [
      { path: paths.fixture('create_fails'), optional: true },
      { path: path.join(tmp, 'no-such-plugin.so'), optional: true },
      { path: paths.fixture('wrong_abi'), optional: true },
      { path: paths.fixture('env_setter') },
    ],
    { log: (e) => logs.push(e) },
  );
  try {
    assert.deepEqual(host.plugins, ['env-setter']);
    assert.equal(host.skipped.length, 3);
    assert.match(host.skipped[0], /optional plugin skipped: plugin create-fails .* failed to start/);
    assert.match(host.skipped[1], /optional plugin skipped: cannot load plugin/);
    assert.match(host.skipped[2], /optional plugin skipped: refusing plugin .*ABI 2\.0/);
    await until('the warnings', () => logs.filter((e) => e.level === 'warning').length >= 3);
    const c = await host.preCompile({ compileDir: compileDir(), baseEnv: {} });
    await c.postCompile();
    assert.deepEqual(c.env, { FIXTURE_VAR: 'from-plugin' });
  } finally {
    await host.close();
  }
});

test('a compile through a plugin: env, changes, lines in order, post-compile with the outcome', async () => {
  const logs = [];
  const host = await PluginHost.load([{ path: paths.fixture('env_setter') }], { log: (e) => logs.push(e) });
  try {
    const dir = compileDir();
    const streamed = [];
    const c = await host.preCompile({
      projectId: 'p1',
      userId: 'u1',
      compileDir: dir,
      compileId: 'compile-42',
      baseEnv: { PATH: '/usr/bin', FIXTURE_VAR: 'base' },
      onLine: (plugin, line) => streamed.push(`${plugin}: ${line}`),
    });
    assert.equal(c.compileId, 'compile-42');
    assert.equal(c.status, 'ok');
    assert.deepEqual(c.env, { PATH: '/usr/bin', FIXTURE_VAR: 'from-plugin' });
    assert.deepEqual(c.changes, [{ name: 'FIXTURE_VAR', op: 'set', value: 'from-plugin', plugin: 'env-setter' }]);
    assert.deepEqual(c.lines, ['fixture: pre-compile']);
    assert.deepEqual(streamed, ['env-setter: fixture: pre-compile']);
    assert.equal(readMarker(dir), null, 'post-compile ran before postCompile()');
    const post = await c.postCompile({ exitCode: 3, timedOut: true, durationMs: 1234 });
    assert.deepEqual(post.lines, ['fixture: post-compile exit=3 timed_out=1 set_env_refused=yes']);
    assert.equal(streamed.length, 2);
    assert.equal(readMarker(dir), '3 1');
    // Once: a second call settles as the first did and runs nothing.
    fs.unlinkSync(marker(dir));
    assert.deepEqual(await c.postCompile({ exitCode: 9 }), post);
    assert.equal(readMarker(dir), null);
    assert.ok(logs.some((e) => e.plugin === 'env-setter' && e.message === 'env-setter created'));
  } finally {
    await host.close();
  }
});

test('a plugin that throws in pre-compile: status error, named, and the compile does not run', async () => {
  process.env.FIXTURE_MODE = 'pre-throw';
  const host = await PluginHost.load([{ path: paths.fixture('env_setter') }], quiet);
  try {
    const dir = compileDir();
    const c = await host.preCompile({ compileDir: dir, baseEnv: {} });
    assert.equal(c.status, 'error');
    assert.equal(c.failedPlugin, 'env-setter');
    assert.deepEqual(c.plugins, [{ name: 'env-setter', status: 'error' }]);
    assert.deepEqual(c.env, {});
    await c.postCompile({ exitCode: -1 });
    assert.equal(readMarker(dir), null, 'the plugin that failed gets no post-compile');
  } finally {
    delete process.env.FIXTURE_MODE;
    await host.close();
  }
});

test('post-compile runs when the render throws (try/finally, as the CLSI kit does)', async () => {
  const host = await PluginHost.load([{ path: paths.fixture('env_setter') }], quiet);
  try {
    const dir = compileDir();
    const render = async () => {
      throw new Error('latex exploded');
    };
    await assert.rejects(async () => {
      const c = await host.preCompile({ compileDir: dir, baseEnv: {} });
      const started = Date.now();
      let exitCode = 1;
      try {
        await render(c.env);
        exitCode = 0;
      } finally {
        await c.postCompile({ exitCode, durationMs: Date.now() - started });
      }
    }, /latex exploded/);
    assert.equal(readMarker(dir), '1 0');
  } finally {
    await host.close();
  }
});

test('a compile garbage-collected without postCompile still gets its post-compile', async () => {
  const host = await PluginHost.load([{ path: paths.fixture('env_setter') }], quiet);
  try {
    const dir = compileDir();
    await (async () => {
      const c = await host.preCompile({ compileDir: dir, baseEnv: {} });
      assert.equal(c.status, 'ok');
    })();
    for (let i = 0; i < 50 && readMarker(dir) === null; ++i) {
      gc();
      await sleep(20);
    }
    assert.equal(readMarker(dir), '-1 0');
  } finally {
    await host.close();
  }
});

test('hooks run on threads of their own: 40 waits of 300 ms at once take about 300 ms, fs stays free', async () => {
  const host = await PluginHost.load([{ path: paths.fixture('node_waiter') }], quiet);
  try {
    const started = Date.now();
    const compiles = Array.from({ length: 40 }, () =>
      host.preCompile({ projectId: 'wait-300', compileDir: compileDir(), baseEnv: {} }),
    );
    // The libuv threadpool (4 threads) is not taken by the hooks.
    const fsStart = Date.now();
    await fs.promises.readFile(__filename);
    await fs.promises.stat(tmp);
    const fsMs = Date.now() - fsStart;
    const done = await Promise.all(compiles);
    const ms = Date.now() - started;
    assert.ok(fsMs < 200, `fs waited ${fsMs} ms behind the hooks`);
    assert.ok(ms < 3000, `40 hooks of 300 ms took ${ms} ms`);
    for (const c of done) {
      assert.equal(c.env.WAITED, '300');
      assert.deepEqual(c.lines, ['waiter: waiting 300 ms', 'waiter: done']);
    }
    const posts = await Promise.all(done.map((c) => c.postCompile({ exitCode: 0 })));
    assert.ok(posts.every((p) => p.lines[0] === 'waiter: post exit=0 timed_out=0'));
  } finally {
    await host.close();
  }
});

test('cancellation: an AbortSignal and the deadline end a waiting hook early', async () => {
  const host = await PluginHost.load([{ path: paths.fixture('node_waiter') }], quiet);
  try {
    const ac = new AbortController();
    const t0 = Date.now();
    const pending = host.preCompile({ projectId: 'wait-30000', compileDir: compileDir(), baseEnv: {}, signal: ac.signal });
    setTimeout(() => ac.abort(), 100);
    const c = await pending;
    assert.ok(Date.now() - t0 < 5000);
    assert.deepEqual(c.plugins, [{ name: 'waiter', status: 'fell-back' }]);
    assert.match(c.lines[1], /waiter: cancelled after about/);
    await c.postCompile();

    const t1 = Date.now();
    const d = await host.preCompile({ projectId: 'wait-30000', compileDir: compileDir(), baseEnv: {}, timeoutMs: 150 });
    assert.ok(Date.now() - t1 < 5000);
    assert.equal(d.plugins[0].status, 'fell-back');
    await d.postCompile();

    const e = await host.preCompile({
      projectId: 'wait-30000',
      compileDir: compileDir(),
      baseEnv: {},
      deadline: Date.now() + 100,
    });
    assert.equal(e.plugins[0].status, 'fell-back');
    await e.postCompile();
  } finally {
    await host.close();
  }
});

test('prepend keeps the base value behind the plugin', async () => {
  const host = await PluginHost.load([{ path: paths.fixture('node_waiter') }], quiet);
  try {
    const c = await host.preCompile({ projectId: 'wait-0-prepend', compileDir: compileDir(), baseEnv: { WAITER_PATH: '/a:/b' } });
    await c.postCompile();
    assert.equal(c.env.WAITER_PATH, 'waiter:/a:/b');
    assert.deepEqual(c.changes, [{ name: 'WAITER_PATH', op: 'prepend', value: 'waiter', plugin: 'waiter' }]);
  } finally {
    await host.close();
  }
});

test('a throwing onLine or log callback is a warning, not a crash', async () => {
  const warnings = [];
  const onWarning = (w) => warnings.push(w);
  process.on('warning', onWarning);
  const host = await PluginHost.load([{ path: paths.fixture('env_setter') }], {
    log: () => {
      throw new Error('log broke');
    },
  });
  try {
    const c = await host.preCompile({
      compileDir: compileDir(),
      baseEnv: {},
      onLine: () => {
        throw new Error('onLine broke');
      },
    });
    await c.postCompile();
    assert.equal(c.status, 'ok');
    await until('the warnings', () => warnings.length >= 2);
    assert.ok(warnings.some((w) => /onLine threw: Error: onLine broke/.test(w.message)));
    assert.ok(warnings.some((w) => /the log callback threw: Error: log broke/.test(w.message)));
  } finally {
    process.off('warning', onWarning);
    await host.close();
  }
});

test('bad arguments reject with a TypeError', async () => {
  const host = await PluginHost.load([{ path: paths.fixture('env_setter') }], quiet);
  try {
    await assert.rejects(host.preCompile({}), TypeError);
    await assert.rejects(host.preCompile({ compileDir: tmp, permissions: 'python.install' }), TypeError);
    await assert.rejects(host.preCompile({ compileDir: tmp, baseEnv: { A: 'x\0y' } }), TypeError);
    await assert.rejects(host.preCompile({ compileDir: tmp, timeoutMs: -1 }), TypeError);
    await assert.rejects(PluginHost.load('x'), TypeError);
    await assert.rejects(PluginHost.load([{ path: 3 }]), TypeError);
  } finally {
    await host.close();
  }
});

test('close() waits for the compiles in flight, then unloads; later calls reject', async () => {
  const host = await PluginHost.load([{ path: paths.fixture('env_setter') }], quiet);
  const dir = compileDir();
  const c = await host.preCompile({ compileDir: dir, baseEnv: {} });
  let closed = false;
  const closing = host.close().then(() => {
    closed = true;
  });
  await sleep(100);
  assert.equal(closed, false, 'close() did not wait for the compile');
  await assert.rejects(host.preCompile({ compileDir: dir, baseEnv: {} }), { code: 'ERR_CLSI_HOST_CLOSED' });
  await c.postCompile({ exitCode: 0 });
  await closing;
  assert.equal(closed, true);
  assert.equal(readMarker(dir), '0 0');
  await assert.rejects(host.close(), { code: 'ERR_CLSI_HOST_CLOSED' });
  await assert.rejects(host.preCompile({ compileDir: dir, baseEnv: {} }), { code: 'ERR_CLSI_HOST_CLOSED' });
});

test('close({ force: true }) cancels hooks and post-compiles what waits', async () => {
  const host = await PluginHost.load([{ path: paths.fixture('env_setter') }, { path: paths.fixture('node_waiter') }], quiet);
  const dir = compileDir();
  const waiting = await host.preCompile({ compileDir: dir, baseEnv: {} });
  const running = host.preCompile({ projectId: 'wait-60000', compileDir: compileDir(), baseEnv: {} });
  await sleep(50);
  const t0 = Date.now();
  await host.close({ force: true });
  assert.ok(Date.now() - t0 < 5000, 'the waiting hook was not cancelled');
  assert.equal(readMarker(dir), '-1 0');
  const r = await running;
  assert.equal(r.plugins[1].status, 'fell-back');
  // postCompile after a forced close: settles, runs nothing more.
  await waiting.postCompile({ exitCode: 0 });
  await r.postCompile({ exitCode: 0 });
  assert.equal(readMarker(dir), '-1 0');
});
