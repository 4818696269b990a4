/** A file picker drawn as a drop zone: the chosen names under it; choosing the same file again still fires. */
export function FileDrop({ id, accept, files, setFiles, testId, namesTestId }: { id: string; accept: string; files: File[]; setFiles: (f: File[]) => void; testId: string; namesTestId?: string }) {
  return (
    <div className="field">
      <label className="dropzone" htmlFor={id}>
        <input
          id={id}
          type="file"
          multiple
          accept={accept}
          className="visually-hidden"
          data-testid={testId}
          onChange={(e) => {
            const chosen = Array.from(e.target.files ?? []);
            e.target.value = '';
            if (chosen.length) setFiles(chosen);
          }}
        />
        <span className="dropzone-title">Choose files…</span>
        <span className="hint" data-testid={namesTestId}>
          {files.length ? files.map((f) => f.name).join(', ') : 'none chosen'}
        </span>
      </label>
    </div>
  );
}
