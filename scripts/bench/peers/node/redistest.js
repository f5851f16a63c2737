// Throwaway redis-server processes for the tests, on free ports and in temporary
// directories, so that the tests never touch a Redis someone else uses.
import assert from 'node:assert/strict'
import { spawn } from 'node:child_process'
import { once } from 'node:events'
import { mkdtempSync, rmSync } from 'node:fs'
import { createServer } from 'node:net'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { Redis } from 'ioredis'

/** freePort returns a loopback port that nothing listened on a moment ago. */
async function freePort() {
  const l = createServer().listen(0, '127.0.0.1')
  await once(l, 'listening')
  const { port } = l.address()
  l.close()
  return port
}

/** startRedis runs a redis-server with no persistence, stopped by the returned stop(). */
export async function startRedis() {
  const dir = mkdtempSync(join(tmpdir(), 'node-peer-redis-'))
  const port = await freePort()
  const proc = spawn('redis-server', ['--port', String(port), '--bind', '127.0.0.1', '--dir', dir,
    '--save', '', '--appendonly', 'no', '--maxmemory-policy', 'noeviction'], { stdio: 'ignore' })
  const stop = async () => {
    proc.kill('SIGKILL')
    if (proc.exitCode === null && proc.signalCode === null) await once(proc, 'exit')
    rmSync(dir, { recursive: true, force: true })
  }
  try {
    const client = await connectWhenUp(port)
    // Another server may hold the port: check that the one answering is ours.
    const info = await client.info('server')
    assert.match(info, new RegExp(`process_id:${proc.pid}\\r`), `redis-server on ${port} is not the one started`)
    return {
      url: `redis://127.0.0.1:${port}/0`,
      client,
      async stop() {
        client.disconnect()
        await stop()
      },
    }
  } catch (err) {
    await stop()
    throw err
  }
}

/** connectWhenUp connects to the Redis on port once it listens, trying for up to 10 s. */
async function connectWhenUp(port) {
  for (let attempt = 0; ; attempt++) {
    const client = new Redis({ port, host: '127.0.0.1', lazyConnect: true, retryStrategy: () => null })
    client.on('error', () => {})
    try {
      await client.connect()
      return client
    } catch (err) {
      client.disconnect()
      if (attempt === 400) throw err
      await new Promise((resolve) => setTimeout(resolve, 25))
    }
  }
}

/** numsub is how many subscribers channel has. */
export async function numsub(redis, channel) {
  const [, n] = await redis.pubsub('NUMSUB', channel)
  return n
}

/** eventually polls check until it returns true, or fails after a while. */
export async function eventually(what, check) {
  for (let i = 0; i < 200; i++) {
    if (await check()) return
    await new Promise((resolve) => setTimeout(resolve, 25))
  }
  assert.fail(`never: ${what}`)
}
