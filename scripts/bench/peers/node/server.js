// The benchmark's Node peer: the original demo's stack (Hono on @hono/node-server, BullMQ,
// ws, ioredis) serving the demo's three routes. See README.md for its settings.
import { serve } from '@hono/node-server'
import { Queue } from 'bullmq'
import { Redis } from 'ioredis'
import { WebSocketServer } from 'ws'
import { createApp } from './app.js'
import { Fanout } from './fanout.js'

/** The channel of a job's events: longhaul's, so the benchmark's events reach this peer too. */
const DEFAULT_CHANNEL_TEMPLATE = 'longhaul:{{group}}:events:{id}'

/** How often every WebSocket client is pinged; one that missed the last ping is dropped. */
const PING_INTERVAL_MS = 30_000

/**
 * How long an idle keep-alive connection stays open: longhaul's two minutes, where Node's
 * default of 5 s would close the benchmark's clients between its rounds.
 */
const KEEP_ALIVE_MS = 120_000

/** How long shutting down may take before the clients left are cut off. */
const SHUTDOWN_GRACE_MS = 5_000

/** channelOf names the channel of job id: {id} is the id, {group} its last two characters (longhaul's hash tag). */
function channelOf(template, id) {
  return template.replaceAll('{group}', id.slice(-2)).replaceAll('{id}', id)
}

/** readConfig reads the settings from env, and throws on one it cannot use. */
function readConfig(env) {
  if (!env.REDIS_URL) throw new Error('REDIS_URL is required, like redis://127.0.0.1:6379/0')
  const channelTemplate = env.CHANNEL_TEMPLATE || DEFAULT_CHANNEL_TEMPLATE
  if (!channelTemplate.includes('{id}')) throw new Error(`CHANNEL_TEMPLATE ${JSON.stringify(channelTemplate)} has no {id}`)
  return { redisURL: env.REDIS_URL, channelTemplate, ...listenAddress(env) }
}

/** listenAddress is ADDR (host:port), else PORT on the loopback interface, else a free loopback port. */
function listenAddress(env) {
  let hostname = '127.0.0.1'
  let port = env.PORT || '0'
  if (env.ADDR) {
    const colon = env.ADDR.lastIndexOf(':')
    if (colon < 0) throw new Error(`ADDR ${JSON.stringify(env.ADDR)} is not host:port`)
    hostname = env.ADDR.slice(0, colon).replace(/^\[(.*)\]$/, '$1') || undefined
    port = env.ADDR.slice(colon + 1)
  }
  if (!/^\d+$/.test(port) || Number(port) > 65535) throw new Error(`port ${JSON.stringify(port)} is not a TCP port`)
  return { hostname, port: Number(port) }
}

/** displayAddress is an address a person can click: the loopback one for a wildcard listener. */
function displayAddress({ address, family, port }) {
  if (address === '::' || address === '0.0.0.0') return `localhost:${port}`
  return family === 'IPv6' ? `[${address}]:${port}` : `${address}:${port}`
}

function main() {
  let config
  try {
    config = readConfig(process.env)
  } catch (err) {
    console.error(`node-peer: ${err.message}`)
    process.exit(1)
  }
  const redis = new Redis(config.redisURL)
  // A connection in subscriber mode takes no other commands.
  const subscriber = redis.duplicate()
  for (const [name, conn] of [['redis', redis], ['subscriber', subscriber]]) {
    conn.on('error', (err) => console.error(`${name}: ${err.message}`))
  }
  const queue = new Queue('downloads', {
    connection: redis,
    // Finished jobs leave Redis after a day rather than pile up.
    defaultJobOptions: { removeOnComplete: { age: 86_400 }, removeOnFail: { age: 86_400 } },
  })
  const fanout = new Fanout(subscriber, (id) => channelOf(config.channelTemplate, id), console)
  const app = createApp({ queue, fanout, log: console })

  const wss = new WebSocketServer({ noServer: true })
  wss.on('connection', (ws) => {
    ws.isAlive = true
    ws.on('pong', () => {
      ws.isAlive = true
    })
  })
  const heartbeat = setInterval(() => {
    for (const ws of wss.clients) {
      if (!ws.isAlive) {
        ws.terminate()
        continue
      }
      ws.isAlive = false
      ws.ping()
    }
  }, PING_INTERVAL_MS)

  const server = serve(
    { fetch: app.fetch, hostname: config.hostname, port: config.port, websocket: { server: wss } },
    (info) => console.log(`node-peer listening on http://${displayAddress(info)}`),
  )
  server.keepAliveTimeout = KEEP_ALIVE_MS
  server.on('error', (err) => {
    console.error(`node-peer: ${err.message}`)
    process.exit(1)
  })

  let stopping = false
  const shutdown = async () => {
    if (stopping) return
    stopping = true
    clearInterval(heartbeat)
    for (const ws of wss.clients) ws.close(1001, 'server shutting down')
    const cutOff = setTimeout(() => {
      for (const ws of wss.clients) ws.terminate()
      server.closeAllConnections()
    }, SHUTDOWN_GRACE_MS)
    // close stops accepting and resolves once every connection has ended.
    await new Promise((resolve) => server.close(resolve))
    clearTimeout(cutOff)
    await queue.close()
    await Promise.allSettled([subscriber.quit(), redis.quit()])
    process.exit(0)
  }
  process.once('SIGTERM', shutdown)
  process.once('SIGINT', shutdown)
}

main()
