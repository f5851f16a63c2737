// Saving a produced file. Without auth a plain link does it; with API keys a link cannot carry
// the key, so the page fetches the file with the key header and saves the Blob through a
// short-lived object URL, under the name the server gave in Content-Disposition.
import type { Api } from './client';

/** SaveDeps are the parts of the browser that saving a Blob needs. */
export interface SaveDeps {
  createObjectURL(blob: Blob): string;
  revokeObjectURL(url: string): void;
  /** follow has the browser save url under name, as a click on a download link would. */
  follow(url: string, name: string): void;
  setTimeout(fn: () => void, ms: number): unknown;
}

/**
 * REVOKE_AFTER_MS is how long an object URL outlives its click: the browser reads the Blob
 * after the click returns, so revoking at once could cut the download short.
 */
export const REVOKE_AFTER_MS = 10_000;

/** FileSaver saves produced files, through the key header when the server wants keys. */
export class FileSaver {
  private readonly api: Api;
  private readonly needsKey: () => boolean;
  private readonly deps: SaveDeps;

  /** needsKey reports whether the server wants keys right now. */
  constructor(api: Api, needsKey: () => boolean, deps: SaveDeps) {
    this.api = api;
    this.needsKey = needsKey;
    this.deps = deps;
  }

  /** viaFetch reports whether a file link must be fetched with the key instead of followed. */
  viaFetch(): boolean {
    return this.needsKey();
  }

  /** save fetches the file at url and saves it; it fails with the call's ApiError. */
  async save(url: string, fallbackName: string): Promise<void> {
    const { blob, filename } = await this.api.file(url);
    const objectUrl = this.deps.createObjectURL(blob);
    try {
      this.deps.follow(objectUrl, filename ?? fallbackName);
    } finally {
      this.deps.setTimeout(() => this.deps.revokeObjectURL(objectUrl), REVOKE_AFTER_MS);
    }
  }
}

/** browserSaveDeps are SaveDeps over the page's document and URL. */
export function browserSaveDeps(): SaveDeps {
  return {
    createObjectURL: (blob) => URL.createObjectURL(blob),
    revokeObjectURL: (url) => URL.revokeObjectURL(url),
    follow: (url, name) => {
      const a = document.createElement('a');
      a.href = url;
      a.download = name;
      a.hidden = true;
      document.body.append(a);
      a.click();
      a.remove();
    },
    setTimeout: (fn, ms) => window.setTimeout(fn, ms),
  };
}
