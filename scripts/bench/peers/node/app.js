// The routes of the Node peer: what a user of Hono and BullMQ writes for the demo's three
// endpoints, with hand-written checks and no more machinery than the stack gives.
import { randomUUID } from 'node:crypto'
import { upgradeWebSocket } from '@hono/node-server'
import { Hono } from 'hono'
import { bodyLimit } from 'hono/body-limit'
import { HTTPException } from 'hono/http-exception'

/** The most files one job may have. */
export const MAX_FILES = 1000

/** The largest initiate body, in bytes. */
export const MAX_BODY_BYTES = 64 * 1024

/** How much a WebSocket client may fall behind before it is dropped, in bytes. */
const MAX_BACKLOG_BYTES = 1 << 20

/**
 * createApp returns the Hono app of the three routes and /healthz.
 * @param {{ queue: import('bullmq').Queue, fanout: import('./fanout.js').Fanout, log: Pick<Console, 'error'> }} deps
 */
export function createApp({ queue, fanout, log }) {
  const app = new Hono()

  app.get('/healthz', (c) => c.json({ status: 'ok' }))

  app.post(
    '/v1/download/initiate',
    bodyLimit({
      maxSize: MAX_BODY_BYTES,
      onError: (c) => c.json({ error: `the body must be at most ${MAX_BODY_BYTES} bytes` }, 413),
    }),
    async (c) => {
      let body
      try {
        body = await c.req.json()
      } catch {
        return c.json({ error: 'the body must be a JSON object with file_ids, a list of positive integers' }, 400)
      }
      const problem = checkInitiate(body)
      if (problem) return c.json({ error: problem }, 400)
      // A random id, so that one job's id does not tell another's.
      const job = await queue.add('download', { file_ids: body.file_ids }, { jobId: randomUUID() })
      return c.json({ job_id: job.id }, 202)
    },
  )

  app.get('/v1/download/status/:job_id', async (c) => {
    const job = await queue.getJob(c.req.param('job_id'))
    if (!job) return c.json({ error: 'no such job' }, 404)
    return c.json(jobBody(job))
  })

  app.get(
    '/ws/download/:job_id',
    upgradeWebSocket((c) => {
      const jobId = c.req.param('job_id')
      let watcher
      return {
        async onOpen(_event, ws) {
          watcher = new Watcher(ws)
          try {
            // Subscribe before reading, so that no event falls between the two.
            await fanout.watch(jobId, watcher)
            const job = await queue.getJob(jobId)
            if (!job) {
              ws.close(4404, 'no such job')
              return
            }
            watcher.start(JSON.stringify({ type: 'snapshot', job: jobBody(job) }))
          } catch (err) {
            log.error('watch failed', jobId, err)
            ws.close(1011, 'unavailable')
          }
        },
        onClose() {
          fanout.unwatch(jobId, watcher)
        },
      }
    }),
  )

  app.onError((err, c) => {
    if (err instanceof HTTPException) return err.getResponse()
    log.error(c.req.method, c.req.path, err)
    return c.json({ error: 'internal error' }, 500)
  })
  return app
}

/** checkInitiate says what is wrong with an initiate body, or returns null. */
export function checkInitiate(body) {
  if (typeof body !== 'object' || body === null || Array.isArray(body)) {
    return 'the body must be a JSON object with file_ids'
  }
  const ids = body.file_ids
  if (!Array.isArray(ids) || ids.length < 1 || ids.length > MAX_FILES) {
    return `file_ids must hold 1 to ${MAX_FILES} ids`
  }
  if (!ids.every((id) => Number.isSafeInteger(id) && id > 0)) {
    return 'file_ids must be positive integers'
  }
  return null
}

/** jobBody is what status and the snapshot tell of a BullMQ job. */
function jobBody(job) {
  return {
    job_id: job.id,
    data: job.data,
    progress: job.progress,
    attempts_made: job.attemptsMade,
    failed_reason: job.failedReason ?? null,
    return_value: job.returnvalue ?? null,
    created_at: job.timestamp ?? null,
    processed_on: job.processedOn ?? null,
    finished_on: job.finishedOn ?? null,
  }
}

/**
 * Watcher is one WebSocket client of a job. Messages that arrive before its snapshot
 * wait for it, so that a client always reads the snapshot first and misses nothing after.
 */
class Watcher {
  #ws
  #pending = []

  /** @param {import('hono/ws').WSContext} ws */
  constructor(ws) {
    this.#ws = ws
  }

  send(message) {
    if (this.#pending) this.#pending.push(message)
    else this.#write(message)
  }

  start(snapshot) {
    const pending = this.#pending
    this.#pending = null
    this.#write(snapshot)
    for (const message of pending) this.#write(message)
  }

  #write(message) {
    // A client that cannot keep up would hold ever more of this process's memory.
    if (this.#ws.raw.bufferedAmount > MAX_BACKLOG_BYTES) {
      this.#ws.raw.terminate()
      return
    }
    this.#ws.send(message)
  }
}
