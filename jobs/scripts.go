package jobs

import "github.com/redis/go-redis/v9"

// The scripts below are the only code that changes a job record once it exists. Each one
// runs atomically in Redis: it checks the job's state and the caller's attempt token,
// changes the record, increments seq and publishes the event with that seq, so readers of
// the record and listeners on the channel can never see the two disagree.
//
// Record layout (one hash per job): id, status, seq, created_at, updated_at, finished_at,
// error (JSON or empty), files (comma-separated ids in request order), owner (the attempt
// token that may write), attempts; and per file: f:<id> (its entry as JSON), s:<id> (its
// status) and p:<id> (its percent).
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
)

// prelude is shared by every script: KEYS[1] is the job's hash, KEYS[2] its channel.
const prelude = `
local job, channel = KEYS[1], KEYS[2]
local terminal = {ready=true, unavailable=true, failed=true, canceled=true, completed=true}

local function ids()
  local out = {}
  for id in string.gmatch(redis.call('HGET', job, 'files'), '[^,]+') do out[#out+1] = id end
  return out
end

local function round1(x) return math.floor(x * 10 + 0.5) / 10 end

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

-- emit takes the next seq and publishes an event; rest is its JSON after "job_id".
local function emit(kind, rest)
  local seq = redis.call('HINCRBY', job, 'seq', 1)
  redis.call('PUBLISH', channel, '{"type":"' .. kind .. '","seq":' .. seq .. ',"job_id":"' ..
    redis.call('HGET', job, 'id') .. '",' .. rest)
  return seq
end

local function setFile(id, status, percent, entry)
  redis.call('HSET', job, 's:' .. id, status, 'p:' .. id, percent, 'f:' .. id, entry)
  return emit('file', string.sub(entry, 2))
end

local function jobEvent(status, err)
  local p = progress()
  return emit('job', '"status":"' .. status .. '","progress":' .. p .. ',"error":' .. err .. '}')
end
`

// claimScript makes the caller's attempt the job's owner and moves a queued job to
// processing. ARGV: token, now.
var claimScript = redis.NewScript(prelude + `
local status = redis.call('HGET', job, 'status')
if not status then return -1 end
if terminal[status] then return -2 end
redis.call('HSET', job, 'owner', ARGV[1])
redis.call('HINCRBY', job, 'attempts', 1)
if status == 'queued' then
  redis.call('HSET', job, 'status', 'processing', 'updated_at', ARGV[2])
  jobEvent('processing', 'null')
end
return 1
`)

// updateFileScript sets one file's state for the owning attempt. A terminal file never
// changes again and a percent never goes backwards. A file that becomes ready is recorded
// in the audit list (KEYS[3]), which outlives the worker that made it.
// ARGV: token, file id, status, percent, entry JSON, now.
var updateFileScript = redis.NewScript(prelude + `
local status = redis.call('HGET', job, 'status')
if not status then return -1 end
if status ~= 'processing' then return -2 end
if redis.call('HGET', job, 'owner') ~= ARGV[1] then return -3 end
local id = ARGV[2]
local state = redis.call('HMGET', job, 's:' .. id, 'p:' .. id)
if not state[1] then return -6 end
if terminal[state[1]] then return -4 end
if tonumber(ARGV[4]) < tonumber(state[2]) then return -5 end
redis.call('HSET', job, 'updated_at', ARGV[6])
if ARGV[3] == 'ready' then
  redis.call('RPUSH', KEYS[3], id .. ' ' .. ARGV[1])
  redis.call('PEXPIRE', KEYS[3], redis.call('PTTL', job))
end
return setFile(id, ARGV[3], ARGV[4], ARGV[5])
`)

// finishScript ends a job. Mode "complete" needs every file terminal and ends completed
// when a file is ready, failed (with ARGV[5]) otherwise. Mode "fail" ends the files still
// open as failed with the error ARGV[6] (a JSON string) and the job failed with ARGV[5].
// Mode "abandon" does the same for a job whose task was given up without its attempt
// knowing, and needs no token; mode "cancel" ends the files still open as canceled and
// needs no token. The record then expires after the retention. ARGV: mode, token, now,
// retention in seconds, job error JSON, file error JSON.
var finishScript = redis.NewScript(prelude + `
local status = redis.call('HGET', job, 'status')
if not status then return -1 end
if terminal[status] then return -2 end
local mode = ARGV[1]
local fenced = mode == 'complete' or mode == 'fail'
local failing = mode == 'fail' or mode == 'abandon'
if fenced and redis.call('HGET', job, 'owner') ~= ARGV[2] then return -3 end
local open = {}
for _, id in ipairs(ids()) do
  if not terminal[redis.call('HGET', job, 's:' .. id)] then open[#open+1] = id end
end
local final, err = 'canceled', 'null'
if mode == 'complete' then
  if #open > 0 then return -7 end
  local _, ready = progress()
  if ready > 0 then final = 'completed' else final, err = 'failed', ARGV[5] end
elseif failing then
  final, err = 'failed', ARGV[5]
end
local fileStatus = failing and 'failed' or 'canceled'
for _, id in ipairs(open) do
  local entry = '{"file_id":' .. id .. ',"status":"' .. fileStatus .. '","percent":100'
  if failing then entry = entry .. ',"error":' .. ARGV[6] end
  setFile(id, fileStatus, 100, entry .. '}')
end
redis.call('HSET', job, 'status', final, 'error', err == 'null' and '' or err,
  'updated_at', ARGV[3], 'finished_at', ARGV[3])
jobEvent(final, err)
redis.call('EXPIRE', job, ARGV[4])
if redis.call('EXISTS', KEYS[3]) == 1 then redis.call('EXPIRE', KEYS[3], ARGV[4]) end
return final
`)
