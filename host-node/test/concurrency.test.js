'use strict';
// Many compiles at once from one Node process, through one plugin instance:
// 20 compiles over 4 requirement sets nobody has built yet.

const assert = require('node:assert/strict');
const path = require('node:path');
const { test, before, after } = require('node:test');
const { monitorEventLoopDelay } = require('node:perf_hooks');

const { paths, World, PluginHost, PYTHON_INSTALL, renderPython } = require('../test-helpers/world');

let world;
let host;

before(async () => {
  world = new World();
  await world.startService();
  host = await PluginHost.load([{ path: paths.plugin, config: world.config }], { log: () => {} });
});

after(async () => {
  if (host) await host.close({ force: true }).catch(() => {});
  if (world) await world.dispose();
});

const SETS = [
  { requirements: 'alpha==1.0\n', code: "import alpha; print('RENDER', alpha.MESSAGE)", expect: 'RENDER alpha 2.1' },
  { requirements: 'gamma\n', code: "import gamma; print('RENDER', gamma.MESSAGE)", expect: 'RENDER gamma here' },
  { requirements: 'delta==4.0\n', code: "import delta; print('RENDER', delta.MESSAGE)", expect: 'RENDER delta here' },
  {
    requirements: 'alpha\ngamma\n',
    code: "import alpha, gamma; print('RENDER', alpha.MESSAGE, gamma.MESSAGE)",
    expect: 'RENDER alpha 2.1 gamma here',
  },
];

test('20 concurrent compiles over 4 new keys all succeed: one build per key', async (t) => {
  const h = monitorEventLoopDelay({ resolution: 10 });
  h.enable();
  const started = Date.now();
  const jobs = Array.from({ length: 20 }, (_, i) => {
    const set = SETS[i % SETS.length];
    const dir = world.project(set.requirements);
    return host
      .preCompile({
        projectId: `project-${i}`,
        userId: 'owner',
        compileDir: dir,
        permissions: [PYTHON_INSTALL],
        timeoutMs: 300000,
      })
      .then((c) => ({ c, set, dir }));
  });
  const results = await Promise.all(jobs);
  const elapsed = Date.now() - started;
  h.disable();
  t.diagnostic(
    `20 compiles over 4 new keys took ${elapsed} ms; event loop delay max ${(h.max / 1e6).toFixed(1)} ms, ` +
      `p99 ${(h.percentile(99) / 1e6).toFixed(1)} ms (sampled every 10 ms)`,
  );
  try {
    const pythons = new Map();
    for (const { c, set, dir } of results) {
      assert.equal(c.status, 'ok', c.lines.join('\n'));
      assert.deepEqual(c.plugins, [{ name: 'python-venv', status: 'ok' }], c.lines.join('\n'));
      assert.ok(c.env.QUARTO_PYTHON.startsWith(path.join(world.venvs, 'envs') + '/'));
      if (!pythons.has(set.requirements)) {
        pythons.set(set.requirements, c.env.QUARTO_PYTHON);
        const r = renderPython(c.env, set.code, dir);
        assert.equal(r.status, 0, r.stderr);
        assert.ok(r.stdout.includes(set.expect), r.stdout);
      }
      assert.equal(c.env.QUARTO_PYTHON, pythons.get(set.requirements), 'one environment per set');
    }
    assert.equal(new Set(pythons.values()).size, 4);
    assert.ok(h.max / 1e6 < 500, `the event loop was blocked for ${h.max / 1e6} ms`);
  } finally {
    await Promise.all(results.map(({ c }) => c.postCompile({ exitCode: 0 })));
  }
  assert.equal(world.envDirs().length, 4);
});
