'use strict';
// Arguments a caller gets wrong: each is refused before any hook starts, so
// that a compile that has started always gets its post-compile (a started
// compile that never does keeps its leases and keeps close() waiting).

const assert = require('node:assert/strict');
const fs = require('node:fs');
const path = require('node:path');
const { test, before, after } = require('node:test');

const { paths, PluginHost, tempDir, removeDir } = require('../test-helpers/world');

let tmp;
before(() => {
  tmp = tempDir();
});
after(() => removeDir(tmp));

// close() of a host whose compiles all ended resolves at once; one that
// hangs means a compile was started and left without its post-compile.
async function closesPromptly(host) {
  let timer;
  const hung = new Promise((resolve) => {
    timer = setTimeout(() => resolve('hung'), 5000);
  });
  const outcome = await Promise.race([host.close().then(() => 'closed'), hung]);
  clearTimeout(timer);
  assert.equal(outcome, 'closed', 'close() waited for a compile that was started and never post-compiled');
}

function loadCounter() {
  return PluginHost.load([{ path: paths.fixture('env_setter') }], { log: null });
}

test('bad arguments are refused with a TypeError, and nothing is left started', async () => {
  const host = await loadCounter();
  const dir = fs.mkdtempSync(path.join(tmp, 'c-'));
  const cases = [
    [{ signal: {} }, /signal must be an AbortSignal/],
    [{ signal: { aborted: false } }, /signal must be an AbortSignal/],
    [{ baseEnv: 'PATH=/usr/bin' }, /baseEnv must be an object/],
    [{ baseEnv: ['A=1'] }, /baseEnv must be an object/],
    [{ baseEnv: null }, /baseEnv must be an object/],
    [{ permissions: [1, null] }, /permissions must be an array of strings/],
    [{ permissions: 'python.install' }, /permissions must be an array of strings/],
    [{ onLine: 'x' }, /onLine must be a function/],
    [{ projectId: {} }, /projectId must be a string/],
    [{ projectId: 'p\n./main.tex:1: forged' }, /projectId must not contain control characters/],
    [{ userId: 'u\u2028x' }, /userId must not contain control characters/],
    [{ projectId: 'x'.repeat(1025) }, /projectId is longer than 1024 characters/],
    [{ compileId: 'c\r' }, /compileId must not contain control characters/],
  ];
  for (const [extra, message] of cases) {
    await assert.rejects(host.preCompile({ compileDir: dir, ...extra }), (err) => {
      assert.ok(err instanceof TypeError, `${JSON.stringify(extra).slice(0, 40)}: ${err}`);
      assert.match(err.message, message);
      return true;
    });
  }
  await assert.rejects(PluginHost.load([], { log: 'x' }), /log must be a function/);
  await closesPromptly(host);
});

test('ids that are numbers or objects with their own toString (ObjectId) are taken as strings', async () => {
  const host = await loadCounter();
  const dir = fs.mkdtempSync(path.join(tmp, 'c-'));
  const objectId = { toString: () => '5f0c8e1b2a3d4c5e6f708192' };
  const c = await host.preCompile({ compileDir: dir, projectId: objectId, userId: 7 });
  assert.equal(c.status, 'ok');
  await c.postCompile();
  await closesPromptly(host);
});

test('a compile directory that is missing or not a directory is refused before any hook', async () => {
  const host = await loadCounter();
  const file = path.join(tmp, 'a-file');
  fs.writeFileSync(file, '');
  await assert.rejects(
    host.preCompile({ compileDir: path.join(tmp, 'missing') }),
    /the compile directory .*missing cannot be used: ENOENT/,
  );
  await assert.rejects(host.preCompile({ compileDir: file }), /is not a directory/);
  await closesPromptly(host);
});

test('a signal aborted before the compile starts: an AbortError, and no hook runs', async () => {
  const host = await loadCounter();
  const dir = fs.mkdtempSync(path.join(tmp, 'c-'));
  const seen = [];
  await assert.rejects(
    host.preCompile({ compileDir: dir, signal: AbortSignal.abort(), onLine: (p, l) => seen.push(l) }),
    (err) => err.name === 'AbortError',
  );
  assert.deepEqual(seen, [], 'a hook wrote a line for a compile aborted before it started');
  await closesPromptly(host);
});

test('postCompile(null) and postCompile("x") still post-compile, as exit status unknown', async () => {
  const host = await loadCounter();
  for (const outcome of [null, 'x', 42]) {
    const dir = fs.mkdtempSync(path.join(tmp, 'c-'));
    const c = await host.preCompile({ compileDir: dir });
    const r = await c.postCompile(outcome);
    assert.ok(Array.isArray(r.lines));
  }
  await closesPromptly(host);
});
