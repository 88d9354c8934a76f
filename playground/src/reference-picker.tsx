/**
 * The reference image: the file input labelled "Reference image", a drop zone around it, and a
 * thumbnail of the chosen file (a blob: URL, released when replaced).
 */
import { useEffect, useState } from 'preact/hooks';
import { describedBy, Field } from './field';

/** Props of {@link ReferencePicker}. */
export interface ReferencePickerProps {
  file: File | null;
  onChange: (file: File | null) => void;
  error: string | undefined;
}

const ACCEPT = 'image/png,image/jpeg,image/webp';

/** File input + drop zone + thumbnail. */
export function ReferencePicker({ file, onChange, error }: ReferencePickerProps) {
  const [thumb, setThumb] = useState<string | null>(null);
  const [over, setOver] = useState(false);
  useEffect(() => {
    if (!file) return setThumb(null);
    const url = URL.createObjectURL(file);
    setThumb(url);
    return () => URL.revokeObjectURL(url);
  }, [file]);

  const onDrop = (event: DragEvent) => {
    event.preventDefault();
    setOver(false);
    const dropped = event.dataTransfer?.files[0];
    if (dropped) onChange(dropped);
  };
  return (
    <Field id="reference" label="Reference image" error={error} hint="PNG, JPEG or WebP: drop it here or choose a file">
      <div
        class={`drop${over ? ' over' : ''}`}
        onDragOver={(event) => {
          event.preventDefault();
          setOver(true);
        }}
        onDragLeave={() => setOver(false)}
        onDrop={onDrop}
      >
        {thumb ? <img class="thumb" src={thumb} alt="The chosen reference" /> : <span class="drop-icon" aria-hidden="true">⬒</span>}
        <input
          id="reference"
          type="file"
          accept={ACCEPT}
          {...describedBy('reference', error, true)}
          onChange={(event) => onChange(event.currentTarget.files?.[0] ?? null)}
        />
        {file && <span class="file-name">{file.name}</span>}
      </div>
    </Field>
  );
}
