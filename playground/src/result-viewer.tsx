/**
 * A result at full size, in a modal dialog (Escape or Close ends it), with its size, seed and a
 * download link. The image is the URL the API returned: signed, once keys are in force.
 */
import type { Image } from '@kontext-gateway/sdk';
import { useEffect, useRef } from 'preact/hooks';
import { downloadName } from './image-cell';

/** Props of {@link ResultViewer}. */
export interface ResultViewerProps {
  taskId: string;
  image: Image;
  onClose: () => void;
}

/** The dialog, open while mounted. */
export function ResultViewer({ taskId, image, onClose }: ResultViewerProps) {
  const dialog = useRef<HTMLDialogElement>(null);
  useEffect(() => {
    const d = dialog.current;
    if (d && !d.open) d.showModal();
  }, []);
  const n = image.index + 1;
  return (
    <dialog ref={dialog} class="viewer" aria-label={`Full size view ${n}`} onClose={onClose}>
      <img src={image.url} alt={`Full size of image ${n}`} width={image.width} height={image.height} />
      <p class="viewer-bar">
        <span>
          {image.width}×{image.height} · seed {image.seed} · {Math.round(image.bytes / 1024)} KB
        </span>
        <a href={image.url} download={downloadName(taskId, image.index, image.contentType)}>
          Download
        </a>
        <button type="button" onClick={() => dialog.current?.close()}>
          Close
        </button>
      </p>
    </dialog>
  );
}
