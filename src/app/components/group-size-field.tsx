/** The group-size field of a quantizer form: a text input and 32 / 64 / 128 chips, off unless per-group. */
import type { ReactNode } from 'react';

const GROUP_PRESETS = [32, 64, 128];

export function GroupSizeField(props: {
  id: string;
  value: string;
  enabled: boolean;
  onChange: (value: string) => void;
  testId: string;
  /** Test ids of the chips: `${chipTestId}-32` etc.; none when absent. */
  chipTestId?: string;
  children?: ReactNode;
}) {
  const { id, value, enabled, onChange, testId, chipTestId, children } = props;
  return (
    <div className="field">
      <label className="field-label" htmlFor={id}>
        Group size g
      </label>
      <div className="group-size">
        <input id={id} type="text" inputMode="numeric" value={value} disabled={!enabled} onChange={(e) => onChange(e.target.value)} data-testid={testId} autoComplete="off" />
        {GROUP_PRESETS.map((g) => (
          <button
            key={g}
            type="button"
            className={`chip${value === String(g) ? ' on' : ''}`}
            disabled={!enabled}
            onClick={() => onChange(String(g))}
            data-testid={chipTestId ? `${chipTestId}-${g}` : undefined}
          >
            {g}
          </button>
        ))}
      </div>
      {children}
    </div>
  );
}
