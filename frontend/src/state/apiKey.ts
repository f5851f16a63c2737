// The API key the page holds. It lives in sessionStorage: the tab keeps it across reloads and
// forgets it when closed, other tabs and later visits never see it, and it is never written to
// localStorage or put in a URL.
import type { StorageLike } from './recentJobs';

const KEY = 'longhaul.apiKey';

/** KeyHolder keeps one API key in a tab's storage, or in memory when storage is disabled. */
export class KeyHolder {
  private readonly storage: StorageLike | null;
  private memory: string | null = null;

  /** storage should be the tab's sessionStorage; null keeps the key in memory only. */
  constructor(storage: StorageLike | null) {
    this.storage = storage;
    try {
      this.memory = storage?.getItem(KEY) || null;
    } catch {
      this.memory = null;
    }
  }

  /** get returns the key, or null when the page holds none. */
  get = (): string | null => this.memory;

  /** set keeps a key that the server accepted. */
  set(key: string): void {
    this.memory = key;
    try {
      this.storage?.setItem(KEY, key);
    } catch {
      // A full or disabled storage only costs a reload the key; memory still holds it.
    }
  }

  /** clear forgets the key, in memory and in storage. */
  clear(): void {
    this.memory = null;
    try {
      this.storage?.removeItem(KEY);
    } catch {
      // Nothing to forget in a storage that cannot be used.
    }
  }
}

/** tabStorage is the browser's sessionStorage, or null where the browser's settings disable it. */
export function tabStorage(): StorageLike | null {
  try {
    return window.sessionStorage;
  } catch {
    return null;
  }
}

/** API_KEY_STORAGE_KEY is the sessionStorage key, for tests that check where the key lives. */
export const API_KEY_STORAGE_KEY = KEY;
