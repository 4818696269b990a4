/** Errors the GPU core reports, each naming what went wrong and what the user can do. */

export class GpuError extends Error {
  override name = 'GpuError';
}

/** No WebGPU at all, or no adapter: the message says how to enable it. */
export class GpuUnavailableError extends GpuError {
  override name = 'GpuUnavailableError';
}

/** The device was lost (driver reset, tab in background too long, destroyed). Work must be restarted on a new context. */
export class GpuDeviceLostError extends GpuError {
  override name = 'GpuDeviceLostError';
  constructor(readonly reason: string, detail: string) {
    super(`GPU device lost (${reason})${detail ? `: ${detail.replace(/\.+\s*$/, '')}` : ''}. Results computed before the loss are kept; start the work again to use a new device.`);
  }
}

/** A request exceeds the device limits (buffer or binding size). */
export class GpuLimitError extends GpuError {
  override name = 'GpuLimitError';
}

/** WebGPU validation or out-of-memory error raised by a dispatch; a bug or an oversized request. */
export class GpuValidationError extends GpuError {
  override name = 'GpuValidationError';
}

/** The work was cancelled by the user. */
export class CancelledError extends Error {
  override name = 'CancelledError';
  constructor(message = 'cancelled') {
    super(message);
  }
}

export function howToEnableWebGpu(): string {
  return (
    'WebGPU is not available. Use a recent Chrome or Edge (113+) on a machine with a supported GPU; ' +
    'on Linux start Chrome with --enable-unsafe-webgpu (and --enable-features=Vulkan), ' +
    'or check chrome://gpu for "WebGPU: Hardware accelerated". Without a GPU, Chromium can run WebGPU in software with ' +
    '--enable-unsafe-webgpu --use-webgpu-adapter=swiftshader --enable-unsafe-swiftshader.'
  );
}
