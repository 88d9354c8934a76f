/**
 * One image of a task: its progress bar ("Image N", role progressbar, aria-valuenow 0-100), a line
 * with step x of y and the ETA (or the queue position while waiting), the live preview while it
 * runs, and the result once stored (a button that opens it full size, and a download link).
 */
import type { TaskStatus } from '@kontext-gateway/sdk';
import { variantUrl } from './api';
import { PreviewImage } from './preview-image';
import { formatSeconds, type ImageRun } from './run-state';

/** Props of {@link ImageCell}. */
export interface ImageCellProps {
  image: ImageRun;
  taskId: string;
  status: TaskStatus;
  queuePosition: number | null;
  /** Opens the result full size. */
  onOpen: (index: number) => void;
}

/** The line under the bar. */
function statusText({ image, status, queuePosition }: ImageCellProps): string {
  if (image.result) return `Done · seed ${image.result.seed}`;
  if (status === 'CANCELLED') return 'Cancelled';
  if (status === 'FAILED') return 'Failed';
  if (status === 'PENDING') return queuePosition ? `Waiting in the queue: position ${queuePosition}` : 'Waiting in the queue';
  if (image.step === null) return 'Waiting for a GPU';
  const eta = image.etaSeconds !== null ? ` · about ${formatSeconds(image.etaSeconds)} left` : '';
  return `Step ${image.step} of ${image.totalSteps ?? '?'}${eta}`;
}

/** A file name for the download: `<task>_<index>.<extension of its type>`. */
export function downloadName(taskId: string, index: number, contentType: string): string {
  const ext = contentType.split('/')[1]?.replace('jpeg', 'jpg') ?? 'png';
  return `${taskId}_${index}.${ext}`;
}

/** The cell. */
export function ImageCell(props: ImageCellProps) {
  const { image, taskId, onOpen } = props;
  const n = image.index + 1;
  const text = statusText(props);
  const result = image.result;
  return (
    <li class="image-cell">
      <div class="frame">
        {result ? (
          <button type="button" class="open" onClick={() => onOpen(image.index)} title="Open full size">
            <img src={variantUrl(result.url, 512)} alt={`Result ${n}`} width={result.width} height={result.height} />
          </button>
        ) : image.preview ? (
          <PreviewImage preview={image.preview} alt={`Preview ${n}`} />
        ) : (
          <div class="placeholder">{text}</div>
        )}
      </div>
      <div class="bar" role="progressbar" aria-label={`Image ${n}`} aria-valuemin={0} aria-valuemax={100} aria-valuenow={image.percent} aria-valuetext={text}>
        <span style={{ width: `${image.percent}%` }} />
      </div>
      <p class="cell-status">
        <span>{text}</span>
        {result && (
          <a href={result.url} download={downloadName(taskId, image.index, result.contentType)} aria-label={`Download image ${n}`}>
            Download
          </a>
        )}
      </p>
    </li>
  );
}
