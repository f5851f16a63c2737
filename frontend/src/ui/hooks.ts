import { useCallback, useEffect, useState, useSyncExternalStore } from 'react';
import { ApiError } from '../api/client';
import type { FileEntry } from '../api/types';
import type { ConnectionStatus, JobConnection } from '../live/connection';
import type { Auth, AuthState } from '../state/auth';
import type { JobStore, JobSummary } from '../state/jobStore';
import { useApp } from './context';

/** useSummary is the job's summary; it re-renders on every change of the job. */
export function useSummary(store: JobStore): JobSummary {
  return useSyncExternalStore(store.subscribe, store.getSummary);
}

/** useSummaryPart re-renders only when the selected part of the summary changes. */
export function useSummaryPart<T>(store: JobStore, select: (s: JobSummary) => T): T {
  const get = useCallback(() => select(store.getSummary()), [store, select]);
  return useSyncExternalStore(store.subscribe, get);
}

/** useFile is one file's state; it re-renders only when that file changes. */
export function useFile(store: JobStore, fileId: number): FileEntry | undefined {
  const subscribe = useCallback((cb: () => void) => store.subscribeFile(fileId, cb), [store, fileId]);
  const get = useCallback(() => store.getFile(fileId), [store, fileId]);
  return useSyncExternalStore(subscribe, get);
}

/** useConnection is the connection's status as the page shows it. */
export function useConnection(conn: JobConnection): ConnectionStatus {
  return useSyncExternalStore(conn.subscribe, conn.getStatus);
}

/** useNow is the current time, refreshed every intervalMs while active. */
export function useNow(intervalMs: number, active: boolean): number {
  const { clock } = useApp();
  const [now, setNow] = useState(clock);
  useEffect(() => {
    if (!active) return;
    setNow(clock());
    const id = setInterval(() => setNow(clock()), intervalMs);
    return () => clearInterval(id);
  }, [intervalMs, active, clock]);
  return now;
}

/** useAuth is the page's access to the server as the key prompt and the header show it. */
export function useAuth(auth: Auth): AuthState {
  return useSyncExternalStore(auth.subscribe, auth.getState);
}

/** RetryAfter is when a refused form may be sent again (after a 429), counting down each second. */
export interface RetryAfter {
  /** When the next try is allowed (local clock, ms); null when the server asked for no wait. */
  readonly at: number | null;
  /** Whether the wait is still on. */
  readonly waiting: boolean;
  readonly now: number;
  /** note takes the wait a failed call asked for; any other failure ends the wait. */
  note(err: unknown): void;
}

/** useRetryAfter keeps the wait that a 429's Retry-After asks for. */
export function useRetryAfter(): RetryAfter {
  const { clock } = useApp();
  const [at, setAt] = useState<number | null>(null);
  const now = useNow(1000, at !== null && clock() < at);
  const note = useCallback((err: unknown) => {
    const ms = err instanceof ApiError && err.status === 429 ? err.retryAfterMs : null;
    setAt(ms === null ? null : clock() + ms);
  }, [clock]);
  return { at, waiting: at !== null && now < at, now, note };
}
