// Fanout forwards Redis pub/sub messages to WebSocket clients over one subscriber
// connection for the whole process: a job's channel is subscribed while at least one
// client watches the job, and unsubscribed when its last client leaves.
export class Fanout {
  #subscriber
  #channelOf
  #log
  // channel -> { watchers: Set of { send(message) }, subscribed: Promise of the SUBSCRIBE }
  #channels = new Map()

  /**
   * @param {import('ioredis').Redis} subscriber a connection for this Fanout alone
   * @param {(jobId: string) => string} channelOf the channel of a job's events
   * @param {Pick<Console, 'error'>} log where failures go
   */
  constructor(subscriber, channelOf, log) {
    this.#subscriber = subscriber
    this.#channelOf = channelOf
    this.#log = log
    subscriber.on('message', (channel, message) => {
      const entry = this.#channels.get(channel)
      if (!entry) return
      for (const watcher of entry.watchers) watcher.send(message)
    })
  }

  /**
   * Adds a watcher of a job. It resolves once the job's channel is subscribed, so that
   * anything read after it cannot miss a message published later.
   */
  async watch(jobId, watcher) {
    const channel = this.#channelOf(jobId)
    let entry = this.#channels.get(channel)
    if (!entry) {
      const created = { watchers: new Set() }
      created.subscribed = this.#subscriber.subscribe(channel).catch((err) => {
        // The next watcher tries again rather than wait on a failed subscription.
        if (this.#channels.get(channel) === created) this.#channels.delete(channel)
        throw err
      })
      this.#channels.set(channel, created)
      entry = created
    }
    entry.watchers.add(watcher)
    await entry.subscribed
  }

  /** Removes a watcher, and the job's subscription with its last watcher. */
  unwatch(jobId, watcher) {
    const channel = this.#channelOf(jobId)
    const entry = this.#channels.get(channel)
    if (!entry || !entry.watchers.delete(watcher) || entry.watchers.size > 0) return
    this.#channels.delete(channel)
    // Redis runs the connection's commands in order: a SUBSCRIBE of a new watcher sent
    // after this still ends subscribed.
    this.#subscriber.unsubscribe(channel).catch((err) => this.#log.error('unsubscribe failed', channel, err))
  }
}
