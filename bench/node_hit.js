#!/usr/bin/env node
'use strict';
// What a cache hit costs a long-running Node compile service (the CLSI)
// through the addon (@clsi/plugin-host), against a compile with no plugin,
// and against spawning clsi-runner for each compile. Not a test.
//
//   node bench/node_hit.js [BUILD_DIR]      BUILD_DIR defaults to build
//
// Environment: N (200 compiles per variant), CONCURRENCY (8, for the last
// figure). Builds one venv for real first (a local index, the build service),
// then runs the variants interleaved, round by round, so that noise on a
// shared machine spreads over all of them:
//
//   (1) addon, python-venv hit: await preCompile + await postCompile
//   (2) addon, no plugin loaded: the same calls (the addon's own overhead:
//       two threads, two thread-safe-function round trips)
//   (3) spawn /bin/true, no plugin host at all (the floor of any command)
//   (4) spawn clsi-runner --plugin python-venv (a hit) -- /bin/true
//   (5) spawn clsi-runner with no plugin -- /bin/true
// and (6) CONCURRENCY addon hits at once: wall time per compile.

const path = require('node:path');
const { execFileSync, spawn } = require('node:child_process');
const { performance } = require('node:perf_hooks');

const root = path.resolve(__dirname, '..');
process.env.CLSI_BUILD_DIR = path.resolve(process.argv[2] || process.env.CLSI_BUILD_DIR || path.join(root, 'build'));
const { paths, World, PluginHost, PYTHON_INSTALL } = require('../host-node/test-helpers/world');

const N = Number(process.env.N || 200);
const CONCURRENCY = Number(process.env.CONCURRENCY || 8);

function spawnWait(cmd, args) {
  return new Promise((resolve, reject) => {
    const p = spawn(cmd, args, { stdio: 'ignore' });
    p.on('error', reject);
    p.on('close', (code) => (code === 0 ? resolve() : reject(new Error(`${cmd} exited ${code}`))));
  });
}

function summary(name, samples) {
  const s = [...samples].sort((a, b) => a - b);
  const q = (p) => s[Math.min(s.length - 1, Math.floor(p * s.length))];
  return { name, n: s.length, median: q(0.5), p90: q(0.9), p99: q(0.99), min: s[0], max: s[s.length - 1] };
}

const fmt = (ms) => (ms < 1 ? `${(ms * 1000).toFixed(1)} µs` : `${ms.toFixed(2)} ms`);

async function main() {
  const world = new World();
  await world.startService();
  const withPlugin = await PluginHost.load([{ path: paths.plugin, config: world.config }], { log: () => {} });
  const noPlugin = await PluginHost.load([], { log: () => {} });
  const dir = world.project('alpha==1.0\n');
  const request = { projectId: 'bench', userId: 'owner', compileDir: dir, permissions: [PYTHON_INSTALL], timeoutMs: 300000 };

  // The one cold build, then a warm-up of every variant.
  const first = await withPlugin.preCompile(request);
  await first.postCompile();
  if (first.status !== 'ok' || !first.env.QUARTO_PYTHON) throw new Error(`the build failed:\n${first.lines.join('\n')}`);

  const variants = {
    'addon, python-venv hit (pre + post)': async () => {
      const c = await withPlugin.preCompile(request);
      await c.postCompile({ exitCode: 0 });
      if (!/reusing environment/.test(c.lines[0] || '')) throw new Error(`not a hit: ${c.lines.join('\n')}`);
    },
    'addon, no plugin (pre + post)': async () => {
      const c = await noPlugin.preCompile(request);
      await c.postCompile({ exitCode: 0 });
    },
    'spawn /bin/true (no plugin host)': () => spawnWait('/bin/true', []),
    'spawn clsi-runner, python-venv hit, -- /bin/true': () =>
      spawnWait(paths.runner, ['--plugin', paths.plugin, '--plugin-config', world.config, '--compile-dir', dir, '--project-id', 'bench', '--allow-python-install', '--', '/bin/true']),
    'spawn clsi-runner, no plugin, -- /bin/true': () => spawnWait(paths.runner, ['--compile-dir', dir, '--', '/bin/true']),
  };
  const samples = Object.fromEntries(Object.keys(variants).map((k) => [k, []]));
  for (const fn of Object.values(variants)) for (let i = 0; i < 5; ++i) await fn();
  for (let i = 0; i < N; ++i) {
    for (const [name, fn] of Object.entries(variants)) {
      const t0 = performance.now();
      await fn();
      samples[name].push(performance.now() - t0);
    }
  }

  // Many hits at once from one process: the hooks run on threads of their own.
  const rounds = Math.max(1, Math.floor(N / CONCURRENCY));
  const perCompile = [];
  for (let r = 0; r < rounds; ++r) {
    const t0 = performance.now();
    await Promise.all(Array.from({ length: CONCURRENCY }, () => variants['addon, python-venv hit (pre + post)']()));
    perCompile.push((performance.now() - t0) / CONCURRENCY);
  }

  await withPlugin.close();
  await noPlugin.close();
  await world.dispose();

  const rows = Object.entries(samples).map(([k, v]) => summary(k, v));
  rows.push(summary(`addon, ${CONCURRENCY} python-venv hits at once (wall time / compile)`, perCompile));
  let node = process.version;
  let cpu = '';
  try {
    cpu = execFileSync('sh', ['-c', "nproc; grep -m1 'model name' /proc/cpuinfo | cut -d: -f2"], { encoding: 'utf8' })
      .trim()
      .replace(/\n/g, ' cores,');
  } catch {}
  console.log(`node ${node}, ${cpu}; N=${N} per variant, interleaved`);
  console.log('| variant | n | median | p90 | p99 | min | max |');
  console.log('| --- | --- | --- | --- | --- | --- | --- |');
  for (const r of rows) {
    console.log(`| ${r.name} | ${r.n} | ${fmt(r.median)} | ${fmt(r.p90)} | ${fmt(r.p99)} | ${fmt(r.min)} | ${fmt(r.max)} |`);
  }
  const med = (k) => summary(k, samples[k]).median;
  const hit = med('addon, python-venv hit (pre + post)');
  const bare = med('addon, no plugin (pre + post)');
  const runnerHit = med('spawn clsi-runner, python-venv hit, -- /bin/true');
  const trueMs = med('spawn /bin/true (no plugin host)');
  console.log('');
  console.log(`the plugin's hit through the addon, less the addon alone: ${fmt(hit - bare)}`);
  console.log(`a compile's extra cost for a hit: addon ${fmt(hit)} vs spawning clsi-runner ${fmt(runnerHit - trueMs)} ` +
    `(clsi-runner ${fmt(runnerHit)} less /bin/true ${fmt(trueMs)}): ${(runnerHit - trueMs) / hit > 1 ? `${((runnerHit - trueMs) / hit).toFixed(1)}x cheaper through the addon` : 'no cheaper'}`);
}

main().catch((err) => {
  console.error(err);
  process.exit(1);
});
