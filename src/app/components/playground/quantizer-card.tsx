/** The quantizer's knobs: format, bits, granularity, group size, scheme, clip ratio. Edits re-run the analysis. */
import { GroupSizeField } from '../group-size-field.tsx';
import { useId } from 'react';
import type { Granularity, NumberFormat, Scheme } from '../../../quant/config.ts';
import { parseConfig } from '../../engine/drafts.ts';
import { fmt } from '../../format.ts';
import { useAppStore } from '../../store/index.ts';
import { Segmented } from '../segmented.tsx';


export function QuantizerCard({ disabled }: { disabled: boolean }) {
  const id = useId();
  const cfg = useAppStore((s) => s.playground.config);
  const setConfig = useAppStore((s) => s.setConfig);
  const absmax = useAppStore((s) => s.playground.tensor?.absmax);
  const fp8 = cfg.format === 'fp8-e4m3';
  const parsed = parseConfig(cfg);
  const bits = fp8 ? 8 : cfg.bits;
  const levels = fp8 ? 'E4M3: 4 exponent bits, 3 mantissa bits, max 448' : cfg.scheme === 'sym' ? `${2 ** bits - 1} levels, −${2 ** (bits - 1) - 1}…${2 ** (bits - 1) - 1}` : `${2 ** bits} levels, 0…${2 ** bits - 1}`;

  return (
    <section className="card controls-card" aria-labelledby={`${id}-title`}>
      <h2 id={`${id}-title`}>Quantizer</h2>
      <fieldset disabled={disabled}>
        <Segmented<NumberFormat>
          label="Format"
          value={cfg.format}
          onChange={(format) => setConfig({ format })}
          options={[
            { value: 'int', label: 'INT' },
            { value: 'fp8-e4m3', label: 'FP8 E4M3', title: '8-bit float: symmetric only, 8 bits' },
          ]}
        />

        <div className="field">
          <label className="field-label" htmlFor={`${id}-bits`}>
            Bits <output className="value">{bits}</output>
          </label>
          <input
            id={`${id}-bits`}
            type="range"
            min={2}
            max={8}
            step={1}
            value={bits}
            disabled={fp8}
            onChange={(e) => setConfig({ bits: Number(e.target.value) })}
            data-testid="bits"
            aria-valuetext={`${bits} bits`}
          />
          <p className="hint">{levels}</p>
        </div>

        <Segmented<Granularity>
          label="Granularity (one scale per…)"
          value={cfg.granularity}
          onChange={(granularity) => setConfig({ granularity })}
          options={[
            { value: 'tensor', label: 'Tensor', title: 'per-tensor: one scale for every value' },
            { value: 'channel', label: 'Channel', title: 'per-channel: one scale per output channel (row)' },
            { value: 'group', label: 'Group', title: 'per-group: one scale per g consecutive values of a row' },
          ]}
        />

        <GroupSizeField id={`${id}-group`} value={cfg.groupSize} enabled={cfg.granularity === 'group'} onChange={(groupSize) => setConfig({ groupSize })} testId="group-size" />

        <Segmented<Scheme>
          label="Scheme"
          value={fp8 ? 'sym' : cfg.scheme}
          disabled={fp8}
          onChange={(scheme) => setConfig({ scheme })}
          options={[
            { value: 'sym', label: 'Symmetric', title: 'zero point 0, range ±amax' },
            { value: 'asym', label: 'Asymmetric', title: 'affine: range [min, max] with a zero point' },
          ]}
        />

        <div className="field">
          <label className="field-label" htmlFor={`${id}-clip`}>
            Clip ratio r <output className="value">{cfg.clipRatio.toFixed(2)}</output>
          </label>
          <input
            id={`${id}-clip`}
            type="range"
            min={0.05}
            max={1}
            step={0.01}
            value={cfg.clipRatio}
            onChange={(e) => setConfig({ clipRatio: Number(e.target.value) })}
            data-testid="clip-ratio"
          />
          <p className="hint" data-testid="clip-threshold">
            {cfg.granularity === 'tensor' && absmax !== undefined
              ? `Clips |x| above t = ${cfg.clipRatio.toFixed(2)} × ${fmt(absmax)} = ${fmt(cfg.clipRatio * absmax)}`
              : `Clips each ${cfg.granularity === 'channel' ? 'row' : 'group'} at t = r × its own max |x|`}
          </p>
        </div>

        {!parsed.ok && (
          <p className="inline-error" role="alert" data-testid="config-error">
            {parsed.error}
          </p>
        )}
      </fieldset>
    </section>
  );
}
