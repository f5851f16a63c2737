// Starts the real longhaul binary for a test: a free port, a temporary storage directory, the
// embedded Redis, short file times; stops it when the test is done.
import { spawn } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

const frontendDir = resolve(dirname(fileURLToPath(import.meta.url)), '../..');

/** binaryPath is the longhaul binary under test: $LONGHAUL_BIN, else ../bin/longhaul. */
export function binaryPath() {
  return resolve(frontendDir, process.env.LONGHAUL_BIN || '../bin/longhaul');
}

/** freePort asks the kernel for a port nobody listens on. */
export function freePort() {
  return new Promise((ok, fail) => {
    const s = createServer();
    s.unref();
    s.on('error', fail);
    s.listen(0, '127.0.0.1', () => {
      const { port } = s.address();
      s.close(() => ok(port));
    });
  });
}

/** waitFor polls check() until it returns a truthy value or the time is up. */
export async function waitFor(what, check, timeoutMs, everyMs = 100) {
  const until = Date.now() + timeoutMs;
  let last;
  for (;;) {
    try {
      const v = await check();
      if (v) return v;
    } catch (err) {
      last = err;
    }
    if (Date.now() > until) {
      throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}${last ? `: ${last.message}` : ''}`);
    }
    await new Promise((r) => setTimeout(r, everyMs));
  }
}

/**
 * startServer runs `longhaul serve` (or `longhaul api` with mode 'api'). env adds to or
 * overrides the defaults (file times of 300-800 ms, the embedded Redis unless env names
 * REDIS_URL). A port may be given, to start a server again where one was. It resolves once
 * /healthz answers 200 and / serves this build of the page.
 */
export async function startServer(env = {}, { mode = 'serve', port: wantPort } = {}) {
  const bin = binaryPath();
  if (!existsSync(bin)) {
    throw new Error(`${bin} is missing: build it with (cd .. && go build -o bin/longhaul ./cmd/longhaul), or set LONGHAUL_BIN`);
  }
  const port = wantPort ?? (await freePort());
  const dir = mkdtempSync(join(tmpdir(), 'longhaul-e2e-'));
  const url = `http://127.0.0.1:${port}`;
  const fullEnv = {
    ...process.env,
    LONGHAUL_ADDR: `127.0.0.1:${port}`,
    LONGHAUL_STORAGE_DIR: join(dir, 'files'),
    LONGHAUL_FILE_TIME_MIN: '300ms',
    LONGHAUL_FILE_TIME_MAX: '800ms',
    ...env,
  };
  // The embedded Redis, so every test starts from nothing, unless the test brings its own.
  if (!env.REDIS_URL) delete fullEnv.REDIS_URL;
  const proc = spawn(bin, [mode], { env: fullEnv, stdio: ['ignore', 'pipe', 'pipe'] });
  let log = '';
  const keep = (chunk) => {
    log += chunk;
    if (log.length > 200_000) log = log.slice(-100_000);
  };
  proc.stdout.on('data', keep);
  proc.stderr.on('data', keep);
  let exited = null;
  const exit = new Promise((r) => proc.on('exit', (code, signal) => r((exited = { code, signal }))));

  const stop = async () => {
    if (!exited) {
      proc.kill('SIGTERM');
      const t = setTimeout(() => proc.kill('SIGKILL'), 5000);
      await exit;
      clearTimeout(t);
    }
    rmSync(dir, { recursive: true, force: true });
  };

  try {
    await waitFor(
      `${url}/healthz`,
      async () => {
        if (exited) throw new Error(`longhaul exited (${JSON.stringify(exited)}):\n${log.slice(-2000)}`);
        const res = await fetch(`${url}/healthz`);
        return res.status === 200;
      },
      20_000,
    );
    await checkServesThisBuild(url);
  } catch (err) {
    await stop();
    throw err;
  }
  return { url, port, env: fullEnv, stop, log: () => log };
}

/**
 * startWorker runs `longhaul worker` on the Redis env names, and returns what stops it:
 * kill() as a crash would (SIGKILL), stop() as a deploy would.
 */
export function startWorker(env) {
  const proc = spawn(binaryPath(), ['worker'], {
    env: { ...process.env, LONGHAUL_LOG_LEVEL: 'warn', ...env },
    stdio: ['ignore', 'ignore', 'pipe'],
  });
  let log = '';
  proc.stderr.on('data', (chunk) => {
    log = (log + chunk).slice(-50_000);
  });
  const exit = new Promise((r) => proc.on('exit', r));
  const end = async (signal) => {
    if (proc.exitCode === null && proc.signalCode === null) proc.kill(signal);
    await exit;
  };
  return { kill: () => end('SIGKILL'), stop: () => end('SIGTERM'), log: () => log };
}

/** checkServesThisBuild fails when the binary embeds another build of the page than dist/app. */
async function checkServesThisBuild(url) {
  const built = join(frontendDir, 'dist/app/index.html');
  if (!existsSync(built)) throw new Error('dist/app is missing: run npm run build, then rebuild the binary');
  const served = await (await fetch(`${url}/`)).text();
  if (served.trim() !== readFileSync(built, 'utf8').trim()) {
    throw new Error(
      'the binary serves another build of the page than dist/app: rebuild it after npm run build ' +
        '(cd .. && go build -o bin/longhaul ./cmd/longhaul)',
    );
  }
}

/** api calls the server's JSON API from the test, outside the browser. */
export async function api(base, path, init = {}) {
  const res = await fetch(base + path, init);
  const text = await res.text();
  let body = null;
  try {
    body = text ? JSON.parse(text) : null;
  } catch {
    body = text;
  }
  return { status: res.status, headers: res.headers, body };
}
