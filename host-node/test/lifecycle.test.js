'use strict';
// The end of a Node environment with compiles in it, in child processes:
// a process that exits with a compile never post-compiled, process.exit()
// while hooks run, worker threads terminated in the middle of a hook.

const assert = require('node:assert/strict');
const { spawnSync } = require('node:child_process');
const fs = require('node:fs');
const path = require('node:path');
const { test, before, after } = require('node:test');

const { paths, tempDir, removeDir } = require('../test-helpers/world');

let tmp;
before(() => {
  tmp = tempDir();
});
after(() => removeDir(tmp));

// Runs `body` (an async function's text, with `PluginHost`, `paths`, `dir`
// and `workerThreads` in scope) in a fresh node process.
function runChild(body, dir) {
  const script = path.join(tmp, `child-${Math.random().toString(36).slice(2)}.js`);
  fs.writeFileSync(
    script,
    `'use strict';
const { PluginHost } = require(${JSON.stringify(path.join(__dirname, '..'))});
const paths = ${JSON.stringify({ waiter: paths.fixture('node_waiter'), envSetter: paths.fixture('env_setter') })};
const dir = ${JSON.stringify(dir)};
const workerThreads = require('node:worker_threads');
(async () => { ${body} })().catch((e) => { console.error(e); process.exit(99); });
`,
  );
  return spawnSync(process.execPath, [script], { encoding: 'utf8', timeout: 30000, env: process.env });
}

test('a process that ends with a compile never post-compiled exits, and post-compile runs', () => {
  const dir = tempDir();
  try {
    const r = runChild(
      `const host = await PluginHost.load([{ path: paths.envSetter }], { log: () => {} });
       const c = await host.preCompile({ compileDir: dir, baseEnv: {} });
       if (c.status !== 'ok') process.exit(3);`,
      dir,
    );
    assert.equal(r.status, 0, r.stderr);
    assert.equal(fs.readFileSync(path.join(dir, 'post.marker'), 'utf8').trim(), '-1 0');
  } finally {
    removeDir(dir);
  }
});

test('process.exit() while hooks run: the process ends with its status', () => {
  for (let i = 0; i < 3; ++i) {
    const r = runChild(
      `const host = await PluginHost.load([{ path: paths.waiter }], { log: () => {} });
       for (let i = 0; i < 8; ++i) host.preCompile({ projectId: 'wait-5000', compileDir: dir, baseEnv: {} });
       setTimeout(() => process.exit(7), 30);`,
      tmp,
    );
    assert.equal(r.status, 7, r.stderr);
  }
});

test('worker threads: each loads its own plugins; terminating one in the middle of a hook is safe', () => {
  const r = runChild(
    `if (!workerThreads.isMainThread) {
       const host = await PluginHost.load([{ path: paths.waiter }], { log: () => {} });
       const mode = workerThreads.workerData;
       if (mode === 'normal') {
         const c = await host.preCompile({ projectId: 'wait-10', compileDir: dir, baseEnv: {} });
         workerThreads.parentPort.postMessage(c.env.WAITED);
         return;  // never post-compiled: the worker ends with it
       }
       host.preCompile({ projectId: 'wait-5000', compileDir: dir, baseEnv: {} });
       workerThreads.parentPort.postMessage('started');
       return;
     }
     const file = process.argv[1];
     for (let i = 0; i < 4; ++i) {
       const w = new workerThreads.Worker(file, { workerData: 'terminate' });
       await new Promise((res) => w.once('message', res));
       await new Promise((res) => setTimeout(res, 50));
       await w.terminate();
     }
     const w = new workerThreads.Worker(file, { workerData: 'normal' });
     const message = new Promise((res) => w.once('message', res));
     const exited = new Promise((res) => w.once('exit', res));
     const waited = await message;
     await exited;
     // The main thread's own host still works.
     const host = await PluginHost.load([{ path: paths.waiter }], { log: () => {} });
     const c = await host.preCompile({ projectId: 'wait-0', compileDir: dir, baseEnv: {} });
     await c.postCompile();
     await host.close();
     console.log('OK', waited, c.env.WAITED);`,
    tmp,
  );
  assert.equal(r.status, 0, r.stderr);
  assert.match(r.stdout, /OK 10 0/);
});
