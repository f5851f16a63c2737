package jobs

import (
	"strings"

	"github.com/redis/go-redis/v9"
)

// The scripts below are the only code that changes a job record once it exists. Each one
// runs atomically in Redis: it checks the job's state and the caller's attempt token,
// changes the record, increments seq and publishes the event with that seq, so readers of
// the record and listeners on the channel can never see the two disagree.
//
// Record layout (one hash per job): id, status, seq, created_at, updated_at, finished_at,
// error (JSON or empty), files (comma-separated ids in request order), principal (who
// created it), owner (the attempt token that may write), attempts, idempotency_key (the
// name of its key, if it has one), task (the id of the asynq task that may run it: the job
// id, or a rescue's), enqueued ("1" once its task is known to have been queued),
// heartbeat_at (ms: the last sign of life of its running attempt), waiting (JSON, or empty:
// why it waits for a worker); when it has a callback, cb_url, cb_events (comma-separated),
// cb_state, cb_attempts and cb_error (the delivery of its end) and cb_rev (how many times
// those changed); and per file: f:<id> (its entry as JSON), s:<id> (its status)
// and p:<id> (its percent).
//
// Return codes shared by the scripts, read by scriptError.
const (
	codeNotFound     = -1
	codeFinished     = -2
	codeFenced       = -3
	codeFileFinished = -4
	codeBackwards    = -5
	codeNotAFile     = -6
	codeUnfinished   = -7
	codeIDTaken      = -8
	codeSuperseded   = -9
)

// prelude is shared by every script that changes a job: KEYS[1] is the job's hash, KEYS[2]
// its channel, KEYS[3] its audit list and KEYS[4] its group's index of unfinished jobs.
const prelude = `
local job, channel, unfinished = KEYS[1], KEYS[2], KEYS[4]
local terminal = {ready=true, unavailable=true, failed=true, canceled=true, completed=true}

local function ids()
  local out = {}
  for id in string.gmatch(redis.call('HGET', job, 'files'), '[^,]+') do out[#out+1] = id end
  return out
end

local function round1(x) return math.floor(x * 10 + 0.5) / 10 end

-- fenced says that the attempt with this token no longer owns the job: its writes are refused.
local function fenced(token) ` + fencedBody + ` end

-- progress sums up the files as jobs.ProgressOf does, as JSON.
local function progress()
  local all = ids()
  local done, ready, unavailable, failed, sum = 0, 0, 0, 0, 0
  for _, id in ipairs(all) do
    local state = redis.call('HMGET', job, 's:' .. id, 'p:' .. id)
    local s = state[1]
    sum = sum + tonumber(state[2])
    if terminal[s] then done = done + 1 end
    if s == 'ready' then ready = ready + 1
    elseif s == 'unavailable' then unavailable = unavailable + 1
    elseif s == 'failed' then failed = failed + 1 end
  end
  local percent = 0
  if #all > 0 then percent = round1(sum / #all) end
  return '{"percent":' .. tostring(percent) .. ',"files_total":' .. #all .. ',"files_done":' .. done ..
    ',"files_ready":' .. ready .. ',"files_unavailable":' .. unavailable .. ',"files_failed":' .. failed .. '}',
    ready
end

-- above continues the record above floor, the highest seq its writer has been given, in
-- the epoch named epoch, when it is below it: writes were lost (a failover, a crash of Redis
-- within its AOF second), clients may have seen them, and the writes that follow would
-- reuse their seqs in the same epoch. No floor ('') leaves the record as it is.
local function above(floor, epoch)
  floor = tonumber(floor)
  if floor and tonumber(redis.call('HGET', job, 'seq')) < floor then
    redis.call('HSET', job, 'seq', floor, 'epoch', epoch)
  end
end

-- emit takes the next seq and publishes an event; rest is its JSON after "job_id".
local function emit(kind, rest)
  local seq = redis.call('HINCRBY', job, 'seq', 1)
  local epoch = redis.call('HGET', job, 'epoch') or ''
  redis.call('PUBLISH', channel, '{"type":"' .. kind .. '","seq":' .. seq .. ',"epoch":"' .. epoch ..
    '","job_id":"' .. redis.call('HGET', job, 'id') .. '",' .. rest)
  return seq
end

local function setFile(id, status, percent, entry)
  redis.call('HSET', job, 's:' .. id, status, 'p:' .. id, percent, 'f:' .. id, entry)
  return emit('file', string.sub(entry, 2))
end

-- jobEvent publishes the job's state; waiting is JSON, null when the job does not wait.
local function jobEvent(status, err, waiting)
  local p = progress()
  return emit('job', '"status":"' .. status .. '","progress":' .. p .. ',"error":' .. err ..
    ',"waiting":' .. (waiting or 'null') .. '}')
end

-- alive records a sign of life of the running attempt at now (ms); a job that was said to
-- wait for a worker says it no longer does.
local function alive(now)
  redis.call('HSET', job, 'heartbeat_at', now)
  local waiting = redis.call('HGET', job, 'waiting')
  if waiting and waiting ~= '' then
    redis.call('HSET', job, 'waiting', '')
    jobEvent('processing', 'null', 'null')
  end
end
`

// createBody stores a new queued job, its idempotency key and its entry in its group's
// index of unfinished jobs, or, when the idempotency key is held already, returns what it
// holds: {1} for a new job, {0, "<job id> <fingerprint>"} for a held key. The files' entries
// are built here from the ids, which keeps the request small for jobs of many files.
// KEYS: job, idempotency key, unfinished index. ARGV: id, file ids (comma-separated),
// principal, now (RFC 3339), now (ms), TTL (ms), has idempotency key (1/0), fingerprint,
// epoch, callback URL (or empty), callback events.
const createBody = `
local job, idem, unfinished = KEYS[1], KEYS[2], KEYS[3]
local id, files, ttl = ARGV[1], ARGV[2], ARGV[6]
if ARGV[7] == '1' then
  local held = redis.call('GET', idem)
  if held then return {0, held} end
end
if redis.call('EXISTS', job) == 1 then return {-8} end
redis.call('HSET', job, 'id', id, 'status', 'queued', 'seq', 0, 'created_at', ARGV[4],
  'updated_at', ARGV[4], 'attempts', 0, 'files', files, 'principal', ARGV[3], 'task', id, 'epoch', ARGV[9])
local fields, n = {}, 0
for fid in string.gmatch(files, '[^,]+') do
  fields[n+1], fields[n+2] = 'f:' .. fid, '{"file_id":' .. fid .. ',"status":"queued","percent":0}'
  fields[n+3], fields[n+4] = 's:' .. fid, 'queued'
  fields[n+5], fields[n+6] = 'p:' .. fid, 0
  n = n + 6
  -- unpack has a limit on its arguments: write in batches.
  if n >= 600 then redis.call('HSET', job, unpack(fields, 1, n)); n = 0 end
end
if n > 0 then redis.call('HSET', job, unpack(fields, 1, n)) end
if ARGV[10] ~= '' then
  redis.call('HSET', job, 'cb_url', ARGV[10], 'cb_events', ARGV[11], 'cb_state', 'pending', 'cb_attempts', 0, 'cb_error', '')
end
if ARGV[7] == '1' then
  redis.call('HSET', job, 'idempotency_key', idem)
  redis.call('SET', idem, id .. ' ' .. ARGV[8], 'PX', ttl)
end
redis.call('PEXPIRE', job, ttl)
redis.call('ZADD', unfinished, ARGV[5], id)
redis.call('PEXPIRE', unfinished, ttl)
return {1}
`

// deleteBody removes a job, its audit, its idempotency key and its index entry.
// KEYS: job, audit, unfinished index. ARGV: id.
const deleteBody = `
local idem = redis.call('HGET', KEYS[1], 'idempotency_key')
if idem then redis.call('DEL', idem) end
redis.call('DEL', KEYS[1], KEYS[2])
redis.call('ZREM', KEYS[3], ARGV[1])
return 1
`

// claimBody makes the caller's attempt the job's owner and moves a queued job to
// processing, unless the caller's task is not the job's: a task a rescue replaced comes
// back from asynq's recovery long after, and must not take the job from the rescue.
// ARGV: token, now, task id, now (ms).
const claimBody = prelude + `
local status = redis.call('HGET', job, 'status')
if not status then return -1 end
if terminal[status] then return -2 end
local task = redis.call('HGET', job, 'task')
if task and task ~= ARGV[3] then return -9 end
redis.call('HSET', job, 'owner', ARGV[1], 'enqueued', '1')
redis.call('HINCRBY', job, 'attempts', 1)
if status == 'queued' then
  redis.call('HSET', job, 'status', 'processing', 'updated_at', ARGV[2], 'heartbeat_at', ARGV[4])
  jobEvent('processing', 'null', 'null')
else
  alive(ARGV[4])
end
return 1
`

// heartbeatBody is a sign of life of the owning attempt; it returns the job's seq. ARGV:
// token, now (ms), the attempt's floor and a new epoch (see above).
const heartbeatBody = prelude + `
local status = redis.call('HGET', job, 'status')
if not status then return -1 end
if status ~= 'processing' then return -2 end
if fenced(ARGV[1]) then return -3 end
above(ARGV[3], ARGV[4])
alive(ARGV[2])
return tonumber(redis.call('HGET', job, 'seq'))
`

// waitBody says that a running job waits for a worker, unless its attempt showed a sign
// of life since staleBefore or it says so already: 1 when it now does, 0 when not.
// ARGV: stale before (ms), waiting JSON, now.
const waitBody = prelude + `
if redis.call('HGET', job, 'status') ~= 'processing' then return 0 end
if (tonumber(redis.call('HGET', job, 'heartbeat_at')) or 0) >= tonumber(ARGV[1]) then return 0 end
local waiting = redis.call('HGET', job, 'waiting')
if waiting and waiting ~= '' then return 0 end
redis.call('HSET', job, 'waiting', ARGV[2], 'updated_at', ARGV[3])
jobEvent('processing', 'null', ARGV[2])
return 1
`

// regressedBody repairs a record that lost writes someone saw (a failover, or a Redis
// crash within the AOF second): when its seq is below the one seen, it takes a new epoch
// and a seq above the one seen, and publishes the job's state, so that every client, whether
// it follows the epoch or only seq, takes the record as it is now instead of waiting for a
// seq that will never come. 1 when it repaired, 0 when the record had not regressed.
// ARGV: seq seen, new epoch.
const regressedBody = prelude + `
local status = redis.call('HGET', job, 'status')
if not status then return -1 end
if tonumber(redis.call('HGET', job, 'seq')) >= tonumber(ARGV[1]) then return 0 end
redis.call('HSET', job, 'seq', ARGV[1], 'epoch', ARGV[2])
local err = redis.call('HGET', job, 'error')
if not err or err == '' then err = 'null' end
local waiting = redis.call('HGET', job, 'waiting')
if not waiting or waiting == '' then waiting = 'null' end
jobEvent(status, err, waiting)
return 1
`

// handOverBody makes task to the job's task in place of from (a rescue of a task whose
// worker was lost): 1 when it did, 0 when the job's task is another already.
// ARGV: from, to.
const handOverBody = prelude + `
local status = redis.call('HGET', job, 'status')
if not status then return -1 end
if terminal[status] then return -2 end
if (redis.call('HGET', job, 'task') or redis.call('HGET', job, 'id')) ~= ARGV[1] then return 0 end
redis.call('HSET', job, 'task', ARGV[2])
return 1
`

// updateFileBody sets one file's state for the owning attempt, a sign of life too. A
// terminal file never changes again and a percent never goes backwards. A file that
// becomes ready is recorded in the audit list (KEYS[3]), which outlives the worker that
// made it. It returns the file event's seq. ARGV: token, file id, status, percent, entry
// JSON, now, now (ms), the attempt's floor and a new epoch (see above).
const updateFileBody = prelude + `
local status = redis.call('HGET', job, 'status')
if not status then return -1 end
if status ~= 'processing' then return -2 end
if fenced(ARGV[1]) then return -3 end
local id = ARGV[2]
local state = redis.call('HMGET', job, 's:' .. id, 'p:' .. id)
if not state[1] then return -6 end
if terminal[state[1]] then return -4 end
if tonumber(ARGV[4]) < tonumber(state[2]) then return -5 end
above(ARGV[8], ARGV[9])
redis.call('HSET', job, 'updated_at', ARGV[6])
alive(ARGV[7])
if ARGV[3] == 'ready' then
  redis.call('RPUSH', KEYS[3], id .. ' ' .. ARGV[1])
  redis.call('PEXPIRE', KEYS[3], redis.call('PTTL', job))
end
return setFile(id, ARGV[3], ARGV[4], ARGV[5])
`

// finishBody ends a job. Mode "complete" needs every file terminal and ends completed
// when a file is ready, failed (with ARGV[5]) otherwise. Mode "fail" ends the files still
// open as failed with the error ARGV[6] (a JSON string) and the job failed with ARGV[5].
// Mode "abandon" does the same for a job whose task was given up without its attempt
// knowing, and needs no token; mode "cancel" ends the files still open as canceled and
// needs no token; its error (ARGV[5]) is null unless the job was canceled for a reason
// other than its owner's wish (an operator's cancel in the dashboard). The record expires after the retention, and leaves its group's
// index. It returns {1, final status, idempotency key name or ""}. ARGV: mode, token, now,
// retention in seconds, job error JSON, file error JSON, and for the owner's modes its floor
// and a new epoch (see above).
const finishBody = prelude + `
local status = redis.call('HGET', job, 'status')
if not status then return {-1} end
if terminal[status] then return {-2} end
local mode = ARGV[1]
local byOwner = mode == 'complete' or mode == 'fail'
local failing = mode == 'fail' or mode == 'abandon'
if byOwner and fenced(ARGV[2]) then return {-3} end
if byOwner then above(ARGV[7], ARGV[8]) end
local open = {}
for _, id in ipairs(ids()) do
  if not terminal[redis.call('HGET', job, 's:' .. id)] then open[#open+1] = id end
end
local final, err = 'canceled', ARGV[5]
if mode == 'complete' then
  if #open > 0 then return {-7} end
  local _, ready = progress()
  if ready > 0 then final, err = 'completed', 'null' else final = 'failed' end
elseif failing then
  final = 'failed'
end
local fileStatus = failing and 'failed' or 'canceled'
for _, id in ipairs(open) do
  local entry = '{"file_id":' .. id .. ',"status":"' .. fileStatus .. '","percent":100'
  if failing then entry = entry .. ',"error":' .. ARGV[6] end
  setFile(id, fileStatus, 100, entry .. '}')
end
redis.call('HSET', job, 'status', final, 'error', err == 'null' and '' or err,
  'updated_at', ARGV[3], 'finished_at', ARGV[3], 'waiting', '')
jobEvent(final, err, 'null')
redis.call('EXPIRE', job, ARGV[4])
if redis.call('EXISTS', KEYS[3]) == 1 then redis.call('EXPIRE', KEYS[3], ARGV[4]) end
redis.call('ZREM', unfinished, redis.call('HGET', job, 'id'))
return {1, final, redis.call('HGET', job, 'idempotency_key') or ''}
`

// deliveryBody records the delivery state of a job's end, unless the record is gone or
// holds a later attempt's already; cb_rev counts these writes, which change the status body
// but not seq (see Version). KEYS: job. ARGV: state, attempt, last error.
const deliveryBody = `
if redis.call('EXISTS', KEYS[1]) == 0 then return -1 end
if tonumber(ARGV[2]) < (tonumber(redis.call('HGET', KEYS[1], 'cb_attempts')) or 0) then return 0 end
redis.call('HSET', KEYS[1], 'cb_state', ARGV[1], 'cb_attempts', ARGV[2], 'cb_error', ARGV[3])
redis.call('HINCRBY', KEYS[1], 'cb_rev', 1)
return 1
`

// peekBody reads a job unless the caller holds its current state: then it returns only
// {0, seq, epoch, principal, cb_rev}, else {1, the record as HGETALL gives it}, or {-1} when
// there is no such job. One round trip either way, and a caller that holds the state decodes
// nothing. A state is named by its tag: seq, and ".cb_rev" after it once the delivery of a
// callback changed (see Version.Tag).
// KEYS: job. ARGV: tags a client holds (comma-separated, or "*" for any), tag and epoch of
// a state the caller keeps (or "" and "").
const peekBody = `
local h = redis.call('HMGET', KEYS[1], 'seq', 'epoch', 'principal', 'cb_rev')
if not h[1] then return {-1} end
local seq, epoch, rev = h[1], h[2] or '', h[4] or '0'
local tag = seq
if rev ~= '0' then tag = seq .. '.' .. rev end
local held = ARGV[1] == '*' or (ARGV[2] == tag and ARGV[3] == epoch and epoch ~= '')
for t in string.gmatch(ARGV[1], '[^,]+') do
  if t == tag then held = true end
end
if held then return {0, seq, epoch, h[3] or '', rev} end
return {1, redis.call('HGETALL', KEYS[1])}
`

// scripts are the store's scripts, as one Redis deployment runs them: events go out with
// PUBLISH, or with SPUBLISH on a Redis Cluster, where a shard channel reaches only the shard
// of its job (classic PUBLISH is broadcast to every node of a cluster).
type scripts struct {
	create, delete, claim, heartbeat, wait, handOver, updateFile, finish, regressed, delivery, peek *redis.Script
}

func newScripts(sharded bool) scripts {
	script := func(body string) *redis.Script {
		if sharded {
			body = strings.ReplaceAll(body, "redis.call('PUBLISH'", "redis.call('SPUBLISH'")
		}
		return redis.NewScript(body)
	}
	return scripts{create: script(createBody), delete: script(deleteBody), claim: script(claimBody),
		heartbeat: script(heartbeatBody), wait: script(waitBody), handOver: script(handOverBody),
		updateFile: script(updateFileBody), finish: script(finishBody), regressed: script(regressedBody),
		delivery: script(deliveryBody), peek: script(peekBody)}
}
