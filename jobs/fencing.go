//go:build !nofencing

package jobs

// fencedBody is the Lua that says whether an attempt's token is no longer the job's owner
// (see prelude): an attempt that another one replaced may not write.
const fencedBody = `return redis.call('HGET', job, 'owner') ~= token`
