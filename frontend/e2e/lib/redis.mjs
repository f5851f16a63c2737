// A throwaway redis-server for browser tests that need what the embedded Redis cannot give:
// keys made by `longhaul keys` before the server starts. It listens on a free loopback port
// with its data in a temporary directory, and stops with the test.
import { execFileSync, spawn } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { binaryPath, freePort, waitFor } from './server.mjs';

/** startRedis runs redis-server and resolves once it answers PING. */
export async function startRedis() {
  const port = await freePort();
  const dir = mkdtempSync(join(tmpdir(), 'longhaul-e2e-redis-'));
  const proc = spawn('redis-server', ['--port', String(port), '--bind', '127.0.0.1', '--dir', dir, '--save', '',
    '--appendonly', 'no', '--maxmemory-policy', 'noeviction'], { stdio: 'ignore' });
  let exited = false;
  proc.on('exit', () => { exited = true; });
  const url = `redis://127.0.0.1:${port}/0`;
  await waitFor('redis-server to answer', () => {
    if (exited) throw new Error('redis-server exited at start-up (run scripts/ensure-redis.sh)');
    return execFileSync('redis-cli', ['-p', String(port), 'PING'], { stdio: ['ignore', 'pipe', 'ignore'] }).toString().trim() === 'PONG';
  }, 10_000);
  return {
    url,
    stop() {
      proc.kill('SIGKILL');
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

/** makeKey makes an API key with `longhaul keys create` and returns it. */
export function makeKey(redisUrl, name, role) {
  return execFileSync(binaryPath(), ['keys', 'create', '--name', name, '--role', role], {
    env: { ...process.env, REDIS_URL: redisUrl },
    stdio: ['ignore', 'pipe', 'pipe'],
  }).toString().trim();
}
