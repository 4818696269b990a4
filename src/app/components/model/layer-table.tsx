/**
 * Every quantizable layer with its plan (quantize or keep, bits) and, once a run finished, its result: bytes
 * before and after, weight MSE, SQNR and outlier score. Sortable by any numeric column; the plan cells edit the
 * store, so the next run uses them.
 */
import { useMemo } from 'react';
import type { LayerInfo, ModelDescription } from '../../../model/workspace.ts';
import type { LayerReport } from '../../../quant/model-rtn.ts';
import { fmt, fmtBytes, fmtInt } from '../../format.ts';
import { useAppStore } from '../../store/index.ts';
import type { SortKey } from '../../store/model-slice.ts';

interface Row {
  order: number;
  info: LayerInfo;
  report?: LayerReport;
}

const COLUMNS: { key: SortKey; label: string; title?: string }[] = [
  { key: 'order', label: '#' },
  { key: 'name', label: 'Layer' },
  { key: 'params', label: 'Params' },
  { key: 'bits', label: 'Bits' },
  { key: 'bytesAfter', label: 'Bytes (FP16 → quantized)' },
  { key: 'mse', label: 'Weight MSE', title: 'mean of (w − Q(w))² over the layer' },
  { key: 'sqnr', label: 'SQNR (dB)', title: '10·log10(Σw² / Σ(w − Q(w))²): higher is better' },
  { key: 'outlierScore', label: 'Outlier score', title: 'max|w| / rms(w): how far the largest weight sits above the typical one' },
];

function sortValue(r: Row, key: SortKey): number | string {
  switch (key) {
    case 'order':
      return r.order;
    case 'name':
      return r.info.name;
    case 'params':
      return r.info.params;
    case 'bits':
      return r.report?.bits ?? -1;
    case 'bytesAfter':
      return r.report?.bytesAfter ?? -1;
    case 'mse':
      return r.report?.mse ?? -1;
    case 'sqnr':
      return r.report ? (Number.isFinite(r.report.sqnr) ? r.report.sqnr : 1e9) : -1;
    case 'outlierScore':
      return r.report?.outlierScore ?? -1;
  }
}

export function LayerTable({ d, disabled }: { d: ModelDescription; disabled: boolean }) {
  const overrides = useAppStore((s) => s.model.overrides);
  const setOverride = useAppStore((s) => s.setOverride);
  const sort = useAppStore((s) => s.model.sort);
  const patchModel = useAppStore((s) => s.patchModel);
  const baseBits = useAppStore((s) => s.model.config.bits);
  const report = useAppStore((s) => s.model.report);

  const rows = useMemo(() => {
    const byName = new Map(report?.layers.map((l) => [l.name, l]));
    const list: Row[] = d.layers.map((info, order) => ({ order, info, report: byName.get(info.name) }));
    return list.sort((a, b) => {
      const va = sortValue(a, sort.key);
      const vb = sortValue(b, sort.key);
      const c = typeof va === 'string' ? va.localeCompare(vb as string) : va - (vb as number);
      return c * sort.dir || a.order - b.order;
    });
  }, [d, report, sort]);

  const onSort = (key: SortKey) => patchModel({ sort: { key, dir: sort.key === key ? (-sort.dir as 1 | -1) : key === 'order' || key === 'name' ? 1 : -1 } });

  return (
    <div className="table-wrap tall">
      <table className="data-table" data-testid="layer-table" data-sort={`${sort.key}:${sort.dir}`}>
        <thead>
          <tr>
            <th scope="col">Quantize</th>
            {COLUMNS.map((c) => (
              <th key={c.key} scope="col" aria-sort={sort.key === c.key ? (sort.dir === 1 ? 'ascending' : 'descending') : 'none'} className={c.key === 'name' ? undefined : 'num'} title={c.title}>
                <button type="button" className="sort-button" onClick={() => onSort(c.key)} data-testid={`sort-${c.key}`}>
                  {c.label}
                  {sort.key === c.key ? (sort.dir === 1 ? ' ▲' : ' ▼') : ''}
                </button>
              </th>
            ))}
            <th scope="col">Shape · op</th>
          </tr>
        </thead>
        <tbody>
          {rows.map(({ order, info, report: r }) => {
            const o = overrides[info.name];
            const excluded = o?.exclude ?? info.excludedByDefault;
            const bits = o?.bits;
            return (
              <tr key={info.name} data-testid="layer-row" data-name={info.name} className={excluded ? 'muted' : undefined}>
                <td>
                  <input
                    type="checkbox"
                    aria-label={`quantize ${info.name}`}
                    checked={!excluded}
                    disabled={disabled}
                    data-testid="layer-include"
                    onChange={(e) => {
                      const exclude = !e.target.checked;
                      setOverride(info.name, { bits, exclude: exclude === info.excludedByDefault ? undefined : exclude });
                    }}
                  />
                </td>
                <td className="num">{order}</td>
                <td title={info.note}>
                  <code>{info.name}</code>
                  {info.note && <span className="muted"> · {info.note}</span>}
                </td>
                <td className="num">{fmtInt(info.params)}</td>
                <td className="num">
                  <select
                    aria-label={`bits for ${info.name}`}
                    title={bits === undefined ? 'the plan\'s bits' : 'this layer\'s own bits'}
                    value={bits ?? ''}
                    disabled={disabled || excluded}
                    data-testid="layer-bits"
                    onChange={(e) => setOverride(info.name, { exclude: o?.exclude, bits: e.target.value ? Number(e.target.value) : undefined })}
                  >
                    <option value="">{excluded ? '16' : String(baseBits)}</option>
                    {[2, 3, 4, 5, 6, 8].map((b) => (
                      <option key={b} value={b}>
                        {b}
                      </option>
                    ))}
                  </select>
                  {r && <span className="muted" data-testid="layer-result-bits"> → {r.bits}</span>}
                </td>
                <td className="num" data-testid="layer-bytes" data-value={r?.bytesAfter}>
                  {r ? `${fmtBytes(r.bytesBefore)} → ${fmtBytes(r.bytesAfter)}` : fmtBytes(info.params * 2)}
                </td>
                <td className="num" data-testid="layer-mse" data-value={r?.mse}>
                  {r ? fmt(r.mse) : '–'}
                </td>
                <td className="num" data-testid="layer-sqnr" data-value={r ? String(r.sqnr) : undefined}>
                  {r ? fmt(r.sqnr) : '–'}
                </td>
                <td className="num" data-testid="layer-outlier" data-value={r?.outlierScore}>
                  {r ? fmt(r.outlierScore, 3) : '–'}
                </td>
                <td className="muted">
                  [{info.shape.join(', ')}] · {info.op}
                </td>
              </tr>
            );
          })}
        </tbody>
      </table>
    </div>
  );
}
