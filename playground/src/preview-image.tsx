/**
 * The live sampler preview of one image. A new preview is decoded off screen first and then swapped
 * in, so the picture never flashes empty; the time from the frame's arrival to the animation frame
 * that shows it is recorded as a User Timing measure (PREVIEW_MEASURE), visible in DevTools'
 * performance panel and read by the browser test.
 */
import { useLayoutEffect, useState } from 'preact/hooks';

/** Name of the measure: frame received (performance.now()) to the preview's first animation frame. */
export const PREVIEW_MEASURE = 'kontext:preview-shown';

/** Props of {@link PreviewImage}. */
export interface PreviewImageProps {
  preview: { url: string; receivedAt: number };
  alt: string;
}

/** The newest decoded preview; an older one still decoding is dropped when a newer arrives. */
export function PreviewImage({ preview, alt }: PreviewImageProps) {
  const [shown, setShown] = useState<string | null>(null);
  // A layout effect starts decoding as soon as the frame is rendered; a plain effect would wait for
  // the next paint (Preact runs those after an animation frame), adding up to a frame of delay.
  useLayoutEffect(() => {
    let current = true;
    const decoder = new Image();
    decoder.src = preview.url;
    decoder
      .decode()
      .then(() => {
        if (!current) return;
        setShown(preview.url);
        // Preact renders in a microtask; the next animation frame is the one that paints it.
        requestAnimationFrame(() => {
          if (current) performance.measure(PREVIEW_MEASURE, { start: preview.receivedAt, end: performance.now() });
        });
      })
      .catch(() => undefined); // a preview that cannot be decoded is skipped; the next one follows
    return () => {
      current = false;
    };
  }, [preview]);
  return shown ? <img class="preview" src={shown} alt={alt} decoding="sync" /> : <div class="placeholder">Waiting for the first preview…</div>;
}
