import { memo, useContext, useState } from 'react';
import { ApiError } from '../api/client';
import type { FileSaver } from '../api/download';
import { isTerminalFile, type FileEntry, type FileStatus } from '../api/types';
import { formatBytes, formatPercent } from '../lib/format';
import { fileStatusLabel, type JobStore } from '../state/jobStore';
import { AppContext, RenderProbe } from './context';
import { useFile } from './hooks';
import { ProgressBar } from './ProgressBar';

/** statusTone is the colour family of a file status. */
export function statusTone(s: FileStatus): 'active' | 'ok' | 'warn' | 'bad' | 'muted' {
  switch (s) {
    case 'ready':
      return 'ok';
    case 'unavailable':
      return 'warn';
    case 'failed':
      return 'bad';
    case 'canceled':
      return 'muted';
    default:
      return 'active';
  }
}

interface Props {
  store: JobStore;
  fileId: number;
}

/**
 * FileRow is one file of a job. It reads its own file from the store, so an event about one
 * file re-renders this row alone.
 */
export const FileRow = memo(function FileRow({ store, fileId }: Props) {
  const probe = useContext(RenderProbe);
  probe?.(fileId);
  const file = useFile(store, fileId);
  if (!file) return null;
  return <FileRowView file={file} />;
});

function FileRowView({ file }: { file: FileEntry }) {
  const label = fileStatusLabel(file.status);
  const tone = statusTone(file.status);
  const name = `File ${file.file_id}`;
  // A file that ended without being produced has no progress to show: its full bar at 100 %
  // would read as done. One muted strip with the outcome in words stands for chip, bar and percent.
  const unproduced = isTerminalFile(file.status) && file.status !== 'ready';
  return (
    <li className="file" data-file-id={file.file_id} data-status={file.status}>
      <span className="file-id">{file.file_id}</span>
      {unproduced ? (
        <span
          className={`outcome tone-${tone}`}
          role="progressbar"
          aria-label={name}
          aria-valuemin={0}
          aria-valuemax={100}
          aria-valuenow={file.percent}
          aria-valuetext={label}
        >
          {label}
        </span>
      ) : (
        <>
          <span className={`chip tone-${tone}`}>{label}</span>
          <ProgressBar percent={file.percent} label={name} detail={label.toLowerCase()} tone={tone} />
          <span className="file-percent">{formatPercent(file.percent)}</span>
        </>
      )}
      <span className="file-note">
        {file.status === 'ready' && file.download_url ? (
          <DownloadLink fileId={file.file_id} url={file.download_url} size={file.size} />
        ) : file.error ? (
          <span className="file-error" title={file.error}>
            {file.error}
          </span>
        ) : file.status === 'processing' && file.attempt && file.attempt > 1 ? (
          <span className="file-retry">try {file.attempt}</span>
        ) : null}
      </span>
    </li>
  );
}

interface DownloadProps {
  fileId: number;
  url: string;
  size: number | undefined;
}

/**
 * DownloadLink is a plain link to the file. When the server wants keys a link cannot carry
 * one, so a click fetches the file with the key and saves it instead.
 */
function DownloadLink({ fileId, url, size }: DownloadProps) {
  const files: FileSaver | null = useContext(AppContext)?.files ?? null;
  const [busy, setBusy] = useState(false);
  const [error, setError] = useState<string | null>(null);
  const sizeText = size ? formatBytes(size) : '';

  function onClick(e: React.MouseEvent) {
    if (!files?.viaFetch()) return; // the browser follows the link as always
    e.preventDefault();
    if (busy) return;
    setBusy(true);
    setError(null);
    files.save(url, `file-${fileId}`).then(
      () => setBusy(false),
      (err: unknown) => {
        setBusy(false);
        setError(downloadFailure(err));
      },
    );
  }

  if (error) {
    return (
      <span className="download-error" title={error}>
        <button type="button" className="link-button" onClick={() => setError(null)}>
          Retry
        </button>{' '}
        <span role="alert">{error}</span>
      </span>
    );
  }
  return (
    <a
      className="download"
      href={url}
      download
      onClick={onClick}
      aria-busy={busy || undefined}
      aria-label={`Download file ${fileId}${sizeText ? `, ${sizeText}` : ''}`}
    >
      {busy ? 'Downloading…' : 'Download'}
      {sizeText && !busy ? <span className="size"> {sizeText}</span> : null}
    </a>
  );
}

/** downloadFailure says in words why a file could not be saved. */
export function downloadFailure(err: unknown): string {
  if (err instanceof ApiError && err.status === 404) return 'This file is no longer available.';
  return err instanceof ApiError ? err.message : 'The file could not be downloaded.';
}
