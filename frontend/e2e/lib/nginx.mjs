// Starts a real nginx in front of the longhaul server for a test, configured from the reference
// deploy/nginx.conf (read at run time) with only what a test must change rewritten: one
// foreground process whose pid, logs and temporary files live in a temporary directory, a free
// port of 127.0.0.1, the test's server as the upstream, and, when asked, the WebSocket upgrade
// stripped as by a proxy that does not know WebSockets. deploy/nginx_harness_test.go does the same
// for the Go tests. Every rewrite must find what it rewrites, so that a change of the reference
// that this file no longer covers fails loudly instead of testing something else.
import { spawn } from 'node:child_process';
import { accessSync, constants, mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { delimiter, dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { freePort, waitFor } from './server.mjs';

const repoRoot = resolve(dirname(fileURLToPath(import.meta.url)), '../../..');

/** referenceConfig is the path of the reference nginx configuration. */
export const referenceConfig = join(repoRoot, 'deploy/nginx.conf');

function executable(p) {
  try {
    if (!statSync(p).isFile()) return false;
    accessSync(p, constants.X_OK);
    return true;
  } catch {
    return false;
  }
}

/**
 * findNginx is $NGINX, else nginx on PATH, else where distributions install it (/usr/sbin is
 * not on every PATH); null when there is none.
 */
export function findNginx() {
  if (process.env.NGINX) return process.env.NGINX;
  const dirs = (process.env.PATH ?? '').split(delimiter).filter(Boolean);
  for (const d of [...dirs, '/usr/sbin', '/usr/local/sbin', '/usr/local/nginx/sbin']) {
    const p = join(d, 'nginx');
    if (executable(p)) return p;
  }
  return null;
}

/** requireNginx returns the nginx binary, or throws saying how to install it. */
export function requireNginx() {
  const bin = findNginx();
  if (!bin) {
    throw new Error(
      'nginx not found (looked at $NGINX, on PATH, in /usr/sbin, /usr/local/sbin and /usr/local/nginx/sbin): ' +
        'run scripts/ensure-nginx.sh (make e2e does), or apt-get install -y nginx-light',
    );
  }
  if (!executable(bin)) throw new Error(`nginx at ${bin} is not an executable file: run scripts/ensure-nginx.sh, or fix $NGINX`);
  return bin;
}

/**
 * renderNginxConfig turns the reference configuration into the one a test runs.
 * options: dir (the temporary prefix), port (on 127.0.0.1), upstream ("host:port" of the
 * longhaul server, in both of the reference's upstream slots), stripUpgrade (the /ws/ location
 * sends neither Upgrade nor Connection upstream, so the handshake reaches longhaul as a plain
 * GET, which it refuses with 400, as behind a proxy that does not support upgrades).
 * It throws, naming every rewrite that no longer applies, when the reference has changed.
 */
export function renderNginxConfig(ref, { dir, port, upstream, stripUpgrade = false }) {
  // Comments go first: they mention directives ("proxy_set_header" inside a location) that
  // the patterns below must not match.
  let conf = ref.replace(/#.*$/gm, '');
  const errors = [];
  const count = (re) => (conf.match(new RegExp(re.source, re.flags.includes('g') ? re.flags : `${re.flags}g`)) ?? []).length;
  /** replace rewrites every match of re (a /g pattern) if it matches atLeast..atMost times. */
  const replace = (what, re, atLeast, atMost, repl) => {
    const n = count(re);
    if (n < atLeast || n > atMost) {
      errors.push(`${what}: found ${n}, want ${atLeast === atMost ? atLeast : `${atLeast} to ${atMost === Infinity ? 'any' : atMost}`}`);
      return;
    }
    let i = 0;
    conf = conf.replace(re, (...m) => repl(i++, m));
  };

  // One foreground process whose files all live in dir.
  conf = `daemon off;\nmaster_process off;\n${conf}`;
  replace('pid', /^\s*pid\s[^;]*;/gm, 1, 1, () => `\npid ${dir}/nginx.pid;`);
  replace('error_log', /^\s*error_log\s[^;]*;/gm, 1, Infinity, () => `\nerror_log ${dir}/error.log info;`);
  replace('access_log', /^\s*access_log\s[^;]*;/gm, 1, Infinity, () => `\naccess_log ${dir}/access.log;`);
  const temp = ['client_body', 'proxy', 'fastcgi', 'uwsgi', 'scgi'].map((n) => `\n    ${n}_temp_path ${dir}/${n}_temp;`).join('');
  replace('http block', /^\s*http\s*\{/gm, 1, 1, () => `\nhttp {${temp}`);
  replace('listen', /^\s*listen\s[^;]*;/gm, 1, Infinity, (i) => (i === 0 ? `\n        listen 127.0.0.1:${port};` : ''));
  // The reference ends TLS; the Go proxy tests (deploy/) run it with TLS and a certificate
  // they make. The browser tests are about upgrades, so they talk plain HTTP to it.
  replace('TLS settings', /^\s*ssl_\w+\s[^;]*;/gm, 2, Infinity, () => '');

  // The test's server in both of the upstream's slots, keeping their parameters.
  const upstreamRe = /upstream\s+longhaul_api\s*\{[^}]*\}/g;
  const blocks = conf.match(upstreamRe) ?? [];
  if (blocks.length !== 1) {
    errors.push(`upstream longhaul_api: found ${blocks.length}, want 1`);
  } else {
    const serverRe = /^(\s*server\s+)(\S+)([^;]*;)/gm;
    const n = (blocks[0].match(serverRe) ?? []).length;
    if (n !== 2) errors.push(`upstream longhaul_api: found ${n} servers, want 2`);
    else conf = conf.replace(blocks[0], blocks[0].replace(serverRe, (_, pre, _addr, post) => `${pre}${upstream}${post}`));
  }

  if (stripUpgrade) {
    // A proxy_set_header in a location replaces every inherited one for that location, so the
    // /ws/ location gets a copy of the server's headers with Upgrade and Connection emptied:
    // nginx then sends neither, and everything else (Host, for the Origin check) stays.
    const headerRe = /^\s*proxy_set_header\s+(\S+)\s+([^;]*);/gm;
    const headers = [...conf.matchAll(headerRe)].map((m) => ({ name: m[1], value: m[2].trim() }));
    const named = (name) => headers.filter((h) => h.name.toLowerCase() === name.toLowerCase());
    for (const name of ['Upgrade', 'Connection', 'Host']) {
      if (named(name).length !== 1) errors.push(`proxy_set_header ${name}: found ${named(name).length}, want 1`);
    }
    const wsLocation = /^(\s*location\s+\/ws\/\s*\{)([^}]*)\}/gm;
    const found = [...conf.matchAll(wsLocation)];
    if (found.length !== 1) {
      errors.push(`location /ws/: found ${found.length}, want 1`);
    } else if (/proxy_set_header/.test(found[0][2])) {
      errors.push('location /ws/ sets headers of its own: the stripped copy would drop them');
    } else {
      const lines = headers.map((h) =>
        /^(upgrade|connection)$/i.test(h.name) ? `proxy_set_header ${h.name} "";` : `proxy_set_header ${h.name} ${h.value};`,
      );
      replace('location /ws/', wsLocation, 1, 1, (_, m) => `${m[1]}\n            ${lines.join('\n            ')}${m[2]}}`);
    }
  }

  if (errors.length > 0) {
    throw new Error(`${referenceConfig} no longer has what the e2e tests rewrite:\n  ${errors.join('\n  ')}`);
  }
  return conf;
}

// nginx processes started here and not yet stopped: killed if the test process exits first.
const running = new Set();
process.on('exit', () => {
  for (const n of running) n.killNow();
});

/**
 * startNginx runs nginx in the foreground on a free port of 127.0.0.1 in front of upstream
 * ("host:port" or a URL), and resolves once it answers HTTP. options: stripUpgrade.
 * It returns { url, port, config, stop, errorLog, accessLog, accessLines }.
 */
export async function startNginx(upstream, options = {}) {
  const bin = requireNginx();
  const upstreamAddr = /^https?:\/\//.test(upstream) ? new URL(upstream).host : upstream;
  const ref = readFileSync(referenceConfig, 'utf8');
  for (let attempt = 1; ; attempt++) {
    const dir = mkdtempSync(join(tmpdir(), 'longhaul-e2e-nginx-'));
    const port = await freePort();
    let n;
    try {
      const config = renderNginxConfig(ref, { ...options, dir, port, upstream: upstreamAddr });
      n = launchNginx(bin, dir, port, config);
    } catch (err) {
      rmSync(dir, { recursive: true, force: true });
      throw err;
    }
    try {
      await waitFor(
        `nginx on ${n.url}`,
        async () => {
          if (n.exited()) throw new Error('nginx exited');
          const res = await fetch(`${n.url}/healthz`, { signal: AbortSignal.timeout(2000) });
          await res.arrayBuffer();
          return true; // anything that answers HTTP
        },
        15_000,
        50,
      );
      return n;
    } catch (err) {
      const log = n.errorLog();
      const died = n.exited();
      await n.stop();
      if (died && /Address already in use/.test(log) && attempt < 3) continue; // the free port was taken meanwhile
      throw new Error(`nginx did not start (${err.message}):\n${log.slice(-3000)}\nconfiguration:\n${n.config}`);
    }
  }
}

function launchNginx(bin, dir, port, config) {
  const confPath = join(dir, 'nginx.conf');
  const errorLogPath = join(dir, 'error.log');
  writeFileSync(confPath, config);
  writeFileSync(errorLogPath, '');
  const proc = spawn(bin, ['-e', errorLogPath, '-p', `${dir}/`, '-c', confPath], { stdio: ['ignore', 'pipe', 'pipe'] });
  let output = '';
  const keep = (chunk) => {
    output += chunk;
    if (output.length > 100_000) output = output.slice(-50_000);
  };
  proc.stdout.on('data', keep);
  proc.stderr.on('data', keep);
  let exited = null;
  const exit = new Promise((ok) => {
    proc.on('exit', (code, signal) => ok((exited = { code, signal })));
    proc.on('error', (err) => ok((exited = { code: null, signal: null, error: err.message })));
  });
  const read = (name) => {
    try {
      return readFileSync(join(dir, name), 'utf8');
    } catch {
      return '';
    }
  };
  let removed = false;
  const remove = () => {
    if (removed) return;
    removed = true;
    rmSync(dir, { recursive: true, force: true });
  };
  const n = {
    url: `http://127.0.0.1:${port}`,
    port,
    config,
    exited: () => exited !== null,
    /** errorLog is nginx's error log (and anything it printed) so far. */
    errorLog: () => (removed ? '' : read('error.log')) + output + (exited?.error ? `\nspawn: ${exited.error}` : ''),
    /** accessLog is nginx's access log so far. */
    accessLog: () => (removed ? '' : read('access.log')),
    /**
     * accessLines parses the access log (combined format) into { method, target, path, status }:
     * target as requested, path without its query (live channels carry ?seq=&epoch= when a
     * page comes back to them).
     */
    accessLines() {
      return n
        .accessLog()
        .split('\n')
        .map((l) => /"(\S+) (\S+) HTTP\/[\d.]+" (\d{3}) /.exec(l))
        .filter(Boolean)
        .map((m) => ({ method: m[1], target: m[2], path: m[2].split('?')[0], status: Number(m[3]) }));
    },
    /** stop kills nginx, waits until it has exited, and removes its directory. */
    async stop() {
      running.delete(n);
      if (!exited) {
        proc.kill('SIGTERM'); // fast shutdown: open connections are closed
        const t = setTimeout(() => proc.kill('SIGKILL'), 5000);
        await exit;
        clearTimeout(t);
      }
      remove();
    },
    /** killNow is stop for a process that is exiting: synchronous, no waiting. */
    killNow() {
      running.delete(n);
      if (!exited) proc.kill('SIGKILL');
      remove();
    },
  };
  running.add(n);
  return n;
}
