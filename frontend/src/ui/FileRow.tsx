import { memo, useContext } from 'react';
import type { FileEntry, FileStatus } from '../api/types';
import { formatBytes, formatPercent } from '../lib/format';
import { fileStatusLabel, type JobStore } from '../state/jobStore';
import { RenderProbe } from './context';
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
  return (
    <li className="file" data-file-id={file.file_id} data-status={file.status}>
      <span className="file-id">{file.file_id}</span>
      <span className={`chip tone-${tone}`}>{label}</span>
      <ProgressBar percent={file.percent} label={name} detail={label.toLowerCase()} tone={tone} />
      <span className="file-percent">{formatPercent(file.percent)}</span>
      <span className="file-note">
        {file.status === 'ready' && file.download_url ? (
          <a
            className="download"
            href={file.download_url}
            download
            aria-label={`Download file ${file.file_id}${file.size ? `, ${formatBytes(file.size)}` : ''}`}
          >
            Download{file.size ? <span className="size"> {formatBytes(file.size)}</span> : null}
          </a>
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
