/** The top bar: the app name and what GPU the work runs on (or why there is none). */
import { useAppStore } from '../store/index.ts';

function DeviceStatus() {
  const device = useAppStore((s) => s.device);
  const { status, info } = device;
  let text: string;
  let detail = '';
  switch (status) {
    case 'checking':
      text = 'Looking for WebGPU…';
      break;
    case 'ready':
    case 'lost':
    case 'restarting': {
      const name = !info ? 'WebGPU adapter' : info.description || (info.architecture ? `${info.architecture}${info.vendor ? ` (${info.vendor})` : ''}` : info.vendor || 'WebGPU adapter');
      text = status === 'ready' ? name : status === 'lost' ? `${name} — device lost` : `${name} — restarting…`;
      if (info) {
        // The name already says vendor and architecture when the adapter has no description.
        const parts = info.description ? [info.vendor, info.architecture].filter(Boolean) : [];
        parts.push(info.features.length ? `features: ${info.features.join(', ')}` : 'no optional features');
        if (info.isFallbackAdapter) parts.push('software fallback');
        detail = parts.join(' · ');
      }
      break;
    }
    case 'unavailable':
      text = 'WebGPU unavailable';
      break;
    case 'error':
      text = 'GPU failed to start';
      break;
  }
  return (
    <div className={`device device-${status}`} data-testid="device-status" data-status={status} title={device.message ?? detail}>
      <span className="device-dot" aria-hidden />
      <span className="device-text">
        <span className="device-name">{text}</span>
        {detail && <span className="device-detail">{detail}</span>}
      </span>
    </div>
  );
}

export function Header() {
  return (
    <header className="app-header">
      <div className="brand">
        {/* A staircase: the quantizer's transfer function. */}
        <svg className="brand-mark" viewBox="0 0 32 32" aria-hidden>
          <rect width="32" height="32" rx="7" fill="#1e293b" />
          <path d="M6 24h4v-4h4v-4h4v-4h4v-4h4" fill="none" stroke="#38bdf8" strokeWidth="2.5" strokeLinejoin="round" />
        </svg>
        <div>
          <h1>QuantLab</h1>
          <p className="tagline">Post-training quantization, in the browser, on WebGPU</p>
        </div>
      </div>
      <DeviceStatus />
    </header>
  );
}
