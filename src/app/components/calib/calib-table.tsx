/**
 * Every calibrated activation tensor: the layers reading it, its size and absmax, and for each calibrator the
 * amax it picks and the SQNR that amax gives, the best SQNR highlighted. Sortable by any column; clicking a row
 * shows that tensor in the views below.
 */
import { Fragment, useMemo } from 'react';
import { CALIB_METHODS, type CalibMethod, type CalibrationRun } from '../../../calib/types.ts';
import { fmt, fmtInt } from '../../format.ts';
import { useAppStore } from '../../store/index.ts';
import { METHOD_STYLE, calibRows, nextSort, sortCalibRows, type CalibSortKey } from './calib-data.ts';

function SortHeader({ k, label, title, num, rowSpan }: { k: CalibSortKey; label: string; title?: string; num?: boolean; rowSpan?: number }) {
  const sort = useAppStore((s) => s.calib.sort);
  const patch = useAppStore((s) => s.patchCalib);
  const on = sort.key === k;
  return (
    <th scope="col" rowSpan={rowSpan} className={num ? 'num' : undefined} title={title} aria-sort={on ? (sort.dir === 1 ? 'ascending' : 'descending') : 'none'}>
      <button type="button" className="sort-button" onClick={() => patch({ sort: nextSort(sort, k) })} data-testid={`calib-sort-${k}`}>
        {label}
        {on ? (sort.dir === 1 ? ' ▲' : ' ▼') : ''}
      </button>
    </th>
  );
}

/** A short label for the table's group headers. */
function shortLabel(m: CalibMethod): string {
  return m.startsWith('percentile-') ? `p${m.slice('percentile-'.length)}` : m === 'ma-minmax' ? 'MA min/max' : METHOD_STYLE[m].label;
}

export function CalibTable({ run }: { run: CalibrationRun }) {
  const sort = useAppStore((s) => s.calib.sort);
  const selected = useAppStore((s) => s.calib.selected);
  const patch = useAppStore((s) => s.patchCalib);
  const rows = useMemo(() => sortCalibRows(calibRows(run.result, run.summaries), sort), [run, sort]);
  const select = (name: string) => patch({ selected: name });
  return (
    <div className="table-wrap tall">
      <table className="data-table calib-table" data-testid="calib-table" data-sort={`${sort.key}:${sort.dir}`}>
        <thead>
          <tr>
            <SortHeader k="order" label="#" num rowSpan={2} />
            <SortHeader k="name" label="Tensor" rowSpan={2} />
            <SortHeader k="layers" label="Read by" rowSpan={2} />
            <SortHeader k="channels" label="Channels" num rowSpan={2} />
            <SortHeader k="tokens" label="Tokens" num rowSpan={2} title="rows seen: sequence positions, or N·H·W positions of a convolution input" />
            <SortHeader k="absmax" label="max |x|" num rowSpan={2} />
            {CALIB_METHODS.map((m) => (
              <th key={m} scope="colgroup" colSpan={2} className="method-head" title={METHOD_STYLE[m].label}>
                <span className="method-swatch" style={{ background: METHOD_STYLE[m].color }} aria-hidden />
                {shortLabel(m)}
              </th>
            ))}
            <SortHeader k="best" label="Best" rowSpan={2} title="the calibrator with the highest SQNR" />
          </tr>
          <tr>
            {CALIB_METHODS.map((m) => (
              <Fragment key={m}>
                <SortHeader k={`amax:${m}`} label="amax" num title={`${METHOD_STYLE[m].label}: the clip threshold`} />
                <SortHeader k={`sqnr:${m}`} label="SQNR dB" num title={`${METHOD_STYLE[m].label}: 10·log10(Σx² / Σ(x − Q(x))²) with this amax, from the histogram`} />
              </Fragment>
            ))}
          </tr>
        </thead>
        <tbody>
          {rows.map((r) => {
            const on = r.name === selected;
            return (
              <tr
                key={r.name}
                data-testid="calib-row"
                data-name={r.name}
                data-best={r.best}
                className={`calib-row${on ? ' selected' : ''}`}
                aria-selected={on}
                onClick={() => select(r.name)}
              >
                <td className="num">{r.order}</td>
                <td>
                  <button type="button" className="link-button tensor-name" onClick={() => select(r.name)} data-testid="calib-select" title={r.name}>
                    {r.name}
                  </button>
                  {r.nonFinite > 0 && (
                    <span className="warn" title="NaN or Inf values seen (left out of every statistic)">
                      {' '}
                      · {fmtInt(r.nonFinite)} non-finite
                    </span>
                  )}
                </td>
                <td className="layers-cell" title={r.layers.join(', ')}>
                  {r.layers.join(', ')}
                </td>
                <td className="num">{fmtInt(r.channels)}</td>
                <td className="num">{fmtInt(r.tokens)}</td>
                <td className="num" data-testid="calib-absmax" data-value={r.absmax}>
                  {fmt(r.absmax)}
                </td>
                {CALIB_METHODS.map((m) => {
                  const best = m === r.best ? 'best' : undefined;
                  return (
                    <Fragment key={m}>
                      <td className={`num ${best ?? ''}`} data-testid={`calib-amax-${m}`} data-value={r.amax[m]}>
                        {fmt(r.amax[m])}
                      </td>
                      <td className={`num ${best ?? ''}`} data-testid={`calib-sqnr-${m}`} data-value={String(r.sqnrDb[m])}>
                        {fmt(r.sqnrDb[m])}
                      </td>
                    </Fragment>
                  );
                })}
                <td className="best-cell">{METHOD_STYLE[r.best]?.label ?? r.best}</td>
              </tr>
            );
          })}
        </tbody>
      </table>
    </div>
  );
}
