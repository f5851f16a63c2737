import { memo } from 'react';
import type { JobStore, JobSummary } from '../state/jobStore';
import { FileRow } from './FileRow';
import { useSummaryPart } from './hooks';

const selectIds = (s: JobSummary) => s.fileIds;

/** FileList lists the files of a job; it re-renders only when the set of files changes. */
export const FileList = memo(function FileList({ store }: { store: JobStore }) {
  const ids = useSummaryPart(store, selectIds);
  if (ids.length === 0) return null;
  return (
    <section className="card files-card" aria-labelledby="files-heading">
      <h2 id="files-heading">
        Files <span className="count">({ids.length})</span>
      </h2>
      <ol className="files">
        {ids.map((id) => (
          <FileRow key={id} store={store} fileId={id} />
        ))}
      </ol>
    </section>
  );
});
