import { useCallback, useEffect, useState, useSyncExternalStore } from 'react';
import type { FileEntry } from '../api/types';
import type { ConnectionStatus, JobConnection } from '../live/connection';
import type { JobStore, JobSummary } from '../state/jobStore';

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
  const [now, setNow] = useState(() => Date.now());
  useEffect(() => {
    if (!active) return;
    setNow(Date.now());
    const id = setInterval(() => setNow(Date.now()), intervalMs);
    return () => clearInterval(id);
  }, [intervalMs, active]);
  return now;
}
