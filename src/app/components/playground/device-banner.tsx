/** What to do when there is no usable GPU: how to enable WebGPU, or a Restart GPU button after a loss. */
import { useEngine } from '../../engine-context.ts';
import { useAppStore } from '../../store/index.ts';

export function DeviceBanner() {
  const engine = useEngine();
  const device = useAppStore((s) => s.device);
  switch (device.status) {
    case 'unavailable':
      return (
        <div className="banner banner-error" role="alert" data-testid="webgpu-unavailable">
          <h2>WebGPU is not available here</h2>
          <p>{device.message}</p>
          <p className="muted">The controls are disabled: every analysis on this page runs on the GPU.</p>
        </div>
      );
    case 'lost':
    case 'restarting':
      return (
        <div className="banner banner-warn" role="alert" data-testid="device-lost">
          <div>
            <h2>The GPU device was lost</h2>
            <p>{device.message}</p>
            <p className="muted">Your tensor and settings are kept; restarting creates a new device and runs the analysis again.</p>
          </div>
          <button type="button" className="primary" onClick={() => void engine.restart()} disabled={device.status === 'restarting'} data-testid="restart-gpu">
            {device.status === 'restarting' ? 'Restarting…' : 'Restart GPU'}
          </button>
        </div>
      );
    case 'error':
      return (
        <div className="banner banner-error" role="alert" data-testid="device-error">
          <div>
            <h2>The GPU could not be started</h2>
            <p>{device.message}</p>
          </div>
          <button type="button" className="primary" onClick={() => void engine.restart()} data-testid="restart-gpu">
            Restart GPU
          </button>
        </div>
      );
    default:
      return null;
  }
}
