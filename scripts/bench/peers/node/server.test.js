// Runs the Node peer as the benchmark does, as its own process on a throwaway
// redis-server, and checks its routes with real HTTP and WebSocket clients.
import assert from 'node:assert/strict'
import { spawn } from 'node:child_process'
import { once } from 'node:events'
import { createInterface } from 'node:readline'
import { after, before, describe, it } from 'node:test'
import { fileURLToPath } from 'node:url'
import { WebSocket } from 'ws'
import { MAX_BODY_BYTES, MAX_FILES } from './app.js'
import { eventually, numsub, startRedis } from './redistest.js'

/** channel is longhaul's channel of job id, which the peer subscribes to by default. */
const channel = (id) => `longhaul:{${id.slice(-2)}}:events:${id}`

const here = fileURLToPath(new URL('.', import.meta.url))

/** startPeer runs server.js with env and waits for its listening line. */
async function startPeer(env) {
  const proc = spawn(process.execPath, ['server.js'], {
    cwd: here,
    env: { ...process.env, ADDR: '127.0.0.1:0', ...env },
    stdio: ['ignore', 'pipe', 'inherit'],
  })
  const exited = once(proc, 'exit')
  for await (const line of createInterface({ input: proc.stdout })) {
    const url = line.match(/^node-peer listening on (http:\/\/\S+)$/)?.[1]
    if (url) return { url, ws: url.replace('http://', 'ws://'), proc, exited }
  }
  throw new Error(`server.js printed no listening line (exit ${(await exited)[0]})`)
}

/** post sends an initiate body and returns the status and the parsed answer. */
async function post(peer, body) {
  const res = await fetch(`${peer.url}/v1/download/initiate`, {
    method: 'POST', headers: { 'Content-Type': 'application/json' }, body,
  })
  return { status: res.status, body: await res.json() }
}

/** watch opens a WebSocket on a job; messages collects what it reads. */
async function watch(peer, jobId) {
  const ws = new WebSocket(`${peer.ws}/ws/download/${jobId}`)
  const messages = []
  const closed = once(ws, 'close').then(([code, reason]) => ({ code, reason: reason.toString() }))
  const next = () => new Promise((resolve) => {
    if (messages.length > 0) return resolve(messages.shift())
    ws.once('message', () => resolve(messages.shift()))
  })
  ws.on('message', (data) => messages.push(JSON.parse(data.toString())))
  await once(ws, 'open')
  return { ws, next, closed }
}

/** prepare writes a BullMQ job hash as the benchmark does for the status and fan-out loads. */
async function prepare(redis, jobId) {
  await redis.hset(`bull:downloads:${jobId}`, {
    name: 'download', data: '{"file_ids":[70000,70007]}', opts: '{}', timestamp: '1764000000000',
    progress: '{"percent":50}',
  })
}

describe('node peer', () => {
  let redis
  let peer
  before(async () => {
    redis = await startRedis()
    peer = await startPeer({ REDIS_URL: redis.url })
  })
  after(async () => {
    peer?.proc.kill('SIGKILL')
    await redis?.stop()
  })

  it('answers /healthz', async () => {
    const res = await fetch(`${peer.url}/healthz`)
    assert.equal(res.status, 200)
  })

  it('queues one BullMQ job per initiate', async () => {
    const { status, body } = await post(peer, '{"file_ids": [70000, 70007]}')
    assert.equal(status, 202)
    assert.deepEqual(JSON.parse(await redis.client.hget(`bull:downloads:${body.job_id}`, 'data')), { file_ids: [70000, 70007] })
    assert.ok((await redis.client.lrange('bull:downloads:wait', 0, -1)).includes(body.job_id))
  })

  it('refuses bodies that are not 1 to 1000 positive integers', async () => {
    const queued = await redis.client.llen('bull:downloads:wait')
    const cases = [
      ['not JSON', 'file_ids=7', 400],
      ['a list', '[70000]', 400],
      ['null', 'null', 400],
      ['no file_ids', '{}', 400],
      ['no ids', '{"file_ids": []}', 400],
      ['too many ids', `{"file_ids": [${Array(MAX_FILES + 1).fill(7)}]}`, 400],
      ['zero', '{"file_ids": [70000, 0]}', 400],
      ['negative', '{"file_ids": [-7]}', 400],
      ['fraction', '{"file_ids": [7.5]}', 400],
      ['string', '{"file_ids": ["7"]}', 400],
      ['past 2^53', '{"file_ids": [9007199254740993]}', 400],
      ['over 64 KiB', `{"file_ids": [7], "pad": "${'x'.repeat(MAX_BODY_BYTES)}"}`, 413],
    ]
    for (const [name, body, want] of cases) {
      const got = await post(peer, body)
      assert.equal(got.status, want, `${name}: ${JSON.stringify(got.body)}`)
      assert.equal(typeof got.body.error, 'string', name)
    }
    assert.equal(await redis.client.llen('bull:downloads:wait'), queued, 'a refused body queued a job')
    const most = await post(peer, `{"file_ids": [${Array(MAX_FILES).fill(7)}]}`)
    assert.equal(most.status, 202, `${MAX_FILES} ids`)
  })

  it('answers the status of a prepared job, and 404 for an unknown one', async () => {
    await prepare(redis.client, 'status-1')
    const res = await fetch(`${peer.url}/v1/download/status/status-1`)
    assert.equal(res.status, 200)
    const body = await res.json()
    assert.deepEqual([body.job_id, body.data, body.progress], ['status-1', { file_ids: [70000, 70007] }, { percent: 50 }])
    assert.equal((await fetch(`${peer.url}/v1/download/status/status-2`)).status, 404)
  })

  it('fans one subscription of a job out to all its sockets', async () => {
    await prepare(redis.client, 'fan-1')
    await prepare(redis.client, 'fan-2')
    const [a, b, other] = [await watch(peer, 'fan-1'), await watch(peer, 'fan-1'), await watch(peer, 'fan-2')]
    for (const c of [a, b, other]) assert.equal((await c.next()).type, 'snapshot')
    assert.equal(await numsub(redis.client, channel('fan-1')), 1, 'two sockets on one job share one subscription')

    const event = { type: 'file', seq: 1, job_id: 'fan-1', file_id: 70007, percent: 62.5 }
    assert.equal(await redis.client.publish(channel('fan-1'), JSON.stringify(event)), 1)
    assert.deepEqual(await a.next(), event)
    assert.deepEqual(await b.next(), event)
    const fan2 = { type: 'file', seq: 1, job_id: 'fan-2', file_id: 70000, percent: 10 }
    await redis.client.publish(channel('fan-2'), JSON.stringify(fan2))
    assert.deepEqual(await other.next(), fan2, 'the other job\'s socket reads only its own job')

    a.ws.close()
    b.ws.close()
    await eventually('the last socket of fan-1 unsubscribes', async () => (await numsub(redis.client, channel('fan-1'))) === 0)
    other.ws.close()
  })

  it('closes the socket of an unknown job with 4404', async () => {
    const c = await watch(peer, 'no-such-job')
    assert.equal((await c.closed).code, 4404)
    await eventually('the unknown job unsubscribes', async () => (await numsub(redis.client, channel('no-such-job'))) === 0)
  })
})

describe('node peer settings', () => {
  let redis
  before(async () => {
    redis = await startRedis()
  })
  after(async () => {
    await redis?.stop()
  })

  it('subscribes to the channel CHANNEL_TEMPLATE names', async () => {
    const peer = await startPeer({ REDIS_URL: redis.url, CHANNEL_TEMPLATE: 'jobs:{id}:events' })
    try {
      await prepare(redis.client, 'tpl-1')
      const c = await watch(peer, 'tpl-1')
      assert.equal((await c.next()).type, 'snapshot')
      assert.equal(await numsub(redis.client, 'jobs:tpl-1:events'), 1)
      await redis.client.publish('jobs:tpl-1:events', '{"type":"job","seq":2}')
      assert.deepEqual(await c.next(), { type: 'job', seq: 2 })
      c.ws.close()
    } finally {
      peer.proc.kill('SIGKILL')
    }
  })

  it('closes its sockets with 1001 and exits 0 on SIGTERM', async () => {
    const peer = await startPeer({ REDIS_URL: redis.url })
    await prepare(redis.client, 'term-1')
    const c = await watch(peer, 'term-1')
    await c.next()
    peer.proc.kill('SIGTERM')
    assert.equal((await c.closed).code, 1001)
    assert.deepEqual(await peer.exited, [0, null])
  })

  it('refuses to start without REDIS_URL', async () => {
    const proc = spawn(process.execPath, ['server.js'], {
      cwd: here, env: { PATH: process.env.PATH }, stdio: ['ignore', 'ignore', 'pipe'],
    })
    let stderr = ''
    proc.stderr.on('data', (d) => { stderr += d })
    assert.deepEqual(await once(proc, 'exit'), [1, null])
    assert.match(stderr, /REDIS_URL is required/)
  })
})
