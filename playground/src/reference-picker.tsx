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
  // A file the browser cannot show (the service will say why it refuses it): no broken picture.
  const [broken, setBroken] = useState(false);
  useEffect(() => {
    setBroken(false);
    if (!file) return setThumb(null);
    const url = URL.createObjectURL(file);
    setThumb(url);
    return () => URL.revokeObjectURL(url);
  }, [file]);

  const onDrop = (event: DragEvent) => {
    event.preventDefault();
    setOver(false);
    const files = event.dataTransfer?.files;
    const dropped = files?.[0];
    if (!dropped) return;
    // The input shows the dropped file's name as if it had been picked.
    const input = (event.currentTarget as HTMLElement).querySelector('input');
    if (input && files) input.files = files;
    onChange(dropped);
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
        {thumb && !broken ? (
          <img class="thumb" src={thumb} alt="The chosen reference" onError={() => setBroken(true)} />
        ) : (
          <span class="drop-icon" aria-hidden="true">
            ⬒
          </span>
        )}
        <input
          id="reference"
          type="file"
          accept={ACCEPT}
          {...describedBy('reference', error, true)}
          onChange={(event) => onChange(event.currentTarget.files?.[0] ?? null)}
        />
      </div>
    </Field>
  );
}
