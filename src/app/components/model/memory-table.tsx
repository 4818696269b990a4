/** Will it fit on a Jetson? Bytes per weight format (plus an optional measured row) against the Orin modules. */
import { JETSON_DEVICES, RUNTIME_RESERVE_GIB, type MemoryRow } from '../../../model/memory-estimate.ts';
import { fmtBytes } from '../../format.ts';

export interface MemoryTableRow extends Pick<MemoryRow, 'weightBytes' | 'kvCacheBytes' | 'totalBytes' | 'fits'> {
  label: string;
  highlight?: boolean;
}

export function MemoryTable({ rows, kvNote, testId }: { rows: MemoryTableRow[]; kvNote: string; testId: string }) {
  return (
    <div className="table-wrap">
      <table className="data-table" data-testid={testId}>
        <thead>
          <tr>
            <th scope="col">Weights</th>
            <th scope="col" className="num">
              Weight memory
            </th>
            <th scope="col" className="num">
              KV cache
            </th>
            <th scope="col" className="num">
              Total
            </th>
            {JETSON_DEVICES.map((d) => (
              <th scope="col" key={d.name} className="num">
                {d.name}
              </th>
            ))}
          </tr>
        </thead>
        <tbody>
          {rows.map((r) => (
            <tr key={r.label} className={r.highlight ? 'highlight' : undefined} data-testid={`${testId}-row`} data-label={r.label} data-total={r.totalBytes}>
              <th scope="row">{r.label}</th>
              <td className="num">{fmtBytes(r.weightBytes)}</td>
              <td className="num">{fmtBytes(r.kvCacheBytes)}</td>
              <td className="num">{fmtBytes(r.totalBytes)}</td>
              {r.fits.map((f) => (
                <td key={f.device} className={`num ${f.fits ? 'ok' : 'error'}`} title={`${f.headroomGiB.toFixed(2)} GiB left after ${RUNTIME_RESERVE_GIB} GiB for the OS and runtime`}>
                  {f.fits ? `fits (${f.headroomGiB.toFixed(1)} GiB free)` : `no (${(-f.headroomGiB).toFixed(1)} GiB over)`}
                </td>
              ))}
            </tr>
          ))}
        </tbody>
      </table>
      <p className="hint">
        Jetson Orin memory is shared by CPU and GPU; {RUNTIME_RESERVE_GIB} GiB is kept for the OS, CUDA context and runtime. {kvNote}
      </p>
    </div>
  );
}
