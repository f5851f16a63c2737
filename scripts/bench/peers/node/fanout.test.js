// Checks the Fanout's reference counts on a real Redis: a job's channel is subscribed once
// for all its watchers, and only until its last watcher leaves.
import assert from 'node:assert/strict'
import { after, before, it } from 'node:test'
import { Fanout } from './fanout.js'
import { numsub, startRedis } from './redistest.js'

/** recorder is a watcher that keeps what it is sent. */
function recorder() {
  const got = []
  return { got, send: (message) => got.push(message) }
}

let redis
let subscriber
let fanout
before(async () => {
  redis = await startRedis()
  subscriber = redis.client.duplicate()
  fanout = new Fanout(subscriber, (id) => `events:${id}`, console)
})
after(async () => {
  subscriber?.disconnect()
  await redis?.stop()
})

// settled waits until Redis has run every command sent on the subscriber connection so far.
const settled = () => subscriber.ping()

it('keeps one subscription per job while it has watchers', async () => {
  const [a, b, other] = [recorder(), recorder(), recorder()]
  await fanout.watch('j1', a)
  await fanout.watch('j1', b)
  await fanout.watch('j2', other)
  assert.equal(await numsub(redis.client, 'events:j1'), 1)

  assert.equal(await redis.client.publish('events:j1', 'one'), 1)
  await settled()
  assert.deepEqual([a.got, b.got, other.got], [['one'], ['one'], []])

  fanout.unwatch('j1', a)
  await settled()
  assert.equal(await numsub(redis.client, 'events:j1'), 1, 'b still watches j1')
  await redis.client.publish('events:j1', 'two')
  await settled()
  assert.deepEqual([a.got, b.got], [['one'], ['one', 'two']])

  fanout.unwatch('j1', b)
  fanout.unwatch('j1', b) // a second leave changes nothing
  await settled()
  assert.equal(await numsub(redis.client, 'events:j1'), 0, 'j1 has no watcher left')
  assert.equal(await numsub(redis.client, 'events:j2'), 1, 'j2 still has its watcher')

  await fanout.watch('j1', a)
  assert.equal(await numsub(redis.client, 'events:j1'), 1, 'a new watcher subscribes again')
})
