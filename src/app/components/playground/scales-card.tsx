/** The scale and zero point of the first groups: the numbers a runtime would store next to the codes. */
import { fmt } from '../../format.ts';
import { useAppStore } from '../../store/index.ts';

const SHOWN = 8;

export function ScalesCard() {
  const r = useAppStore((s) => s.playground.result);
  if (!r) return null;
  const { shape, config } = r;
  const groupsPerRow = config.granularity === 'group' ? Math.ceil(shape[1] / Math.min(config.groupSize, shape[1])) : 1;
  const where = (g: number) => {
    if (config.granularity === 'tensor') return 'whole tensor';
    if (config.granularity === 'channel') return `row ${g}`;
    const row = Math.floor(g / groupsPerRow);
    const gs = Math.min(config.groupSize, shape[1]);
    const c0 = (g % groupsPerRow) * gs;
    return `row ${row}, cols ${c0}–${Math.min(c0 + gs, shape[1]) - 1}`;
  };
  const rows = (n: number) =>
    r.firstScales.slice(0, n).map((s, g) => (
      <tr key={g}>
        <td>{g}</td>
        <td>{where(g)}</td>
        <td className="num" data-value={String(s)}>
          {fmt(s, 5)}
        </td>
        <td className="num">{r.firstZeros[g]}</td>
      </tr>
    ));
  const table = (n: number) => (
    <table className="scales">
      <thead>
        <tr>
          <th>group</th>
          <th>covers</th>
          <th className="num">scale s</th>
          <th className="num">zero z</th>
        </tr>
      </thead>
      <tbody>{rows(n)}</tbody>
    </table>
  );
  return (
    <section className="card" aria-labelledby="scales-title" data-testid="scales">
      <h2 id="scales-title">First scales and zero points</h2>
      <p className="explain">
        What is stored next to the codes: x′ = (q − z)·s. {config.scheme === 'sym' ? 'Symmetric grids keep z = 0.' : 'The zero point z is the code that stands for 0.0, so zeros stay exact.'}
      </p>
      {table(SHOWN)}
      {r.firstScales.length > SHOWN && (
        <details>
          <summary>Show the first {r.firstScales.length} groups</summary>
          {table(r.firstScales.length)}
        </details>
      )}
    </section>
  );
}
