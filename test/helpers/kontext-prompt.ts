/**
 * The backend Flux Kontext API prompt (docs/comfyui-protocol.md §9.5: LoadImage instead of LoadImageOutput, no
 * PreviewImage), as the contract tests send it to the simulator, with few sampler steps.
 */
import type { ApiPrompt } from '../../src/comfyui/protocol.js';

/** `image`: the name returned by the upload of the reference image. */
export function kontextPrompt(image: string): ApiPrompt {
  return {
    '6': { class_type: 'CLIPTextEncode', inputs: { text: 'make the car red', clip: ['38', 0] } },
    '8': { class_type: 'VAEDecode', inputs: { samples: ['31', 0], vae: ['39', 0] } },
    '31': {
      class_type: 'KSampler',
      inputs: {
        model: ['37', 0],
        seed: 42,
        steps: 4,
        cfg: 1,
        sampler_name: 'euler',
        scheduler: 'simple',
        positive: ['35', 0],
        negative: ['135', 0],
        latent_image: ['124', 0],
        denoise: 1,
      },
    },
    '35': { class_type: 'FluxGuidance', inputs: { conditioning: ['177', 0], guidance: 2.5 } },
    '37': { class_type: 'UNETLoader', inputs: { unet_name: 'flux1-dev-kontext_fp8_scaled.safetensors', weight_dtype: 'default' } },
    '38': {
      class_type: 'DualCLIPLoader',
      inputs: { clip_name1: 'clip_l.safetensors', clip_name2: 't5xxl_fp8_e4m3fn_scaled.safetensors', type: 'flux', device: 'default' },
    },
    '39': { class_type: 'VAELoader', inputs: { vae_name: 'ae.safetensors' } },
    '42': { class_type: 'FluxKontextImageScale', inputs: { image: ['146', 0] } },
    '124': { class_type: 'VAEEncode', inputs: { pixels: ['42', 0], vae: ['39', 0] } },
    '135': { class_type: 'ConditioningZeroOut', inputs: { conditioning: ['6', 0] } },
    '136': { class_type: 'SaveImage', inputs: { images: ['8', 0], filename_prefix: 'ComfyUI' } },
    '142': { class_type: 'LoadImage', inputs: { image } },
    '146': {
      class_type: 'ImageStitch',
      inputs: { image1: ['142', 0], direction: 'right', match_image_size: true, spacing_width: 0, spacing_color: 'white' },
    },
    '177': { class_type: 'ReferenceLatent', inputs: { conditioning: ['6', 0], latent: ['124', 0] } },
  };
}
