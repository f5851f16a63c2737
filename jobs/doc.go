// Package jobs holds the model of a download job and its store in Redis.
//
// The job record is the truth and events are its changes: every change of a job is one Lua
// script that updates the record, increments the job's seq and publishes the event carrying
// that seq on the job's channel. A reader that missed events re-reads the record, so nothing
// is lost even though pub/sub itself is fire-and-forget.
//
// Changes made by a worker are fenced by an attempt token: only the attempt that claimed the
// job last may change it, so an attempt that lost its lease cannot overwrite the state of
// the attempt that replaced it.
package jobs
